//! The subject's bundle, `dsr-<request>.zip`: per processor and category the records as JSON
//! (vendor field names kept) and CSV (UTF-8 with BOM, so spreadsheet programs show æøå), the
//! attachments byte for byte, an `index.html` that opens offline and explains everything,
//! and a `manifest.json` with a SHA-256 per file. Assembled by streaming the accepted spools
//! in a fixed order, so memory stays bounded whatever the size, and written under a temporary
//! name, then renamed: a reader never sees half a bundle. [`Manifest`] is the manifest's one
//! shape: the writer here serialises it, `verify` reads it back.

pub mod flatten;
pub mod index;
pub mod info;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, BufWriter, Write};

use chrono::{DateTime, SubsecRound, Utc};
use dsr_connector::{Identities, Processor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::confirmation::micros;
use crate::error::EngineError;
use crate::model::{Outcome, Request, RequestKind, Task, TaskStatus};
use crate::spool::{SpoolEntry, file_key};
use crate::storage::{ExportStore, Key, StorageError, SyncObjectWriter, key};
use tokio::runtime::Handle;

pub use info::ProcessingInfo;

/// The version of [`Manifest`]'s shape. A reader refuses a version it does not know; a
/// change of shape bumps it (and keeps the reader of the old one).
pub const MANIFEST_SCHEMA: u32 = 1;

/// The entry holding the manifest.
pub const MANIFEST: &str = "manifest.json";

/// The entry holding the manifest's Ed25519 signature, when a key is configured.
pub const MANIFEST_SIGNATURE: &str = "manifest.json.sig";

/// `manifest.json`: what the bundle answers and every file in it with its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_SCHEMA`] when written by this dsr.
    pub schema_version: u32,
    pub request_id: String,
    pub kind: RequestKind,
    pub identities_searched: Identities,
    #[serde(with = "micros")]
    pub received_at: DateTime<Utc>,
    #[serde(with = "micros")]
    pub generated_at: DateTime<Utc>,
    pub processors: Vec<ManifestProcessor>,
    /// Every file in the bundle but the manifest and its signature.
    pub files: Vec<FileEntry>,
}

/// One processor's part, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestProcessor {
    pub processor: Processor,
    pub status: TaskStatus,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub refused_records: u64,
    /// Records per category.
    pub categories: BTreeMap<String, CategoryRecords>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryRecords {
    pub records: u64,
}

impl Manifest {
    /// Reads a manifest as written (any schema version this dsr knows).
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, crate::verification::DocumentError> {
        crate::verification::read_versioned(bytes, MANIFEST_SCHEMA)
    }
}

impl From<&ProcessorSummary> for ManifestProcessor {
    fn from(p: &ProcessorSummary) -> ManifestProcessor {
        ManifestProcessor {
            processor: p.processor,
            status: p.status,
            outcome: p.outcome,
            reason: p.reason.clone(),
            error: p.error.clone(),
            notes: p.notes.clone(),
            refused_records: p.refused_records,
            categories: p
                .categories
                .iter()
                .map(|c| (c.name.clone(), CategoryRecords { records: c.records }))
                .collect(),
        }
    }
}

/// One file in the bundle, as the manifest lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    pub processor: Processor,
    pub name: String,
    pub status: TaskStatus,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub notes: Vec<String>,
    /// Records the vendor returned that were not the subject's (dropped by the engine).
    pub refused_records: u64,
    pub categories: Vec<CategorySummary>,
    pub attachments: Vec<FileEntry>,
}

/// The bundle that was written, and the hash of its manifest (kept in the ledger).
#[derive(Debug, Clone)]
pub struct Written {
    /// Where an operator finds it: a file path, or a URL for a remote store.
    pub location: String,
    pub manifest_sha256: String,
}

