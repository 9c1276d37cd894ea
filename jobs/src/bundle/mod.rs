//! The subject's bundle, `dsr-<request>.zip`: per processor and category the records as JSON
//! (vendor field names kept) and CSV (UTF-8 with BOM, so spreadsheet programs show æøå), the
//! attachments byte for byte, an `index.html` that opens offline and explains everything,
//! and a `manifest.json` with a SHA-256 per file. Assembled by streaming the accepted spools
//! in a fixed order, so memory stays bounded whatever the size, and written under a temporary
//! name, then renamed: a reader never sees half a bundle.

pub mod flatten;
pub mod index;
pub mod info;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::engine::EngineError;
use crate::ledger::ts;
use crate::model::{Request, RequestKind, Task};
use crate::spool::{SpoolEntry, files_dir};

pub use info::ProcessingInfo;

pub const MANIFEST_SCHEMA: u32 = 1;

/// One file in the bundle, as the manifest lists it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub media_type: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategorySummary {
    pub name: String,
    pub records: u64,
    pub json: String,
    pub csv: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessorSummary {
    pub processor: String,
    pub name: String,
    pub status: String,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub categories: Vec<CategorySummary>,
    pub attachments: Vec<FileEntry>,
}

/// The bundle that was written, and the hash of its manifest (kept in the ledger).
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub manifest_sha256: String,
}

/// Writes bytes into the current ZIP entry and keeps their count and hash.
struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hasher: Sha256,
    bytes: u64,
}

