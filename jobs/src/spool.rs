//! The spool: one file per task and attempt, on the export storage, holding the records a
//! task found, one JSON object a line. `finalize` assembles the bundle from the spools the
//! ledger accepted, so it never matters which machine ran which task, and a re-delivered
//! task writes a new attempt file rather than adding to an old one.

use std::path::{Path, PathBuf};

use dsr_connector::{ByteStream, FileMeta, Processor, Record, RecordSink, SinkError, StoredFile, safe_file_name};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

/// One line of a spool: a record, or a file stored beside the spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum SpoolEntry {
    Record(Record),
    File(StoredFile),
}

/// The folder beside a spool that holds its files.
pub fn files_dir(spool: &Path) -> PathBuf {
    spool.with_extension("files")
}

/// Writes one attempt's records; only `commit` makes them visible.
pub struct SpoolWriter {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<tokio::fs::File>,
    count: u64,
    provided: u64,
    files: u64,
}

pub fn spool_path(export_dir: &Path, request_id: &str, processor: Processor, attempt: u32) -> PathBuf {
    export_dir
        .join("spool")
        .join(request_id)
        .join(processor.as_str())
        .join(format!("attempt-{attempt}.jsonl"))
}

impl SpoolWriter {
    pub async fn create(path: PathBuf) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension("jsonl.partial");
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(SpoolWriter {
            tmp,
            path,
            out: BufWriter::new(file),
            count: 0,
            provided: 0,
            files: 0,
        })
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn provided_by_subject(&self) -> u64 {
        self.provided
    }

    /// Flushes to disk and moves the file into place.
    pub async fn commit(mut self) -> std::io::Result<PathBuf> {
        self.out.flush().await?;
        self.out.get_mut().sync_all().await?;
        tokio::fs::rename(&self.tmp, &self.path).await?;
        Ok(self.path)
    }

    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.tmp).await;
        let _ = tokio::fs::remove_dir_all(files_dir(&self.path)).await;
    }

    async fn write_line(&mut self, entry: &SpoolEntry) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| SinkError(e.to_string()))?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .await
            .map_err(|e| SinkError(format!("writing {}: {e}", self.tmp.display())))
    }
}

#[async_trait::async_trait]
impl RecordSink for SpoolWriter {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        let provided = record.provided_by_subject;
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
        let target = files_dir(&self.path).join(&relative);
        let fail = |e: std::io::Error| SinkError(format!("storing {}: {e}", target.display()));
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(fail)?;
        }
        let mut out = tokio::fs::File::create(&target).await.map_err(fail)?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| SinkError(format!("the vendor's file broke off: {e}")))?;
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(fail)?;
        }
        out.sync_all().await.map_err(fail)?;
        let stored = StoredFile {
            path: relative,
            media_type: file.media_type,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        };
        self.write_line(&SpoolEntry::File(stored.clone())).await?;
        Ok(stored)
    }
}

/// Reads a committed spool back, one entry at a time.
pub async fn read_spool(path: &Path, mut each: impl FnMut(SpoolEntry) -> std::io::Result<()>) -> std::io::Result<()> {
    let file = tokio::fs::File::open(path).await?;
    let mut lines = BufReader::new(file).lines();
    while let Some(line) = lines.next_line().await? {
        let entry: SpoolEntry =
            serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        each(entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_committed_spools_are_visible_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = spool_path(dir.path(), "r1", Processor::Wix, 1);
        let mut writer = SpoolWriter::create(path.clone()).await.unwrap();
        for i in 0..3 {
            writer
                .accept(Record {
                    category: "contacts".into(),
                    id: Some(i.to_string()),
                    provided_by_subject: i == 0,
                    data: serde_json::json!({"n": i}),
                })
                .await
                .unwrap();
        }
        assert!(!path.exists(), "nothing is visible before commit");
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
        let committed = writer.commit().await.unwrap();
        assert_eq!(
            std::fs::read(files_dir(&committed).join("attachments/0001-offer.pdf")).unwrap(),
            b"%PDF-1.4"
        );
        let mut seen = Vec::new();
        read_spool(&committed, |entry| {
            seen.push(match entry {
                SpoolEntry::Record(r) => r.id.unwrap(),
                SpoolEntry::File(f) => f.path,
            });
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen, ["0", "1", "2", "attachments/0001-offer.pdf"]);
    }
}
