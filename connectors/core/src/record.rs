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
///
/// Files come two ways. `attach` stores one file now. To download several at once, a
/// connector `reserve`s a [`FileSlot`] per file in the order the bundle lists them (the sink
/// names the file then, so names never depend on which download ends first), stores each
/// slot's bytes wherever it likes — in futures polled together, without the sink — and hands
/// each stored file back with `keep`, in the same order, before the record that owns them.
/// Either way a file belongs to the next record accepted.
#[async_trait::async_trait]
pub trait RecordSink: Send {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError>;

    /// Stores a file byte for byte; the record that owns it should name the returned path.
    async fn attach(&mut self, file: FileMeta, body: ByteStream<'_>) -> Result<StoredFile, SinkError>;

    /// A place for a file, named now. The default holds the bytes in memory until `keep`
    /// attaches them (for small sinks of tests); a sink that stores files overrides both.
    fn reserve(&mut self, file: FileMeta) -> FileSlot {
        FileSlot {
            file,
            path: None,
            out: None,
        }
    }

    /// Lists a file stored through a slot with the next record; returns where it is.
    async fn keep(&mut self, stored: SlotFile) -> Result<StoredFile, SinkError> {
        match stored.held {
            Some(bytes) => {
                let body = futures::stream::once(async move { Ok(bytes) });
                self.attach(stored.meta, Box::pin(body)).await
            }
            None => Ok(stored.file),
        }
    }
}

/// Where a slot's bytes are written as they arrive, in the sink's storage.
#[async_trait::async_trait]
pub trait FileOut: Send {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), SinkError>;
    /// Makes the file visible.
    async fn commit(self: Box<Self>) -> Result<(), SinkError>;
    /// Gives the file up; nothing becomes visible.
    async fn abort(self: Box<Self>);
}

/// A file the sink has named (see [`RecordSink::reserve`]), to be stored without the sink.
pub struct FileSlot {
    file: FileMeta,
    /// The path in the bundle; `None` until `keep` for a sink that names files then.
    path: Option<String>,
    /// `None`: the bytes are held for `keep`.
    out: Option<Box<dyn FileOut>>,
}

/// A file stored through a slot, waiting for [`RecordSink::keep`].
pub struct SlotFile {
    pub meta: FileMeta,
    /// Its path, size and hash (the path is empty while the sink has not named it).
    pub file: StoredFile,
    /// The bytes, for a sink that holds them until `keep`.
    pub held: Option<bytes::Bytes>,
}

impl FileSlot {
    /// A slot whose bytes go to `out`, named `path`.
    pub fn new(file: FileMeta, path: String, out: Box<dyn FileOut>) -> FileSlot {
        FileSlot {
            file,
            path: Some(path),
            out: Some(out),
        }
    }

    /// The path the sink named, if it named one already.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Streams `body` into the slot, counting and hashing it; a body that breaks off leaves
    /// nothing visible.
    pub async fn store(self, mut body: ByteStream<'_>) -> Result<SlotFile, SinkError> {
        use futures::StreamExt;
        use sha2::Digest;
        let FileSlot { file, path, mut out } = self;
        let mut held = out.is_none().then(Vec::new);
        let mut hasher = sha2::Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let written = match chunk {
                Ok(chunk) => {
                    hasher.update(&chunk);
                    bytes += chunk.len() as u64;
                    match (&mut out, &mut held) {
                        (Some(out), _) => out.write(&chunk).await,
                        (None, Some(held)) => {
                            held.extend_from_slice(&chunk);
                            Ok(())
                        }
                        (None, None) => Ok(()),
                    }
                }
                Err(e) => Err(SinkError(format!("the vendor's file broke off: {e}"))),
            };
            if let Err(e) = written {
                if let Some(out) = out {
                    out.abort().await;
                }
                return Err(e);
            }
        }
        if let Some(out) = out {
            out.commit().await?;
        }
        Ok(SlotFile {
            file: StoredFile {
                path: path.unwrap_or_default(),
                media_type: file.media_type.clone(),
                bytes,
                sha256: hex::encode(hasher.finalize()),
            },
            meta: file,
            held: held.map(bytes::Bytes::from),
        })
    }
}

/// Bytes that go nowhere: a sink that keeps sizes and hashes only.
struct Nowhere;

#[async_trait::async_trait]
impl FileOut for Nowhere {
    async fn write(&mut self, _chunk: &[u8]) -> Result<(), SinkError> {
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), SinkError> {
        Ok(())
    }

    async fn abort(self: Box<Self>) {}
}

