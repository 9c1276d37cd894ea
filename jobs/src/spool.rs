//! The spool: one object per task and attempt, in the export storage, holding the records a
//! task found, one JSON object a line. `finalize` assembles the bundle from the spools the
//! ledger accepted, so it never matters which machine ran which task, and a re-delivered
//! task writes a new attempt file rather than adding to an old one.

use dsr_connector::{ByteStream, FileMeta, Processor, Record, RecordSink, SinkError, StoredFile, safe_file_name};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::storage::{ExportStore, Key, ObjectWriter, StorageError, key};

/// One line of a spool: a record, or a file stored beside the spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum SpoolEntry {
    Record(Record),
    File(StoredFile),
}

/// The key of a request's spools, all of which go once its bundle is written.
pub fn request_prefix(request_id: &str) -> Key {
    key(&format!("spool/{request_id}"))
}

/// The key of one task attempt's spool.
pub fn spool_key(request_id: &str, processor: Processor, attempt: u32) -> Key {
    key(&format!(
        "spool/{request_id}/{}/attempt-{attempt}.jsonl",
        processor.as_str()
    ))
}

/// The key of a file a spool lists (`relative` as in [`StoredFile::path`]).
pub fn file_key(spool: &Key, relative: &str) -> Key {
    key(&format!("{spool}.files/{relative}"))
}

/// Writes one attempt's records as they stream in; only `commit` makes them visible.
pub struct SpoolWriter {
    store: ExportStore,
    out: ObjectWriter,
    stored: Vec<Key>,
    /// Files stored since the last record, listed only when their record is kept.
    pending: Vec<(Key, StoredFile)>,
    count: u64,
    provided: u64,
    files: u64,
    /// Records dropped because they were not the subject's.
    dropped: u64,
}

impl SpoolWriter {
    pub fn create(store: &ExportStore, spool: Key) -> Self {
        SpoolWriter {
            store: store.clone(),
            out: store.writer(spool),
            stored: Vec::new(),
            pending: Vec::new(),
            count: 0,
            provided: 0,
            files: 0,
            dropped: 0,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn provided_by_subject(&self) -> u64 {
        self.provided
    }

    /// Records dropped as not the subject's.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Drops a record that is not the subject's, with the files stored for it.
    pub async fn drop_record(&mut self) {
        self.dropped += 1;
        for (key, _) in std::mem::take(&mut self.pending) {
            let _ = self.store.delete(&key).await;
            self.stored.retain(|k| k != &key);
        }
    }

    /// Completes the spool; returns its key. Files no record claimed are not kept.
    pub async fn commit(mut self) -> Result<Key, StorageError> {
        for (key, _) in std::mem::take(&mut self.pending) {
            let _ = self.store.delete(&key).await;
            self.stored.retain(|k| k != &key);
        }
        let (store, stored) = (self.store, self.stored);
        match self.out.commit().await {
            Ok(k) => Ok(k),
            Err(e) => {
                for file in &stored {
                    let _ = store.delete(file).await;
                }
                Err(e)
            }
        }
    }

    /// Gives the attempt up, with the files it stored.
    pub async fn discard(self) {
        self.out.abort().await;
        for file in &self.stored {
            let _ = self.store.delete(file).await;
        }
    }

    async fn write_line(&mut self, entry: &SpoolEntry) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| SinkError(e.to_string()))?;
        line.push(b'\n');
        self.out.write(&line).await.map_err(|e| SinkError(e.to_string()))
    }
}

#[async_trait::async_trait]
impl RecordSink for SpoolWriter {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        let provided = record.provided_by_subject;
        for (_, file) in std::mem::take(&mut self.pending) {
            self.write_line(&SpoolEntry::File(file)).await?;
        }
        self.write_line(&SpoolEntry::Record(record)).await?;
        self.count += 1;
        if provided {
            self.provided += 1;
        }
        Ok(())
    }

    async fn attach(&mut self, file: FileMeta, mut body: ByteStream<'_>) -> Result<StoredFile, SinkError> {
        self.files += 1;
        let relative = format!(
            "{}/{:04}-{}",
            safe_file_name(&file.folder),
            self.files,
            safe_file_name(&file.name)
        );
        let mut out = self.store.writer(file_key(self.out.key(), &relative));
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    out.abort().await;
                    return Err(SinkError(format!("the vendor's file broke off: {e}")));
                }
            };
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            if let Err(e) = out.write(&chunk).await {
                out.abort().await;
                return Err(SinkError(e.to_string()));
            }
        }
        let stored_key = out.commit().await.map_err(|e| SinkError(e.to_string()))?;
        self.stored.push(stored_key.clone());
        let stored = StoredFile {
            path: relative,
            media_type: file.media_type,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        };
        // Listed with its record: a file whose record is dropped goes with it.
        self.pending.push((stored_key, stored.clone()));
        Ok(stored)
    }
}

