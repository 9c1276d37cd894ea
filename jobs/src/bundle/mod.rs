//! The subject's bundle, `dsr-<request>.zip`: per processor and category the records as JSON
//! (vendor field names kept) and CSV (UTF-8 with BOM, so spreadsheet programs show æøå), the
//! attachments byte for byte, an `index.html` that opens offline and explains everything,
//! and a `manifest.json` with a SHA-256 per file. Assembled by streaming the accepted spools
//! in a fixed order, so memory stays bounded whatever the size, on every core (`entries`:
//! the same bytes whichever thread finishes first), and written under a temporary name, then
//! renamed: a reader never sees half a bundle. [`Manifest`] is the manifest's one
//! shape: the writer here serialises it, `verify` reads it back.

mod entries;
pub mod flatten;
pub mod index;
pub mod info;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};
use dsr_connector::{Identities, Processor, StoredFile};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::confirmation::micros;
use crate::error::EngineError;
use crate::model::{Outcome, Request, RequestKind, Task, TaskStatus};
use crate::spool::{SpoolEntry, file_key};
use crate::storage::{ExportStore, Key, StorageError, SyncObjectWriter, key};
use tokio::runtime::Handle;

use entries::{Ahead, Entry, Threads};
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

fn options(large: bool, at: zip::DateTime) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(large)
        .last_modified_time(at)
}

/// What an entry of the bundle holds (but the index and the manifest).
pub(super) enum Content {
    /// A spooled file, as stored.
    File(Key),
    /// One category of a spool's records as JSON.
    Json(Category),
    /// One category of a spool's records as CSV, in these columns.
    Csv(Category, BTreeSet<String>),
}

/// One category of one spool.
pub(super) struct Category {
    spool: Key,
    name: String,
    /// Only records the subject provided (a portability request).
    portability: bool,
}

impl Category {
    fn wants(&self, record: &dsr_connector::Record) -> bool {
        record.category == self.name && (!self.portability || record.provided_by_subject)
    }
}

/// Streams one category of a spool into `out` as a JSON array of the records' data.
fn write_json(out: &mut dyn Write, source: &Source, category: &Category) -> std::io::Result<()> {
    out.write_all(b"[\n")?;
    let mut first = true;
    source.each_entry(&category.spool, |entry| {
        if let SpoolEntry::Record(record) = entry
            && category.wants(&record)
        {
            if !first {
                out.write_all(b",\n")?;
            }
            first = false;
            serde_json::to_writer_pretty(&mut *out, &record.data).map_err(std::io::Error::other)?;
        }
        Ok(())
    })?;
    out.write_all(b"\n]\n")
}