impl<'a, W: Write> Hashing<'a, W> {
    fn new(inner: &'a mut W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn entry(self, path: String, media_type: &str) -> FileEntry {
        FileEntry {
            path,
            bytes: self.bytes,
            media_type: media_type.into(),
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Calls `each` for every spool entry, streaming the file.
fn each_entry(spool: &Path, mut each: impl FnMut(SpoolEntry) -> std::io::Result<()>) -> std::io::Result<()> {
    for line in BufReader::new(File::open(spool)?).lines() {
        let entry: SpoolEntry =
            serde_json::from_str(&line?).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        each(entry)?;
    }
    Ok(())
}

type Zip = zip::ZipWriter<BufWriter<File>>;

/// Media types whose content is compressed already.
fn already_compressed(media_type: &str) -> bool {
    let t = media_type.to_ascii_lowercase();
    (t.starts_with("image/") && t != "image/svg+xml" && t != "image/bmp")
        || t.starts_with("video/")
        || t.starts_with("audio/")
        || t == "application/pdf"
        || t == "application/zip"
        || t == "application/gzip"
        || t == "application/octet-stream"
        || t.starts_with("application/vnd.openxmlformats")
}

fn options(large: bool) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(large)
}

/// Streams one category of a spool into `<processor>/<category>.json` and `.csv`.
fn write_category(
    zip: &mut Zip,
    spool: &Path,
    processor: &str,
    category: &str,
    columns: &BTreeSet<String>,
    portability: bool,
    large: bool,
) -> std::io::Result<(FileEntry, FileEntry)> {
    let wanted =
        |record: &dsr_connector::Record| record.category == category && (!portability || record.provided_by_subject);
    let json_path = format!("{processor}/{category}.json");
    zip.start_file(&json_path, options(large))
        .map_err(std::io::Error::other)?;
    let mut out = Hashing::new(zip);
    out.write_all(b"[\n")?;
    let mut first = true;
    each_entry(spool, |entry| {
        if let SpoolEntry::Record(record) = entry
            && wanted(&record)
        {
            if !first {
                out.write_all(b",\n")?;
            }
            first = false;
            serde_json::to_writer_pretty(&mut out, &record.data).map_err(std::io::Error::other)?;
        }
        Ok(())
    })?;
    out.write_all(b"\n]\n")?;
    let json_entry = out.entry(json_path, "application/json");

    let csv_path = format!("{processor}/{category}.csv");
    zip.start_file(&csv_path, options(large))
        .map_err(std::io::Error::other)?;
    let mut out = Hashing::new(zip);
    out.write_all("\u{feff}".as_bytes())?;
    {
        let mut csv = csv::Writer::from_writer(&mut out);
        csv.write_record(columns).map_err(std::io::Error::other)?;
        each_entry(spool, |entry| {
            if let SpoolEntry::Record(record) = entry
                && wanted(&record)
            {
                let flat = flatten::flatten(&record.data);
                csv.write_record(columns.iter().map(|c| flat.get(c).map(String::as_str).unwrap_or("")))
                    .map_err(std::io::Error::other)?;
            }
            Ok(())
        })?;
        csv.flush()?;
    }
    Ok((json_entry, out.entry(csv_path, "text/csv; charset=utf-8")))
}

fn write_sync(final_path: &Path, request: &Request, tasks: &[Task], info: &ProcessingInfo) -> std::io::Result<Written> {
    let portability = request.kind == RequestKind::Portability;
    let tmp = final_path.with_extension("zip.partial");
    let file = {
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        open.open(&tmp)?
    };
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let mut entries: Vec<FileEntry> = Vec::new();
    let mut processors: Vec<ProcessorSummary> = Vec::new();
    for task in tasks {
        let mut summary = ProcessorSummary {
            processor: task.processor.as_str().into(),
            name: task.processor.display_name().into(),
            status: task.status.as_str().into(),
            outcome: task.outcome.map(|o| o.as_str().to_string()),
            reason: task.reason.clone(),
            error: task.error.clone(),
            notes: task.evidence["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(String::from))
                .collect(),
            categories: Vec::new(),
            attachments: Vec::new(),
        };
        if let Some(spool) = task.spool.as_deref().map(Path::new) {
            // First pass: which categories, how many records, which CSV columns.
            let mut categories: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
            let mut files = Vec::new();
            each_entry(spool, |entry| {
                match entry {
                    SpoolEntry::Record(r) if portability && !r.provided_by_subject => {}
                    SpoolEntry::Record(r) => {
                        let slot = categories.entry(r.category.clone()).or_default();
                        slot.0 += 1;
                        slot.1.extend(flatten::flatten(&r.data).into_keys());
                    }
                    // Attachments are what others sent the subject: not part of portability.
                    SpoolEntry::File(_) if portability => {}
                    SpoolEntry::File(f) => files.push(f),
                }
                Ok(())
            })?;
            let large = std::fs::metadata(spool)?.len() > (2u64 << 30);
            for (category, (records, columns)) in &categories {
                let (json_entry, csv_entry) = write_category(
                    &mut zip,
                    spool,
                    &summary.processor,
                    category,
                    columns,
                    portability,
                    large,
                )?;
                summary.categories.push(CategorySummary {
                    name: category.clone(),
                    records: *records,
                    json: json_entry.path.clone(),
                    csv: csv_entry.path.clone(),
                });
                entries.extend([json_entry, csv_entry]);
            }
            for file in files {
                let source = files_dir(spool).join(&file.path);
                let path = format!("{}/{}", summary.processor, file.path);
                let mut opts = options(file.bytes > (4u64 << 30) - 1);
                if already_compressed(&file.media_type) {
                    // Deflating a PDF, an image or an Office file again costs time and gains
                    // nothing.
                    opts = opts
                        .compression_method(zip::CompressionMethod::Stored)
                        .compression_level(None);
                }
                zip.start_file(&path, opts).map_err(std::io::Error::other)?;
                let mut out = Hashing::new(&mut zip);
                std::io::copy(&mut File::open(&source)?, &mut out)?;
                let entry = out.entry(path, &file.media_type);
                summary.attachments.push(entry.clone());
                entries.push(entry);
            }
        }
        processors.push(summary);
    }

    let generated_at = Utc::now();
    let html = index::render(request, &processors, info, generated_at).map_err(std::io::Error::other)?;
    zip.start_file("index.html", options(false))
        .map_err(std::io::Error::other)?;
    let mut out = Hashing::new(&mut zip);
    out.write_all(html.as_bytes())?;
    entries.push(out.entry("index.html".into(), "text/html; charset=utf-8"));

    let manifest = json!({
        "schema_version": MANIFEST_SCHEMA,
        "request_id": request.id,
        "kind": request.kind,
        "identities_searched": request.identities,
        "received_at": ts(request.received_at),
        "generated_at": ts(generated_at),
        "processors": processors.iter().map(|p| json!({
            "processor": p.processor, "status": p.status, "outcome": p.outcome, "reason": p.reason, "error": p.error,
            "notes": p.notes,
            "categories": p.categories.iter().map(|c| (c.name.clone(), json!({"records": c.records}))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "files": entries,
    });
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    zip.start_file("manifest.json", options(false))
        .map_err(std::io::Error::other)?;
    zip.write_all(&manifest_bytes)?;
    let mut writer = zip.finish().map_err(std::io::Error::other)?;
    writer.flush()?;
    writer.get_ref().sync_all()?;
    drop(writer);
    std::fs::rename(&tmp, final_path)?;
    Ok(Written {
        path: final_path.to_path_buf(),
        manifest_sha256: hex::encode(Sha256::digest(&manifest_bytes)),
    })
}

/// Writes `dsr-<id>.zip` in `dir` from the tasks' accepted spools.
pub async fn write_bundle(
    dir: &Path,
    request: &Request,
    tasks: &[Task],
    info: &ProcessingInfo,
) -> Result<Written, EngineError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| EngineError::Storage {
            path: dir.to_path_buf(),
            source,
        })?;
    let final_path = std::path::absolute(dir.join(format!("dsr-{}.zip", request.id)))
        .unwrap_or_else(|_| dir.join(format!("dsr-{}.zip", request.id)));
    let (request, tasks, info) = (request.clone(), tasks.to_vec(), info.clone());
    let target = final_path.clone();
    tokio::task::spawn_blocking(move || write_sync(&target, &request, &tasks, &info))
        .await
        .map_err(|e| EngineError::Invalid(format!("the bundle writer stopped: {e}")))?
        .map_err(|source| {
            let _ = std::fs::remove_file(final_path.with_extension("zip.partial"));
            EngineError::Storage {
                path: final_path.clone(),
                source,
            }
        })
}