/// Reads a committed spool back, one entry at a time.
pub async fn read_spool(
    store: &ExportStore,
    spool: &Key,
    mut each: impl FnMut(SpoolEntry) -> std::io::Result<()>,
) -> Result<(), StorageError> {
    let fail = |source: std::io::Error| StorageError {
        location: store.locate(spool),
        source,
    };
    let mut lines = BufReader::new(store.reader(spool).await?).lines();
    while let Some(line) = lines.next_line().await.map_err(fail)? {
        let entry: SpoolEntry =
            serde_json::from_str(&line).map_err(|e| fail(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        each(entry).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_committed_spools_are_visible_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = ExportStore::local(dir.path()).unwrap();
        let spool = spool_key("r1", Processor::Wix, 1);
        let mut writer = SpoolWriter::create(&store, spool.clone());
        for i in 0..3 {
            writer
                .accept(Record {
                    category: "contacts".into(),
                    id: Some(i.to_string()),
                    provided_by_subject: i == 0,
                    data: serde_json::json!({"n": i}),
                    claims: vec![],
                })
                .await
                .unwrap();
        }
        assert!(store.size(&spool).await.is_err(), "nothing is visible before commit");
        assert_eq!(writer.provided_by_subject(), 1);
        let body = futures::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"%PDF-")),
            Ok(bytes::Bytes::from_static(b"1.4")),
        ])
        .boxed();
        let meta = FileMeta {
            folder: "attachments".into(),
            name: "../offer.pdf".into(),
            media_type: "application/pdf".into(),
        };
        let stored = writer.attach(meta, body).await.unwrap();
        assert_eq!(stored.path, "attachments/0001-offer.pdf");
        assert_eq!(stored.bytes, 8);
        // The file is listed with the record that follows it.
        writer
            .accept(Record {
                category: "mail".into(),
                id: Some("3".into()),
                provided_by_subject: false,
                data: serde_json::json!({"file": stored.path}),
                claims: vec![],
            })
            .await
            .unwrap();
        let committed = writer.commit().await.unwrap();
        let file = store
            .get(&file_key(&committed, "attachments/0001-offer.pdf"))
            .await
            .unwrap();
        assert_eq!(&file[..], b"%PDF-1.4");
        let mut seen = Vec::new();
        read_spool(&store, &committed, |entry| {
            seen.push(match entry {
                SpoolEntry::Record(r) => r.id.unwrap(),
                SpoolEntry::File(f) => f.path,
            });
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen, ["0", "1", "2", "attachments/0001-offer.pdf", "3"]);
    }

    #[tokio::test]
    async fn a_discarded_attempt_leaves_no_files() {
        let store = ExportStore::in_memory();
        let mut writer = SpoolWriter::create(&store, spool_key("r2", Processor::Microsoft365, 1));
        let body = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"x"))]).boxed();
        let meta = FileMeta {
            folder: "attachments".into(),
            name: "a.txt".into(),
            media_type: "text/plain".into(),
        };
        writer.attach(meta, body).await.unwrap();
        writer.discard().await;
        assert!(store.list(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dropped_records_files_go_with_it() {
        let store = ExportStore::in_memory();
        let mut writer = SpoolWriter::create(&store, spool_key("r3", Processor::Microsoft365, 1));
        let body = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"someone else's"))]).boxed();
        let meta = FileMeta {
            folder: "attachments".into(),
            name: "theirs.txt".into(),
            media_type: "text/plain".into(),
        };
        writer.attach(meta, body).await.unwrap();
        writer.drop_record().await;
        assert_eq!(writer.dropped(), 1);
        let committed = writer.commit().await.unwrap();
        let mut entries = 0;
        read_spool(&store, &committed, |_| {
            entries += 1;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(entries, 0, "neither the record nor its file is listed");
        let left = store.list(None).await.unwrap();
        assert!(left.iter().all(|(k, _)| !k.to_string().contains("theirs")), "{left:?}");
    }
}
