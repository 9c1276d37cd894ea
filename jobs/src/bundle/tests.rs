//! The bundle writer's tests: determinism across threads, stored media, CSV quoting, ZIP64.

use super::*;

#[test]
fn zip64_is_switched_on_before_an_entry_could_pass_4_gib() {
    assert!(!needs_zip64(10 << 20));
    assert!(needs_zip64(512 << 20));
    // Pretty printing at most multiplies a spool by eight below the threshold.
    assert!((ZIP64_FROM_SPOOL_BYTES - 1) * 8 < u64::from(u32::MAX));
}

/// Hands out an attachment's bytes a few at a time, in sizes that vary from read to read.
struct Trickle {
    inner: Box<dyn std::io::Read + Send>,
    reads: usize,
}

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const SIZES: [usize; 5] = [1, 7, 4093, 65_537, 300_000];
        self.reads += 1;
        let n = buf.len().min(SIZES[self.reads % SIZES.len()]);
        self.inner.read(&mut buf[..n])
    }
}

/// A Wix spool with two records and `files` (name, media type, bytes) under `dir`.
fn spool_with_files(dir: &Path, request_id: &str, files: &[(&str, &str, Vec<u8>)]) -> Task {
    let spool = crate::spool::spool_key(request_id, Processor::Wix, 1);
    let mut lines = String::new();
    for n in 0..2 {
        let record = dsr_connector::Record {
            category: "contacts".into(),
            id: Some(format!("c-{n}")),
            provided_by_subject: true,
            data: serde_json::json!({"id": format!("c-{n}"), "name": "Kari Nordmann", "n": n}),
            claims: Vec::new(),
        };
        lines += &serde_json::to_string(&SpoolEntry::Record(record)).unwrap();
        lines.push('\n');
    }
    for (name, media_type, bytes) in files {
        let path = format!("attachments/{name}");
        let object = dir.join(file_key(&spool, &path).as_ref());
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        std::fs::write(&object, bytes).unwrap();
        let stored = StoredFile {
            path,
            media_type: (*media_type).into(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        };
        lines += &serde_json::to_string(&SpoolEntry::File(stored)).unwrap();
        lines.push('\n');
    }
    let path = dir.join(spool.as_ref());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, lines).unwrap();
    Task {
        outcome: Some(Outcome::Done),
        evidence: serde_json::json!({"notes": []}),
        spool: Some(spool.to_string()),
        ..Task::attempted(request_id, Processor::Wix, TaskStatus::Succeeded)
    }
}

