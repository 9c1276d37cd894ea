//! The processors the company uses (privacy notice: Google, SuperOffice, Wix, Microsoft).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One SaaS processor that holds personal data on the controller's behalf. Its name (in
/// config, on the command line, in the ledger) is the lowercase variant, or `opendsr.<name>`
/// for a processor reached over OpenDSR (`[processors.opendsr.<name>]`); `Display`,
/// `FromStr`, `as_str` and serde agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Processor {
    Google,
    Microsoft365,
    Superoffice,
    Wix,
    /// A processor that speaks OpenDSR, by the name its config section gives it.
    OpenDsr(OpenDsrName),
}

impl Processor {
    /// The processors with a connector of their own, in order (OpenDSR ones are configured).
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
            Processor::OpenDsr(name) => name.0,
        }
    }

    /// The vendor's own name, for people (an OpenDSR processor's configured name).
    pub fn display_name(self) -> &'static str {
        match self {
            Processor::Google => "Google",
            Processor::Microsoft365 => "Microsoft 365",
            Processor::Superoffice => "SuperOffice",
            Processor::Wix => "Wix",
            Processor::OpenDsr(name) => name.name(),
        }
    }

    /// `opendsr.<name>` for `name`, when `name` can be one.
    pub fn opendsr(name: &str) -> Result<Processor, UnknownProcessor> {
        OpenDsrName::new(name).map(Processor::OpenDsr)
    }

    /// The processor `text` names if it is one of the four or an OpenDSR processor this
    /// process knows already (configured, or read from the ledger), adding no name: for
    /// names from outside (an HTTP query or body), which must not grow the table.
    pub fn known(text: &str) -> Result<Processor, UnknownProcessor> {
        if let Some(found) = Processor::ALL.into_iter().find(|p| p.as_str() == text) {
            return Ok(found);
        }
        let names = OPENDSR_NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        names
            .get(text)
            .map(|known| Processor::OpenDsr(OpenDsrName(known)))
            .ok_or_else(|| UnknownProcessor(text.to_string()))
    }
}

/// The name of an OpenDSR processor: 1 to 40 of `a-z 0-9 _ -`. Names are interned (a
/// deployment configures a handful), so `Processor` stays `Copy` and `as_str` borrows for
/// ever.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenDsrName(&'static str);

/// The prefix of an OpenDSR processor's name.
pub const OPENDSR_PREFIX: &str = "opendsr.";

static OPENDSR_NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

impl OpenDsrName {
    pub fn new(name: &str) -> Result<OpenDsrName, UnknownProcessor> {
        let valid = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(UnknownProcessor(format!("{OPENDSR_PREFIX}{name}")));
        }
        let full = format!("{OPENDSR_PREFIX}{name}");
        let mut names = OPENDSR_NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = names.get(full.as_str()) {
            return Ok(OpenDsrName(known));
        }
        let leaked: &'static str = Box::leak(full.into_boxed_str());
        names.insert(leaked);
        Ok(OpenDsrName(leaked))
    }

    /// The configured name, without `opendsr.`.
    pub fn name(self) -> &'static str {
        &self.0[OPENDSR_PREFIX.len()..]
    }
}

impl fmt::Debug for OpenDsrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Processor {
    type Err = UnknownProcessor;

    fn from_str(s: &str) -> Result<Processor, UnknownProcessor> {
        if let Some(found) = Processor::ALL.into_iter().find(|p| p.as_str() == s) {
            return Ok(found);
        }
        match s.strip_prefix(OPENDSR_PREFIX) {
            Some(name) => Processor::opendsr(name),
            None => Err(UnknownProcessor(s.to_string())),
        }
    }
}

impl Serialize for Processor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Processor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Processor, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A processor name that is none of ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown processor `{0}`: expected one of google, microsoft365, superoffice, wix, or opendsr.<name> (a-z, 0-9, _ and -, at most 40)"
)]
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
        let acme = "opendsr.acme-cdp".parse::<Processor>().unwrap();
        assert_eq!(
            acme,
            Processor::opendsr("acme-cdp").unwrap(),
            "interned: equal and Copy"
        );
        assert_eq!(acme.as_str(), "opendsr.acme-cdp");
        assert_eq!(acme.display_name(), "acme-cdp");
        assert_eq!(serde_json::to_string(&acme).unwrap(), "\"opendsr.acme-cdp\"");
        assert_eq!(serde_json::from_str::<Processor>("\"opendsr.acme-cdp\"").unwrap(), acme);
        for bad in ["opendsr.", "opendsr.Acme", "opendsr.a/b", "opendsr.a b"] {
            assert!(bad.parse::<Processor>().is_err(), "{bad}");
        }
        // Names from outside are looked up, never added.
        assert_eq!(Processor::known("opendsr.acme-cdp"), Ok(acme));
        assert_eq!(Processor::known("wix"), Ok(Processor::Wix));
        assert!(Processor::known("opendsr.never-configured").is_err());
        assert!(Processor::known("opendsr.never-configured").is_err(), "still not added");
    }
}
