//! The spool: one file per task and attempt, on the export storage, holding the records a
//! task found, one JSON object a line. `finalize` assembles the bundle from the spools the
//! ledger accepted, so it never matters which machine ran which task, and a re-delivered
//! task writes a new attempt file rather than adding to an old one.

use std::path::{Path, PathBuf};

use dsr_connector::{Processor, Record, RecordSink, SinkError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

/// Writes one attempt's records; only `commit` makes them visible.
pub struct SpoolWriter {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<tokio::fs::File>,
    count: u64,
    provided: u64,
}

pub fn spool_path(
    export_dir: &Path,
    request_id: &str,
    processor: Processor,
    attempt: u32,
) -> PathBuf {
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
    }
}

#[async_trait::async_trait]
impl RecordSink for SpoolWriter {
    async fn accept(&mut self, record: Record) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(&record).map_err(|e| SinkError(e.to_string()))?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .await
            .map_err(|e| SinkError(format!("writing {}: {e}", self.tmp.display())))?;
        self.count += 1;
        if record.provided_by_subject {
            self.provided += 1;
        }
        Ok(())
    }
}

/// Reads a committed spool back, one record at a time.
pub async fn read_spool(
    path: &Path,
    mut each: impl FnMut(Record) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let file = tokio::fs::File::open(path).await?;
    let mut lines = BufReader::new(file).lines();
    while let Some(line) = lines.next_line().await? {
        let record: Record = serde_json::from_str(&line)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        each(record)?;
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
        let committed = writer.commit().await.unwrap();
        let mut seen = Vec::new();
        read_spool(&committed, |r| {
            seen.push(r.id.unwrap());
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen, ["0", "1", "2"]);
    }
}
