//! The spool: one object per task and attempt, in the export storage, holding the records a
//! task found, one JSON object a line. `finalize` assembles the bundle from the spools the
//! ledger accepted, so it never matters which machine ran which task, and a re-delivered
//! task writes a new attempt file rather than adding to an old one.

use dsr_connector::{
    ByteStream, FileMeta, FileOut, FileSlot, Processor, Record, RecordSink, SinkError, SlotFile, StoredFile,
    numbered_path,
};
use serde::{Deserialize, Serialize};
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
    /// Files named (reserved) and not yet handed back with `keep`: gone at commit.
    unkept: Vec<Key>,
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
            unkept: Vec::new(),
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
        let pending = std::mem::take(&mut self.pending).into_iter().map(|(key, _)| key);
        for key in pending.chain(std::mem::take(&mut self.unkept)) {
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

    async fn attach(&mut self, file: FileMeta, body: ByteStream<'_>) -> Result<StoredFile, SinkError> {
        let stored = self.reserve(file).store(body).await?;
        self.keep(stored).await
    }

    /// Names the file now, in call order (`{folder}/{n:04}-{name}`), and writes it straight to
    /// the export storage beside the spool; several may be written at once.
    fn reserve(&mut self, file: FileMeta) -> FileSlot {
        self.files += 1;
        let relative = numbered_path(&file, self.files);
        let key = file_key(self.out.key(), &relative);
        // Remembered before a byte is written: a discarded attempt removes it however far
        // its write got.
        self.stored.push(key.clone());
        self.unkept.push(key.clone());
        FileSlot::new(file, relative, Box::new(SpoolFile(self.store.writer(key))))
    }

    async fn keep(&mut self, stored: SlotFile) -> Result<StoredFile, SinkError> {
        let key = file_key(self.out.key(), &stored.file.path);
        let Some(at) = self.unkept.iter().position(|k| k == &key) else {
            return Err(SinkError(format!(
                "{} was not reserved in this spool",
                stored.file.path
            )));
        };
        self.unkept.remove(at);
        // Listed with its record: a file whose record is dropped goes with it.
        self.pending.push((key, stored.file.clone()));
        Ok(stored.file)
    }
}

/// A file beside a spool, written as its bytes arrive.
struct SpoolFile(ObjectWriter);

#[async_trait::async_trait]
impl FileOut for SpoolFile {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), SinkError> {
        self.0.write(chunk).await.map_err(|e| SinkError(e.to_string()))
    }

    async fn commit(self: Box<Self>) -> Result<(), SinkError> {
        self.0.commit().await.map(|_| ()).map_err(|e| SinkError(e.to_string()))
    }

    async fn abort(self: Box<Self>) {
        self.0.abort().await;
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
    use futures::StreamExt;
    use sha2::Digest;

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

    /// A body fed chunk by chunk from the test, so stores can be made to finish in any order.
    fn fed() -> (
        futures::channel::mpsc::UnboundedSender<std::io::Result<bytes::Bytes>>,
        ByteStream<'static>,
    ) {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        (tx, rx.boxed())
    }

    fn meta(name: &str) -> FileMeta {
        FileMeta {
            folder: "attachments".into(),
            name: name.into(),
            media_type: "text/plain".into(),
        }
    }

    #[tokio::test]
    async fn files_stored_at_once_keep_the_names_and_places_they_were_reserved_with() {
        let store = ExportStore::in_memory();
        let mut writer = SpoolWriter::create(&store, spool_key("r4", Processor::Microsoft365, 1));
        let slots = [meta("a.txt"), meta("b.txt"), meta("a.txt")].map(|m| writer.reserve(m));
        let paths: Vec<_> = slots.iter().map(|s| s.path().unwrap().to_string()).collect();
        assert_eq!(
            paths,
            [
                "attachments/0001-a.txt",
                "attachments/0002-b.txt",
                "attachments/0003-a.txt"
            ]
        );
        let (feeds, bodies): (Vec<_>, Vec<_>) = (0..3).map(|_| fed()).unzip();
        let stores = futures::future::join_all(slots.into_iter().zip(bodies).map(|(slot, body)| slot.store(body)));
        // Interleaved chunks, and the last reserved finishes first.
        let feeding = async move {
            for round in 0..3 {
                for (i, feed) in feeds.iter().enumerate().rev() {
                    feed.unbounded_send(Ok(bytes::Bytes::from(format!("{i}{round}"))))
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            }
            for feed in feeds.iter().rev() {
                feed.close_channel();
                tokio::task::yield_now().await;
            }
        };
        let (stored, ()) = futures::join!(stores, feeding);
        let mut kept = Vec::new();
        for file in stored {
            kept.push(writer.keep(file.unwrap()).await.unwrap());
        }
        let record = |id: &str| Record {
            category: "mail".into(),
            id: Some(id.into()),
            provided_by_subject: false,
            data: serde_json::json!({}),
            claims: vec![],
        };
        writer.accept(record("m1")).await.unwrap();
        let committed = writer.commit().await.unwrap();
        for (i, file) in kept.iter().enumerate() {
            assert_eq!(file.path, paths[i]);
            let bytes = store.get(&file_key(&committed, &file.path)).await.unwrap();
            assert_eq!(String::from_utf8_lossy(&bytes), format!("{i}0{i}1{i}2"));
            assert_eq!(file.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
        }
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
        assert_eq!(seen, [&paths[0], &paths[1], &paths[2], "m1"]);
    }

    #[tokio::test]
    async fn a_reserved_file_never_kept_is_not_left_behind() {
        let store = ExportStore::in_memory();
        let mut writer = SpoolWriter::create(&store, spool_key("r5", Processor::Microsoft365, 1));
        let slot = writer.reserve(meta("orphan.txt"));
        let body = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"x"))]).boxed();
        let stored = slot.store(body).await.unwrap();
        assert!(stored.held.is_none(), "written to the storage, not held");
        let committed = writer.commit().await.unwrap();
        let left = store.list(None).await.unwrap();
        assert_eq!(left.len(), 1, "the spool only: {left:?}");
        assert_eq!(left[0].0, committed);
    }
}
