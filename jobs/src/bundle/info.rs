//! The Art. 15(1) information the bundle carries beside the data: purposes, categories,
//! recipients, transfers and safeguards, retention, source, the rights, the complaint route
//! and automated decisions — in bokmål and English, from the file `[export] processing_info`.

use serde::{Deserialize, Serialize};

/// The example shipped with dsr, written from Racom's privacy notice.
pub const EXAMPLE: &str = include_str!("../../../docs/processing-info.toml");

/// One language's texts. Every field is one of the Art. 15(1) items.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    #[serde(default)]
    pub controller: String,
    /// (a) the purposes of the processing.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// (b) the categories of personal data.
    #[serde(default)]
    pub categories: Vec<String>,
    /// (c) the recipients.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// (c) and Art. 15(2): transfers outside the EU/EEA and their safeguards.
    #[serde(default)]
    pub transfers: String,
    /// (d) how long the data is kept.
    #[serde(default)]
    pub retention: String,
    /// (g) where the data came from when not from the subject.
    #[serde(default)]
    pub source: String,
    /// (e) the rights to rectification, erasure, restriction and objection.
    #[serde(default)]
    pub rights: String,
    /// (f) the right to complain to a supervisory authority.
    #[serde(default)]
    pub complaint: String,
    /// (h) automated decisions and profiling.
    #[serde(default)]
    pub automated_decisions: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingInfo {
    pub nb: Texts,
    pub en: Texts,
}

impl ProcessingInfo {
    pub fn parse(text: &str) -> Result<ProcessingInfo, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn example() -> ProcessingInfo {
        ProcessingInfo::parse(EXAMPLE).unwrap_or_default()
    }

    pub fn texts(&self, lang: crate::model::Lang) -> &Texts {
        match lang {
            crate::model::Lang::Nb => &self.nb,
            crate::model::Lang::En => &self.en,
        }
    }

    /// The Art. 15(1) items left empty, as `lang.item`, for `dsr doctor` to warn about.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for (lang, t) in [("nb", &self.nb), ("en", &self.en)] {
            let items: [(&str, bool); 10] = [
                ("controller", t.controller.trim().is_empty()),
                ("purposes", t.purposes.is_empty()),
                ("categories", t.categories.is_empty()),
                ("recipients", t.recipients.is_empty()),
                ("transfers", t.transfers.trim().is_empty()),
                ("retention", t.retention.trim().is_empty()),
                ("source", t.source.trim().is_empty()),
                ("rights", t.rights.trim().is_empty()),
                ("complaint", t.complaint.trim().is_empty()),
                ("automated_decisions", t.automated_decisions.trim().is_empty()),
            ];
            missing.extend(
                items
                    .iter()
                    .filter(|(_, empty)| *empty)
                    .map(|(item, _)| format!("{lang}.{item}")),
            );
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_fills_every_item_in_both_languages() {
        let info = ProcessingInfo::parse(EXAMPLE).unwrap();
        assert!(info.missing().is_empty(), "{:?}", info.missing());
        assert!(info.nb.recipients.iter().any(|r| r.contains("SuperOffice")));
    }

    #[test]
    fn empty_items_are_named() {
        let info = ProcessingInfo::parse("[nb]\ncontroller = \"X\"\n[en]\n").unwrap();
        assert!(info.missing().contains(&"nb.retention".to_string()));
        assert!(info.missing().contains(&"en.controller".to_string()));
    }
}
