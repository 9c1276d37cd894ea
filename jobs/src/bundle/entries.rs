//! The bundle's entries made on other threads, so an export uses every core: each category's
//! JSON and CSV and each attachment is written, hashed and deflated on one of a few threads
//! into a temporary one-entry ZIP — in memory up to [`IN_MEMORY`], beyond that in an unnamed
//! temporary file (personal data never lies about under a name) — and the bundle writer copies that entry's compressed bytes
//! unchanged into the bundle, in the bundle's order, while the threads make the next ones.
//!
//! The bundle's bytes do not depend on which thread finishes first: every entry is fed to its
//! compressor in chunks of one fixed size, whatever sizes the storage hands out or the JSON
//! and CSV writers write, with the same options, and the writer takes the results in order.
//! Memory holds a chunk, a compressor and a few buffers per thread; disk holds at most two
//! deflated entries per thread.

use std::collections::VecDeque;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use sha2::{Digest, Sha256};
use tempfile::SpooledTempFile;

use super::{Content, FileEntry, Source};

/// Bytes handed to the compressor at a time. Fixed, so the compressed bytes are the same
/// however the storage splits its reads and the JSON and CSV writers their writes.
const CHUNK: usize = 256 << 10;

/// A deflated entry up to this size stays in memory; a larger one spills to an unnamed
/// temporary file. A request's JSON, CSV and small attachments then cost no file of their
/// own, while memory stays bounded: at most two such entries per thread wait to be copied.
const IN_MEMORY: usize = 1 << 20;

/// One entry to make.
pub(super) struct Entry {
    /// Its name in the bundle.
    pub path: String,
    pub media_type: String,
    /// The method, and ZIP64 when its size may need it.
    pub options: zip::write::SimpleFileOptions,
    pub content: Content,
}

/// An entry deflated into its temporary ZIP, with its manifest entry.
pub(super) struct Deflated {
    pub entry: FileEntry,
    zip: zip::ZipArchive<SpooledTempFile>,
}

impl Deflated {
    /// Copies the entry's compressed bytes into `out` as they are.
    pub fn copy_into<W: Write + Seek>(mut self, out: &mut zip::ZipWriter<W>) -> std::io::Result<FileEntry> {
        let file = self.zip.by_index_raw(0).map_err(std::io::Error::other)?;
        out.raw_copy_file(file).map_err(std::io::Error::other)?;
        Ok(self.entry)
    }
}

/// How entries are made ahead. Tests vary the threads' timing through it; the bundle must not
/// change.
#[derive(Clone, Copy)]
pub(super) struct Threads<'a> {
    /// Threads making entries (the bundle writer, which mostly copies, is one more).
    pub workers: usize,
    /// Tests: wraps each attachment's reader (to hand out bytes in other sizes).
    pub reader: Option<&'a WrapReader>,
    /// Tests: called by the thread that deflated entry `n` (counted from 0), before it hands
    /// the entry on.
    pub deflated: Option<&'a (dyn Fn(usize) + Sync)>,
}

impl Threads<'_> {
    /// One thread per core (the writer mostly waits or copies), at most four: more would only
    /// hold more deflated entries on disk.
    pub fn per_core() -> Threads<'static> {
        Threads {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            reader: None,
            deflated: None,
        }
    }
}

/// Wraps an attachment's reader.
pub(super) type WrapReader = dyn Fn(Box<dyn Read + Send>) -> Box<dyn Read + Send> + Sync;

type Reply = mpsc::SyncSender<std::io::Result<Deflated>>;

/// The entries of the whole bundle, in order, made a few ahead of the writer.
pub(super) struct Ahead {
    /// Entries not yet handed to a thread, numbered.
    waiting: VecDeque<(usize, Entry)>,
    /// Handed out, in order: where each one's result arrives.
    pending: VecDeque<mpsc::Receiver<std::io::Result<Deflated>>>,
    jobs: Option<mpsc::Sender<(usize, Entry, Reply)>>,
    window: usize,
    stop: Arc<AtomicBool>,
}

