//! The processors the company uses (privacy notice: Google, SuperOffice, Wix, Microsoft).

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

/// One SaaS processor that holds personal data on the controller's behalf. Its name (in
/// config, on the command line, in the ledger) is the lowercase variant: `Display`,
/// `FromStr` and `as_str` come from strum and agree with serde.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", parse_err_ty = UnknownProcessor, parse_err_fn = UnknownProcessor::from)]
pub enum Processor {
    Google,
    Microsoft365,
    Superoffice,
    Wix,
}

impl Processor {
    /// Every processor, in order (strum's `VARIANTS` as an array, so callers iterate values).
    pub const ALL: [Processor; 4] = [
        Processor::Google,
        Processor::Microsoft365,
        Processor::Superoffice,
        Processor::Wix,
    ];

    /// The name used in config, on the command line and in the ledger.
    pub fn as_str(self) -> &'static str {
        self.into()
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

// A processor added to the enum and forgotten in `ALL` would be skipped by every loop over it.
const _: () = assert!(Processor::ALL.len() == Processor::VARIANTS.len());

/// A processor name that is none of ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown processor `{0}`: expected one of google, microsoft365, superoffice, wix")]
pub struct UnknownProcessor(pub String);

impl From<&str> for UnknownProcessor {
    fn from(given: &str) -> Self {
        UnknownProcessor(given.to_string())
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
        assert_eq!(
            Processor::ALL.as_slice(),
            Processor::VARIANTS,
            "ALL lists every variant in order"
        );
        let err = "dropbox".parse::<Processor>().unwrap_err();
        assert!(err.to_string().contains("dropbox"));
        let names: Vec<&str> = Processor::ALL.iter().map(|p| p.as_str()).collect();
        assert!(
            err.to_string().contains(&names.join(", ")),
            "the message lists every name: {err}"
        );
        assert_eq!(
            "Google".parse::<Processor>(),
            Err(UnknownProcessor("Google".into())),
            "names are exact"
        );
    }
}