/// Streams one category of a spool into `out` as CSV in `columns`, with a BOM.
fn write_csv(
    out: &mut dyn Write,
    source: &Source,
    category: &Category,
    columns: &BTreeSet<String>,
) -> std::io::Result<()> {
    out.write_all("\u{feff}".as_bytes())?;
    let mut csv = csv::Writer::from_writer(out);
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
    source.each_entry(&category.spool, |entry| {
        if let SpoolEntry::Record(record) = entry
            && category.wants(&record)
        {
            let flat = flatten::flatten(&record.data);
            row(&mut columns.iter().map(|c| flat.get(c).map(String::as_str).unwrap_or("")))?;
        }
        Ok(())
    })?;
    csv.flush()
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

/// One task's spool, read once before anything is written: its categories with their record
/// counts and CSV columns, and its files.
struct Scanned {
    spool: Key,
    spool_bytes: u64,
    categories: BTreeMap<String, (u64, BTreeSet<String>)>,
    files: Vec<StoredFile>,
}

fn scan(source: &Source, spool: &Key, portability: bool) -> Result<Scanned, StorageError> {
    let fail = |e: std::io::Error| StorageError {
        location: spool.to_string(),
        source: e,
    };
    let mut categories: BTreeMap<String, (u64, BTreeSet<String>)> = BTreeMap::new();
    let mut files = Vec::new();
    source
        .each_entry(spool, |entry| {
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
        .map_err(fail)?;
    let spool_bytes = source.handle.block_on(source.store.size(spool))?;
    Ok(Scanned {
        spool: spool.clone(),
        spool_bytes,
        categories,
        files,
    })
}

/// The options of an attachment's entry.
fn attachment_options(file: &StoredFile, at: zip::DateTime) -> zip::write::SimpleFileOptions {
    let opts = options(file.bytes > u64::from(u32::MAX) - 1024, at);
    if already_compressed(&file.media_type) {
        // Deflating a PDF, an image or an Office file again costs time and gains nothing.
        opts.compression_method(zip::CompressionMethod::Stored)
            .compression_level(None)
    } else {
        opts
    }
}

/// The time every entry carries: when the bundle was generated, in UTC (a ZIP time has no
/// zone). Set here rather than left to the zip crate, which would stamp the time of writing
/// when its `time` feature is on: the same data must give the same bytes.
fn zip_time(at: DateTime<Utc>) -> zip::DateTime {
    use chrono::{Datelike, Timelike};
    let (Ok(year), Ok(month), Ok(day), Ok(hour), Ok(minute), Ok(second)) = (
        u16::try_from(at.year()),
        u8::try_from(at.month()),
        u8::try_from(at.day()),
        u8::try_from(at.hour()),
        u8::try_from(at.minute()),
        u8::try_from(at.second()),
    ) else {
        return zip::DateTime::default();
    };
    zip::DateTime::from_date_and_time(year, month, day, hour, minute, second).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn write_sync(
    out: SyncObjectWriter,
    source: &Source,
    request: &Request,
    tasks: &[Task],
    info: &ProcessingInfo,
    signer: Option<&crate::signing::Signer>,
    generated_at: DateTime<Utc>,
    threads: Threads<'_>,
) -> Result<Written, StorageError> {
    let location = out.location().to_string();
    let fail = |source: std::io::Error| StorageError {
        location: location.clone(),
        source,
    };
    let portability = request.kind == RequestKind::Portability;
    // As precise as the manifest writes it.
    let generated_at = generated_at.trunc_subsecs(6);
    let at = zip_time(generated_at);
    // Every spool is read once first, so that every entry can be made ahead on other threads
    // while the writer copies the ones before it.
    let mut scanned = Vec::with_capacity(tasks.len());
    for task in tasks {
        scanned.push(match task.spool.as_deref() {
            Some(spool) => {
                let spool =
                    Key::parse(spool).map_err(|e| fail(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
                Some(scan(source, &spool, portability)?)
            }
            None => None,
        });
    }
    // The bundle's entries in order: per processor, each category's JSON and CSV, then its
    // files.
    let mut made: Vec<Entry> = Vec::new();
    for (task, scanned) in tasks.iter().zip(&scanned) {
        let Some(scanned) = scanned else { continue };
        let processor = task.processor;
        let large = needs_zip64(scanned.spool_bytes);
        for (name, (_, columns)) in &scanned.categories {
            let category = || Category {
                spool: scanned.spool.clone(),
                name: name.clone(),
                portability,
            };
            made.push(Entry {
                path: format!("{processor}/{name}.json"),
                media_type: "application/json".into(),
                options: options(large, at),
                content: Content::Json(category()),
            });
            made.push(Entry {
                path: format!("{processor}/{name}.csv"),
                media_type: "text/csv; charset=utf-8".into(),
                options: options(large, at),
                content: Content::Csv(category(), columns.clone()),
            });
        }
        made.extend(scanned.files.iter().map(|file| Entry {
            path: format!("{processor}/{}", file.path),
            media_type: file.media_type.clone(),
            options: attachment_options(file, at),
            content: Content::File(file_key(&scanned.spool, &file.path)),
        }));
    }
    let temporary = source
        .store
        .local_dir()
        .map_or_else(std::env::temp_dir, Path::to_path_buf);

    let mut zip = zip::ZipWriter::new_stream(BufWriter::with_capacity(1 << 20, out));
    let mut entries: Vec<FileEntry> = Vec::new();
    let mut processors: Vec<ProcessorSummary> = Vec::new();
    std::thread::scope(|scope| -> Result<(), StorageError> {
        let mut ahead = Ahead::start(scope, source, &temporary, threads, made);
        let mut next = || ahead.next().and_then(|d| d.copy_into(&mut zip)).map_err(&fail);
        for (task, scanned) in tasks.iter().zip(&scanned) {
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
            if let Some(scanned) = scanned {
                for (category, (records, _)) in &scanned.categories {
                    let (json, csv) = (next()?, next()?);
                    summary.categories.push(CategorySummary {
                        name: category.clone(),
                        records: *records,
                        json: json.path.clone(),
                        csv: csv.path.clone(),
                    });
                    entries.extend([json, csv]);
                }
                for _ in &scanned.files {
                    let entry = next()?;
                    summary.attachments.push(entry.clone());
                    entries.push(entry);
                }
            }
            processors.push(summary);
        }
        Ok(())
    })?;

    let html = index::render(request, &processors, info, generated_at).map_err(|e| fail(std::io::Error::other(e)))?;
    let add = |zip: &mut Zip, path: &str, bytes: &[u8]| -> std::io::Result<()> {
        zip.start_file(path, options(false, at))
            .map_err(std::io::Error::other)?;
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
    write_bundle_at(store, request, tasks, info, signer, Utc::now()).await
}

/// [`write_bundle`] generated at `generated_at` (the engine's clock): the same data and time
/// give the same bytes.
pub async fn write_bundle_at(
    store: &ExportStore,
    request: &Request,
    tasks: &[Task],
    info: &ProcessingInfo,
    signer: Option<crate::signing::Signer>,
    generated_at: DateTime<Utc>,
) -> Result<Written, EngineError> {
    let handle = Handle::current();
    let out = store.writer(bundle_key(&request.id)).into_sync(handle.clone());
    let source = Source {
        store: store.clone(),
        handle,
    };
    let (request, tasks, info) = (request.clone(), tasks.to_vec(), info.clone());
    tokio::task::spawn_blocking(move || {
        write_sync(
            out,
            &source,
            &request,
            &tasks,
            &info,
            signer.as_ref(),
            generated_at,
            Threads::per_core(),
        )
    })
    .await
    .map_err(|e| EngineError::Stopped {
        what: "the bundle writer",
        reason: e.to_string(),
    })?
    .map_err(EngineError::Storage)
}

#[cfg(test)]
mod tests;
