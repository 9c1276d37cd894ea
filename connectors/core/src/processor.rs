//! The processors the company uses (privacy notice: Google, SuperOffice, Wix, Microsoft).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One SaaS processor that holds personal data on the controller's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Processor {
    Google,
    Microsoft365,
    Superoffice,
    Wix,
}

impl Processor {
    pub const ALL: [Processor; 4] = [
        Processor::Google,
        Processor::Microsoft365,
        Processor::Superoffice,
        Processor::Wix,
    ];

    /// The name used in config, on the command line and in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Processor::Google => "google",
            Processor::Microsoft365 => "microsoft365",
            Processor::Superoffice => "superoffice",
            Processor::Wix => "wix",
        }
    }

    /// The vendor's own name, for people.
    pub fn display_name(self) -> &'static str {
        match self {
            Processor::Google => "Google",
            Processor::Microsoft365 => "Microsoft 365",
            Processor::Superoffice => "SuperOffice",
            Processor::Wix => "Wix",
        }
    }
}

impl fmt::Display for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown processor `{0}`: expected one of google, microsoft365, superoffice, wix")]
pub struct UnknownProcessor(pub String);

impl FromStr for Processor {
    type Err = UnknownProcessor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Processor::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProcessor(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Processor::ALL {
            assert_eq!(p.as_str().parse::<Processor>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        let err = "dropbox".parse::<Processor>().unwrap_err();
        assert!(err.to_string().contains("dropbox"));
    }
}
