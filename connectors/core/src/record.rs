//! Records (one item of personal data) and the sink a connector streams them into.

use serde::{Deserialize, Serialize};

/// One item of personal data found at a processor, with the vendor's field names kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// What kind of data this is at the processor (`mail`, `contacts`, `persons`…).
    pub category: String,
    /// The vendor's id for the item, when it has one.
    pub id: Option<String>,
    /// Whether the subject gave us this data themselves (Art. 20 portability covers only that).
    pub provided_by_subject: bool,
    /// The item as the vendor returned it.
    pub data: serde_json::Value,
    /// Where in `data` the subject's identifier sits. The engine checks them before the
    /// record is kept: a record without a claim that holds is dropped and counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<crate::MatchClaim>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not store a record: {0}")]
pub struct SinkError(pub String);

/// A file that belongs to a record (a mail attachment), as the vendor names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The folder in the processor's part of the bundle (`attachments`, `mail`).
    pub folder: String,
    pub name: String,
    pub media_type: String,
}

/// Where a stored file ended up: a path relative to the processor's folder in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub path: String,
    pub media_type: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A body streamed from a vendor, never held whole in memory.
pub type ByteStream<'a> = futures::stream::BoxStream<'a, Result<bytes::Bytes, std::io::Error>>;

/// Where a connector puts the records it finds, one at a time, so no connector has to hold
/// a subject's whole history in memory.
#[async_trait::async_trait]
pub trait RecordSink: Send {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError>;

    /// Stores a file byte for byte; the record that owns it should name the returned path.
    async fn attach(&mut self, file: FileMeta, body: ByteStream<'_>) -> Result<StoredFile, SinkError>;
}

/// A sink that keeps records in memory and files' sizes and hashes only: for tests and
/// small callers.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub records: Vec<Record>,
    pub files: Vec<(FileMeta, StoredFile)>,
    /// When set, records are checked against these identities as the engine checks them,
    /// and those that are not the subject's are counted in `refused` instead of kept.
    pub subject: Option<crate::Identities>,
    pub refused: u64,
}

impl MemorySink {
    /// The vendor ids of the accepted records of one category.
    pub fn ids(&self, category: &str) -> std::collections::BTreeSet<String> {
        self.records
            .iter()
            .filter(|r| r.category == category)
            .filter_map(|r| r.id.clone())
            .collect()
    }

    /// A sink that keeps only the subject's records, as the engine's spool does.
    pub fn checked(subject: crate::Identities) -> MemorySink {
        MemorySink {
            subject: Some(subject),
            ..Default::default()
        }
    }
}

#[async_trait::async_trait]
impl RecordSink for MemorySink {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        if let Some(subject) = &self.subject
            && crate::check_claims(subject, &record.data, &record.claims).is_err()
        {
            self.refused += 1;
            return Ok(());
        }
        self.records.push(record);
        Ok(())
    }

    async fn attach(&mut self, file: FileMeta, mut body: ByteStream<'_>) -> Result<StoredFile, SinkError> {
        use futures::StreamExt;
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| SinkError(e.to_string()))?;
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let stored = StoredFile {
            path: format!(
                "{}/{:04}-{}",
                safe_file_name(&file.folder),
                self.files.len() + 1,
                safe_file_name(&file.name)
            ),
            media_type: file.media_type.clone(),
            bytes,
            sha256: hex::encode(hasher.finalize()),
        };
        self.files.push((file, stored.clone()));
        Ok(stored)
    }
}

/// A vendor's file name made safe for a path inside a ZIP on any system: no directories,
/// no control or reserved characters, not empty, not too long.
pub fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c == ' ');
    let mut out: String = trimmed.chars().take(100).collect();
    if out.is_empty() {
        out = "file".into();
    }
    // Names Windows reserves for devices, with or without an extension.
    let stem = out.split('.').next().unwrap_or_default().to_ascii_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_escape_their_folder() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..\\tilbud 2026.xlsx"), "tilbud 2026.xlsx");
        assert_eq!(safe_file_name("kravspesifikasjon.pdf"), "kravspesifikasjon.pdf");
        assert_eq!(safe_file_name("a<b>:c?.txt"), "a_b__c_.txt");
        assert_eq!(safe_file_name(".."), "file");
        assert_eq!(safe_file_name("/etc/passwd"), "passwd");
        assert_eq!(safe_file_name("CON.txt"), "_CON.txt");
        assert_eq!(safe_file_name("lpt1"), "_lpt1");
        assert_eq!(safe_file_name("a\u{0}b\nc"), "a_b_c");
        assert_eq!(safe_file_name(&"x".repeat(500)).len(), 100);
        assert_eq!(safe_file_name("Søknad æøå.docx"), "Søknad æøå.docx");
    }
}