/// The key of a request's bundle in the export storage.
pub fn bundle_key(request_id: &str) -> Key {
    key(&format!("dsr-{request_id}.zip"))
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

/// Reads spools and files from the export storage on a blocking thread.
struct Source {
    store: ExportStore,
    handle: Handle,
}

impl Source {
    fn open(&self, object: &Key) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.store.open_sync(object, &self.handle).map_err(into_io)
    }

    /// Calls `each` for every spool entry, streaming the object.
    fn each_entry(&self, spool: &Key, mut each: impl FnMut(SpoolEntry) -> std::io::Result<()>) -> std::io::Result<()> {
        for line in BufReader::with_capacity(1 << 20, self.open(spool)?).lines() {
            let entry: SpoolEntry =
                serde_json::from_str(&line?).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            each(entry)?;
        }
        Ok(())
    }
}

fn into_io(e: StorageError) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

type Zip = zip::ZipWriter<zip::write::StreamWriter<BufWriter<SyncObjectWriter>>>;

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

/// One spool's part in the bundle.
struct SpoolPart<'a> {
    spool: &'a Key,
    processor: Processor,
    /// Only records the subject provided (a portability request).
    portability: bool,
    /// Entries carry ZIP64 sizes.
    large: bool,
}

/// Streams one category of a spool into `<processor>/<category>.json` and `.csv`.
fn write_category(
    zip: &mut Zip,
    source: &Source,
    part: &SpoolPart<'_>,
    category: &str,
    columns: &BTreeSet<String>,
) -> std::io::Result<(FileEntry, FileEntry)> {
    let SpoolPart {
        spool,
        processor,
        portability,
        large,
    } = *part;
    let wanted =
        |record: &dsr_connector::Record| record.category == category && (!portability || record.provided_by_subject);
    let json_path = format!("{processor}/{category}.json");
    zip.start_file(&json_path, options(large))
        .map_err(std::io::Error::other)?;
    let mut out = Hashing::new(zip);
    out.write_all(b"[\n")?;
    let mut first = true;
    source.each_entry(spool, |entry| {
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
        // Every cell, column names too, goes through `csv_cell`: no formula runs when the
        // subject opens the file in a spreadsheet.
        let mut row = |cells: &mut dyn Iterator<Item = &str>| -> std::io::Result<()> {
            for cell in cells {
                csv.write_field(flatten::csv_cell(cell).as_bytes())
                    .map_err(std::io::Error::other)?;
            }
            // Ends the record.
            csv.write_record(None::<&[u8]>).map_err(std::io::Error::other)
        };
        row(&mut columns.iter().map(String::as_str))?;
        source.each_entry(spool, |entry| {
            if let SpoolEntry::Record(record) = entry
                && wanted(&record)
            {
                let flat = flatten::flatten(&record.data);
                row(&mut columns.iter().map(|c| flat.get(c).map(String::as_str).unwrap_or("")))?;
            }
            Ok(())
        })?;
        csv.flush()?;
    }
    Ok((json_entry, out.entry(csv_path, "text/csv; charset=utf-8")))
}

/// A JSON or CSV entry is written before its size is known, so ZIP64 is decided up front:
/// pretty-printed JSON can take several times the bytes of the one-line spool records it
/// comes from, so from this spool size on the entries carry ZIP64 sizes. (Attachments have
/// known sizes and get ZIP64 exactly when they need it.)
const ZIP64_FROM_SPOOL_BYTES: u64 = 512 << 20;

/// Whether an entry must carry ZIP64 sizes.
fn needs_zip64(spool_bytes: u64) -> bool {
    spool_bytes >= ZIP64_FROM_SPOOL_BYTES
}

fn write_sync(
    out: SyncObjectWriter,
    source: &Source,
    request: &Request,
    tasks: &[Task],
    info: &ProcessingInfo,
    signer: Option<&crate::signing::Signer>,
) -> Result<Written, StorageError> {
    let location = out.location().to_string();
    let fail = |source: std::io::Error| StorageError {
        location: location.clone(),
        source,
    };
    let portability = request.kind == RequestKind::Portability;
    let mut zip = zip::ZipWriter::new_stream(BufWriter::with_capacity(1 << 20, out));
    let mut entries: Vec<FileEntry> = Vec::new();
    let mut processors: Vec<ProcessorSummary> = Vec::new();
    for task in tasks {
        let mut summary = ProcessorSummary {
            processor: task.processor,
            name: task.processor.display_name().into(),
            status: task.status,
            outcome: task.outcome,
            reason: task.reason.clone(),
            error: task.error.clone(),
            notes: task.evidence["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(String::from))
                .collect(),
            refused_records: task.evidence["refused_records"].as_u64().unwrap_or(0),
            categories: Vec::new(),
            attachments: Vec::new(),
        };
        if let Some(spool) = task.spool.as_deref() {
            let spool = Key::parse(spool).map_err(|e| fail(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
            // First pass: which categories, how many records, which CSV columns.
            let mut categories: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
            let mut files = Vec::new();
            source
                .each_entry(&spool, |entry| {
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
                })
                .map_err(&fail)?;
            let spool_bytes = source.handle.block_on(source.store.size(&spool))?;
            for (category, (records, columns)) in &categories {
                let part = SpoolPart {
                    spool: &spool,
                    processor: summary.processor,
                    portability,
                    large: needs_zip64(spool_bytes),
                };
                let (json_entry, csv_entry) =
                    write_category(&mut zip, source, &part, category, columns).map_err(&fail)?;
                summary.categories.push(CategorySummary {
                    name: category.clone(),
                    records: *records,
                    json: json_entry.path.clone(),
                    csv: csv_entry.path.clone(),
                });
                entries.extend([json_entry, csv_entry]);
            }
            for file in files {
                let object = file_key(&spool, &file.path);
                let path = format!("{}/{}", summary.processor, file.path);
                let mut opts = options(file.bytes > u64::from(u32::MAX) - 1024);
                if already_compressed(&file.media_type) {
                    // Deflating a PDF, an image or an Office file again costs time and gains
                    // nothing.
                    opts = opts
                        .compression_method(zip::CompressionMethod::Stored)
                        .compression_level(None);
                }
                zip.start_file(&path, opts)
                    .map_err(|e| fail(std::io::Error::other(e)))?;
                let mut out = Hashing::new(&mut zip);
                std::io::copy(&mut source.open(&object).map_err(&fail)?, &mut out).map_err(&fail)?;
                let entry = out.entry(path, &file.media_type);
                summary.attachments.push(entry.clone());
                entries.push(entry);
            }
        }
        processors.push(summary);
    }

    // As precise as the manifest writes it.
    let generated_at = Utc::now().trunc_subsecs(6);
    let html = index::render(request, &processors, info, generated_at).map_err(|e| fail(std::io::Error::other(e)))?;
    let add = |zip: &mut Zip, path: &str, bytes: &[u8]| -> std::io::Result<()> {
        zip.start_file(path, options(false)).map_err(std::io::Error::other)?;
        zip.write_all(bytes)
    };
    add(&mut zip, "index.html", html.as_bytes()).map_err(&fail)?;
    entries.push(FileEntry {
        path: "index.html".into(),
        bytes: html.len() as u64,
        media_type: "text/html; charset=utf-8".into(),
        sha256: hex::encode(Sha256::digest(html.as_bytes())),
    });

    let manifest = Manifest {
        schema_version: MANIFEST_SCHEMA,
        request_id: request.id.clone(),
        kind: request.kind,
        identities_searched: request.identities.clone(),
        received_at: request.received_at.trunc_subsecs(6),
        generated_at,
        processors: processors.iter().map(ManifestProcessor::from).collect(),
        files: entries,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| fail(std::io::Error::other(e)))?;
    add(&mut zip, MANIFEST, &manifest_bytes).map_err(&fail)?;
    if let Some(signer) = signer {
        // Not in the manifest (it signs the manifest): `dsr verify` checks it on its own.
        let sig =
            serde_json::to_vec_pretty(&signer.sign(&manifest_bytes)).map_err(|e| fail(std::io::Error::other(e)))?;
        add(&mut zip, MANIFEST_SIGNATURE, &sig).map_err(&fail)?;
    }
    let buffered = zip.finish().map_err(|e| fail(std::io::Error::other(e)))?.into_inner();
    let out = buffered.into_inner().map_err(|e| fail(e.into_error()))?;
    out.commit()?;
    Ok(Written {
        location,
        manifest_sha256: hex::encode(Sha256::digest(&manifest_bytes)),
    })
}

/// Writes `dsr-<id>.zip` to the export storage from the tasks' accepted spools. Nothing is
/// visible under that name until the whole ZIP is stored.
pub async fn write_bundle(
    store: &ExportStore,
    request: &Request,
    tasks: &[Task],
    info: &ProcessingInfo,
    signer: Option<crate::signing::Signer>,
) -> Result<Written, EngineError> {
    let handle = Handle::current();
    let out = store.writer(bundle_key(&request.id)).into_sync(handle.clone());
    let source = Source {
        store: store.clone(),
        handle,
    };
    let (request, tasks, info) = (request.clone(), tasks.to_vec(), info.clone());
    tokio::task::spawn_blocking(move || write_sync(out, &source, &request, &tasks, &info, signer.as_ref()))
        .await
        .map_err(|e| EngineError::Stopped {
            what: "the bundle writer",
            reason: e.to_string(),
        })?
        .map_err(EngineError::Storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip64_is_switched_on_before_an_entry_could_pass_4_gib() {
        assert!(!needs_zip64(10 << 20));
        assert!(needs_zip64(512 << 20));
        // Pretty printing at most multiplies a spool by eight below the threshold.
        assert!((ZIP64_FROM_SPOOL_BYTES - 1) * 8 < u64::from(u32::MAX));
    }

    fn unzip(path: &str, name: &str) -> String {
        use std::io::Read;
        let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut text = String::new();
        zip.by_name(name).unwrap().read_to_string(&mut text).unwrap();
        text
    }

    #[tokio::test]
    async fn csv_cells_a_spreadsheet_would_run_are_quoted_and_the_json_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = ExportStore::local(dir.path()).unwrap();
        let spool = crate::spool::spool_key("r-csv", Processor::Wix, 1);
        let hostile = serde_json::json!({
            "subject": "=HYPERLINK(\"http://evil.example\",\"open\")",
            "plus": "+1", "minus": "-2+3", "at": "@SUM(1)", "tab": "\tx", "cr": "\rx",
            "=cmd": "header", "plain": "Kari", "amount": -12,
        });
        let record = dsr_connector::Record {
            category: "comments".into(),
            id: Some("c-1".into()),
            provided_by_subject: true,
            data: hostile.clone(),
            claims: Vec::new(),
        };
        let path = dir.path().join(spool.as_ref());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let line = serde_json::to_string(&SpoolEntry::Record(record)).unwrap();
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let request = Request::received(
            "r-csv",
            RequestKind::Access,
            Identities::default(),
            crate::model::Lang::En,
            Utc::now(),
        );
        let task = Task {
            outcome: Some(Outcome::Done),
            evidence: serde_json::json!({"notes": []}),
            spool: Some(spool.to_string()),
            ..Task::attempted("r-csv", Processor::Wix, TaskStatus::Succeeded)
        };
        let written = write_bundle(&store, &request, &[task], &ProcessingInfo::example(), None)
            .await
            .unwrap();

        let csv = unzip(&written.location, "wix/comments.csv");
        let mut reader = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let row: Vec<String> = reader
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(String::from)
            .collect();
        let cells: BTreeMap<&str, &str> = header
            .iter()
            .map(String::as_str)
            .zip(row.iter().map(String::as_str))
            .collect();
        assert!(cells.contains_key("'=cmd"), "a column name is quoted too: {header:?}");
        for (column, value) in [
            ("subject", "'=HYPERLINK(\"http://evil.example\",\"open\")"),
            ("plus", "'+1"),
            ("minus", "'-2+3"),
            ("at", "'@SUM(1)"),
            ("tab", "'\tx"),
            ("cr", "'\rx"),
            ("'=cmd", "header"),
            ("plain", "Kari"),
            ("amount", "'-12"),
        ] {
            assert_eq!(cells[column], value, "{column}");
        }
        let json: serde_json::Value = serde_json::from_str(&unzip(&written.location, "wix/comments.json")).unwrap();
        assert_eq!(
            json,
            serde_json::json!([hostile]),
            "the JSON keeps every value as it was"
        );
        let index = unzip(&written.location, "index.html");
        assert!(
            index.contains("with a leading &#x27;"),
            "the index page explains the quote"
        );
    }
}