/// The path of a sink's `n`th file (from 1) in the processor's part of the bundle:
/// `{folder}/{n:04}-{name}`.
pub fn numbered_path(file: &FileMeta, n: u64) -> String {
    format!(
        "{}/{:04}-{}",
        safe_file_name(&file.folder),
        n,
        safe_file_name(&file.name)
    )
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
    /// Files named so far.
    named: u64,
}

impl MemorySink {
    /// (category, vendor id) of every accepted record, in the order the sink got them: what
    /// must not change when a connector's calls overlap.
    pub fn order(&self) -> Vec<(String, Option<String>)> {
        self.records
            .iter()
            .map(|r| (r.category.clone(), r.id.clone()))
            .collect()
    }

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

    async fn attach(&mut self, file: FileMeta, body: ByteStream<'_>) -> Result<StoredFile, SinkError> {
        let stored = self.reserve(file).store(body).await?;
        self.keep(stored).await
    }

    fn reserve(&mut self, file: FileMeta) -> FileSlot {
        self.named += 1;
        let path = numbered_path(&file, self.named);
        FileSlot::new(file, path, Box::new(Nowhere))
    }

    async fn keep(&mut self, stored: SlotFile) -> Result<StoredFile, SinkError> {
        self.files.push((stored.meta, stored.file.clone()));
        Ok(stored.file)
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

#[cfg(test)]
mod slot_tests {
    use super::*;
    use futures::StreamExt;

    fn meta(name: &str) -> FileMeta {
        FileMeta {
            folder: "attachments".into(),
            name: name.into(),
            media_type: "text/plain".into(),
        }
    }

    fn body(text: &'static str) -> ByteStream<'static> {
        futures::stream::iter([Ok(bytes::Bytes::from_static(text.as_bytes()))]).boxed()
    }

    /// Only `accept` and `attach`: what a sink written before slots existed has.
    #[derive(Default)]
    struct AttachOnly(MemorySink);

    #[async_trait::async_trait]
    impl RecordSink for AttachOnly {
        async fn accept(&mut self, record: Record) -> Result<(), SinkError> {
            self.0.accept(record).await
        }

        async fn attach(&mut self, file: FileMeta, body: ByteStream<'_>) -> Result<StoredFile, SinkError> {
            self.0.attach(file, body).await
        }
    }

    /// Slots stored in the reverse order of their reservation: names and listing follow the
    /// reservations, sizes and hashes the bytes.
    async fn store_backwards(sink: &mut dyn RecordSink) -> Vec<StoredFile> {
        let first = sink.reserve(meta("a.txt"));
        let second = sink.reserve(meta("b.txt"));
        let b = second.store(body("bee")).await.unwrap();
        let a = first.store(body("a")).await.unwrap();
        vec![sink.keep(a).await.unwrap(), sink.keep(b).await.unwrap()]
    }

    #[tokio::test]
    async fn slots_are_named_in_the_order_they_were_reserved_whatever_order_they_are_stored_in() {
        let mut sink = MemorySink::default();
        sink.attach(meta("first.txt"), body("1")).await.unwrap();
        let kept = store_backwards(&mut sink).await;
        let paths: Vec<_> = kept.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["attachments/0002-a.txt", "attachments/0003-b.txt"]);
        assert_eq!((kept[0].bytes, kept[1].bytes), (1, 3));
        assert_eq!(
            kept[1].sha256,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"bee"))
        );
        let listed: Vec<_> = sink.files.iter().map(|(_, f)| f.path.as_str()).collect();
        assert_eq!(
            listed,
            [
                "attachments/0001-first.txt",
                "attachments/0002-a.txt",
                "attachments/0003-b.txt"
            ]
        );
    }

    #[tokio::test]
    async fn a_sink_with_attach_only_gets_slots_that_hold_the_bytes_until_kept() {
        let mut sink = AttachOnly::default();
        let kept = store_backwards(&mut sink).await;
        let mut memory = MemorySink::default();
        assert_eq!(
            kept,
            store_backwards(&mut memory).await,
            "the same names, sizes and hashes"
        );
        assert_eq!(sink.0.files.len(), 2);
    }

    #[tokio::test]
    async fn a_body_that_breaks_off_is_an_error() {
        let mut sink = MemorySink::default();
        let broken = futures::stream::iter([
            Ok(bytes::Bytes::from_static(b"half")),
            Err(std::io::Error::other("reset")),
        ])
        .boxed();
        let err = sink.reserve(meta("x")).store(broken).await.err().unwrap();
        assert!(err.to_string().contains("broke off"), "{err}");
    }
}