impl Ahead {
    /// Starts `threads.workers` threads in `scope` on `entries` (the bundle's order, but for
    /// the index and the manifest, which are made last from these). Temporary files go to
    /// `dir`.
    pub fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        source: &'env Source,
        dir: &'env Path,
        threads: Threads<'env>,
        entries: Vec<Entry>,
    ) -> Ahead {
        let (jobs, queue) = mpsc::channel::<(usize, Entry, Reply)>();
        let queue = Arc::new(Mutex::new(queue));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = threads.workers.max(1);
        for _ in 0..workers {
            let (queue, stop) = (queue.clone(), stop.clone());
            scope.spawn(move || {
                // Buffers live as long as the thread: made anew per entry, the allocator
                // fragments its heap and memory grows with the size of the export.
                let mut chunk = Vec::with_capacity(CHUNK);
                loop {
                    // The lock is held only to take the next job; a poisoned lock means a
                    // sibling panicked: stop taking work.
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok((n, entry, reply)) = next else { return };
                    let result = deflate(source, dir, &threads, &entry, &stop, &mut chunk);
                    if let Some(deflated) = threads.deflated {
                        deflated(n);
                    }
                    // The writer gone (it failed) is no error of ours.
                    let _ = reply.send(result);
                }
            });
        }
        let mut ahead = Ahead {
            waiting: entries.into_iter().enumerate().collect(),
            pending: VecDeque::new(),
            jobs: Some(jobs),
            // One in each thread's hands and one finished per thread waiting to be copied.
            window: 2 * workers,
            stop,
        };
        ahead.hand_out();
        ahead
    }

    fn hand_out(&mut self) {
        while self.pending.len() < self.window {
            let (Some(jobs), Some((n, entry))) = (&self.jobs, self.waiting.pop_front()) else {
                return;
            };
            let (reply, result) = mpsc::sync_channel(1);
            if jobs.send((n, entry, reply)).is_err() {
                // Every thread is gone; `next` reports it.
                return;
            }
            self.pending.push_back(result);
        }
    }

    /// The next entry in the bundle's order, once deflated.
    pub fn next(&mut self) -> std::io::Result<Deflated> {
        let Some(result) = self.pending.pop_front() else {
            return Err(std::io::Error::other(
                "the bundle writer asked for more entries than it listed",
            ));
        };
        self.hand_out();
        result
            .recv()
            .map_err(|_| std::io::Error::other("a thread making bundle entries stopped"))?
    }
}

impl Drop for Ahead {
    /// Threads stop at their next chunk and take no new job, so the scope ends soon when the
    /// writer failed half-way.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
    }
}

/// Hands the compressor full chunks only, whatever sizes it is written in, and keeps the
/// entry's count and hash.
struct Chunked<'c, W: Write> {
    inner: W,
    chunk: &'c mut Vec<u8>,
    hasher: Sha256,
    bytes: u64,
    stop: Arc<AtomicBool>,
}

impl<W: Write> Chunked<'_, W> {
    fn pass_on(&mut self) -> std::io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the bundle writer stopped",
            ));
        }
        self.inner.write_all(self.chunk)?;
        self.chunk.clear();
        Ok(())
    }

    /// Passes on what is left; returns the inner writer, the byte count and the hash.
    fn finish(mut self) -> std::io::Result<(W, u64, String)> {
        self.pass_on()?;
        Ok((self.inner, self.bytes, hex::encode(self.hasher.finalize())))
    }
}

impl<W: Write> Write for Chunked<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        if self.chunk.len() == CHUNK {
            self.pass_on()?;
        }
        Ok(n)
    }

    /// Chunks are passed on when full: a flush passing on a part would change the bytes.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn deflate(
    source: &Source,
    dir: &Path,
    threads: &Threads<'_>,
    entry: &Entry,
    stop: &Arc<AtomicBool>,
    chunk: &mut Vec<u8>,
) -> std::io::Result<Deflated> {
    // Left over from an entry that failed half-way, the bytes would start this one.
    chunk.clear();
    // Unbuffered: the compressor writes its output in pieces of tens of KiB already.
    // Unnamed when it spills (O_TMPFILE, or created and unlinked at once), readable by this
    // user only: personal data never lies about under a name, even after a crash.
    let mut zip = zip::ZipWriter::new(SpooledTempFile::new_in(IN_MEMORY, dir));
    zip.start_file(entry.path.as_str(), entry.options)
        .map_err(std::io::Error::other)?;
    let mut out = Chunked {
        inner: zip,
        chunk,
        hasher: Sha256::new(),
        bytes: 0,
        stop: stop.clone(),
    };
    match &entry.content {
        Content::File(object) => {
            let mut input = source.open(object)?;
            if let Some(wrap) = threads.reader {
                input = wrap(input);
            }
            std::io::copy(&mut input, &mut out)?;
        }
        Content::Json(category) => super::write_json(&mut out, source, category)?,
        Content::Csv(category, columns) => super::write_csv(&mut out, source, category, columns)?,
    }
    let (zip, bytes, sha256) = out.finish()?;
    let mut file = zip.finish().map_err(std::io::Error::other)?;
    file.rewind()?;
    let zip = zip::ZipArchive::new(file).map_err(std::io::Error::other)?;
    Ok(Deflated {
        entry: FileEntry {
            path: entry.path.clone(),
            bytes,
            media_type: entry.media_type.clone(),
            sha256,
        },
        zip,
    })
}