#[test]
fn the_bundle_is_the_same_bytes_whatever_thread_finishes_first_and_media_stay_stored() {
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let store = ExportStore::local(dir.path()).unwrap();
    // Text that deflates, larger than a compressor's chunk; media that would not.
    let text = |n: usize| "Hei Kari, her er møtereferatet. ".repeat(n).into_bytes();
    let mut noise = vec![0u8; 700_000];
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for b in &mut noise {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    let files = [
        ("0-referat.txt", "text/plain", text(30_000)),
        ("1-bilde.png", "image/png", noise.clone()),
        ("2-tom.txt", "text/plain", Vec::new()),
        ("3-kontrakt.pdf", "application/pdf", noise[..300_000].to_vec()),
        ("4-notat.txt", "text/plain", text(10)),
    ];
    let task = spool_with_files(dir.path(), "r-same", &files);
    let request = Request::received(
        "r-same",
        RequestKind::Access,
        Identities::default(),
        crate::model::Lang::Nb,
        Utc::now(),
    );
    let generated_at = DateTime::parse_from_rfc3339("2026-12-07T05:30:11.123456789Z")
        .unwrap()
        .with_timezone(&Utc);
    let source = Source {
        store: store.clone(),
        handle: runtime.handle().clone(),
    };
    let write = |threads: Threads<'_>| -> Vec<u8> {
        let out = store
            .writer(bundle_key(&request.id))
            .into_sync(runtime.handle().clone());
        let written = write_sync(
            out,
            &source,
            &request,
            std::slice::from_ref(&task),
            &ProcessingInfo::example(),
            None,
            generated_at,
            threads,
        )
        .unwrap();
        std::fs::read(&written.location).unwrap()
    };

    let one_thread = write(Threads {
        workers: 1,
        reader: None,
        deflated: None,
    });

    // Two threads, each attachment's bytes trickling in, and every even attachment held
    // until the one after it is deflated: the threads finish out of order.
    let finished: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let moved = Condvar::new();
    let hold = |n: usize| {
        let mut order = finished.lock().unwrap();
        if n.is_multiple_of(2) && n + 1 < files.len() + 2 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !order.contains(&(n + 1)) {
                let left = deadline
                    .checked_duration_since(Instant::now())
                    .expect("the attachment after the held one was never deflated");
                order = moved.wait_timeout(order, left).unwrap().0;
            }
        }
        order.push(n);
        moved.notify_all();
    };
    let trickle = |inner| Box::new(Trickle { inner, reads: 0 }) as Box<dyn std::io::Read + Send>;
    let reordered = write(Threads {
        workers: 2,
        reader: Some(&trickle),
        deflated: Some(&hold),
    });
    let order = finished.lock().unwrap().clone();
    let at = |n: usize| order.iter().position(|&m| m == n).unwrap();
    assert_eq!(order.len(), files.len() + 2, "{order:?}");
    for held in [0, 2, 4] {
        assert!(at(held + 1) < at(held), "the threads finished out of order: {order:?}");
    }
    let per_core = write(Threads::per_core());
    assert!(
        one_thread == reordered,
        "the same bytes whichever thread finished first"
    );
    assert!(one_thread == per_core, "the same bytes on any number of threads");

    let bundle = dir.path().join(bundle_key("r-same").as_ref());
    let contents = verify::check(&bundle);
    assert!(contents.problems.is_empty(), "{:?}", contents.problems);
    let manifest = contents.manifest.unwrap();
    assert_eq!(manifest.generated_at, generated_at.trunc_subsecs(6));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&bundle).unwrap()).unwrap();
    for (name, media_type, bytes) in &files {
        let path = format!("wix/attachments/{name}");
        let listed = manifest.files.iter().find(|f| f.path == path).unwrap();
        assert_eq!(
            (listed.bytes, listed.sha256.as_str(), listed.media_type.as_str()),
            (
                bytes.len() as u64,
                hex::encode(Sha256::digest(bytes)).as_str(),
                *media_type
            )
        );
        let entry = zip.by_name(&path).unwrap();
        let method = if media_type.starts_with("text/") {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        assert_eq!(entry.compression(), method, "{path}");
        if method == zip::CompressionMethod::Stored {
            assert_eq!(entry.compressed_size(), bytes.len() as u64, "{path} is stored as it is");
        }
        assert_eq!(
            entry.last_modified(),
            Some(zip::DateTime::from_date_and_time(2026, 12, 7, 5, 30, 10).unwrap()),
            "{path} carries the time the bundle was generated"
        );
    }
    let referat = zip.by_name("wix/attachments/0-referat.txt").unwrap();
    assert!(referat.compressed_size() * 10 < referat.size(), "text is deflated");
    drop(referat);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left: {leftovers:?}");
}

#[test]
fn a_missing_attachment_fails_the_bundle_and_leaves_nothing_visible() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let store = ExportStore::local(dir.path()).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..6).map(|n| (format!("{n}.txt"), vec![b'x'; 1000])).collect();
    let listed: Vec<(&str, &str, Vec<u8>)> = files
        .iter()
        .map(|(name, bytes)| (name.as_str(), "text/plain", bytes.clone()))
        .collect();
    let task = spool_with_files(dir.path(), "r-gone", &listed);
    let spool = Key::parse(task.spool.as_deref().unwrap()).unwrap();
    std::fs::remove_file(dir.path().join(file_key(&spool, "attachments/2.txt").as_ref())).unwrap();
    let request = Request::received(
        "r-gone",
        RequestKind::Access,
        Identities::default(),
        crate::model::Lang::Nb,
        Utc::now(),
    );
    let error = runtime
        .block_on(write_bundle(
            &store,
            &request,
            &[task],
            &ProcessingInfo::example(),
            None,
        ))
        .unwrap_err();
    assert!(error.to_string().contains("2.txt"), "{error}");
    assert!(
        !dir.path().join(bundle_key("r-gone").as_ref()).exists(),
        "no half bundle is visible"
    );
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
