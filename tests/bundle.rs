//! The subject's bundle, opened and checked: hashes, the offline index page, CSV encoding,
//! safe names, `dsr verify`, portability, and re-delivery.

mod util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use util::{Deployment, stderr};

/// Runs `dsr demo` (every connector against its fake) in a scratch folder; returns the folder
/// and the access bundle.
fn demo_bundle() -> (Deployment, PathBuf) {
    let d = Deployment::sqlite("");
    let (code, report) = d.dsr_json(&["demo"]);
    assert_eq!(code, 0, "{report}");
    let bundle = PathBuf::from(report["requests"][0]["bundle"].as_str().unwrap());
    (d, bundle)
}

fn entries(bundle: &Path) -> Vec<String> {
    let zip = zip::ZipArchive::new(std::fs::File::open(bundle).unwrap()).unwrap();
    zip.file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect()
}

fn read(bundle: &Path, name: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(bundle).unwrap()).unwrap();
    let mut out = Vec::new();
    zip.by_name(name)
        .unwrap_or_else(|_| panic!("{name} not in the bundle"))
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// `dsr verify` with the demo's ledger and the key it signs with.
fn verify(d: &Deployment, bundle: &Path) -> (i32, Value) {
    let store = format!("sqlite://{}/dsr-demo/ledger.db", d.path().display());
    let key = format!("file:{}/dsr-demo/signing-key.pem", d.path().display());
    let out = d
        .command()
        .env("DSR_STORE__URL", store)
        .env("DSR_EXPORT__SIGNING_KEY", key)
        .args(["--json", "verify"])
        .arg(bundle)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out))),
    )
}

#[test]
fn every_file_matches_the_manifest_and_verify_agrees() {
    let (d, bundle) = demo_bundle();
    let (code, verdict) = verify(&d, &bundle);
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict["signature"], "valid", "{verdict}");
    let manifest: Value = serde_json::from_slice(&read(&bundle, "manifest.json")).unwrap();
    let listed: BTreeSet<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    let mut present: BTreeSet<String> = entries(&bundle).into_iter().collect();
    present.remove("manifest.json");
    assert!(
        present.remove("manifest.json.sig"),
        "the demo signs: the manifest's signature sits beside it"
    );
    assert_eq!(listed, present, "the manifest lists exactly the files in the bundle");
    assert_eq!(verdict["files_checked"].as_u64().unwrap() as usize, listed.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "bundles are readable by their owner only");
    }
}

#[test]
fn verify_names_the_file_in_a_tampered_bundle() {
    let (d, bundle) = demo_bundle();
    let tampered = d.path().join("tampered.zip");
    {
        let mut source = zip::ZipArchive::new(std::fs::File::open(&bundle).unwrap()).unwrap();
        let mut out = zip::ZipWriter::new(std::fs::File::create(&tampered).unwrap());
        for i in 0..source.len() {
            let mut file = source.by_index(i).unwrap();
            let name = file.name().unwrap().into_owned();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            if name == "wix/contacts.json" {
                bytes = b"[]\n".to_vec();
            }
            out.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            out.write_all(&bytes).unwrap();
        }
        out.finish().unwrap();
    }
    let (code, verdict) = verify(&d, &tampered);
    assert_eq!(code, 1, "{verdict}");
    let problems = verdict["problems"].to_string();
    assert!(problems.contains("wix/contacts.json"), "{problems}");
    assert!(
        !problems.contains("wix/members.json"),
        "only the altered file is named: {problems}"
    );
}

#[test]
fn the_index_page_is_offline_escaped_and_links_only_inside_the_bundle() {
    let (_d, bundle) = demo_bundle();
    let html = String::from_utf8(read(&bundle, "index.html")).unwrap();
    let names: BTreeSet<String> = entries(&bundle).into_iter().collect();
    let links: Vec<String> = html
        .split("href=\"")
        .skip(1)
        .map(|rest| unescape(rest.split('"').next().unwrap()))
        .collect();
    assert!(links.len() > 20, "the page links to the files: {links:?}");
    for link in links {
        assert!(
            names.contains(&link),
            "index.html links to {link}, which is not in the bundle"
        );
    }
    for forbidden in ["<script", "http://", "https://www.", "src=\""] {
        assert!(
            !html.contains(forbidden),
            "index.html must work offline without scripts: found {forbidden}"
        );
    }
    assert!(html.contains("Datatilsynet"), "the Art. 15 information is there");
    assert!(
        html.contains("Website visits (Google Analytics)"),
        "categories are named for people, not by id"
    );
    assert!(html.contains("kari.nordmann@example.no"), "it says whom it is about");
}

#[test]
fn subject_text_is_escaped_in_the_index() {
    let d = Deployment::sqlite("[test_connector.wix]\n");
    let (code, status) = d.dsr_json(&[
        "run",
        "access",
        "--email",
        util::SEEDED_EMAIL,
        "--name",
        "<script>alert('x')</script>",
        "--lang",
        "en",
    ]);
    assert_eq!(code, 0, "{status}");
    let bundle = PathBuf::from(status["bundle"].as_str().unwrap());
    let html = String::from_utf8(read(&bundle, "index.html")).unwrap();
    assert!(
        !html.contains("<script>alert"),
        "subject text reached the page unescaped"
    );
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(html.contains("Your personal data"), "--lang en gives the English page");
}

#[test]
fn csv_files_carry_a_bom_and_keep_norwegian_letters() {
    let (_d, bundle) = demo_bundle();
    let csv = read(&bundle, "superoffice/appointments.csv");
    assert!(
        csv.starts_with(&[0xEF, 0xBB, 0xBF]),
        "UTF-8 with BOM, so spreadsheet programs read æøå"
    );
    let text = String::from_utf8(csv).unwrap();
    assert!(text.contains("Møte om sensorer"), "{text}");
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    assert!(
        reader.headers().unwrap().iter().any(|h| h == "record.text"),
        "nested fields get dotted columns"
    );

    // No cell of any CSV runs as a formula in a spreadsheet: those that would begin with
    // `=`, `+`, `-`, `@`, a tab or a CR are quoted (`'`), and the JSON beside keeps them.
    let mut quoted = Vec::new();
    for name in entries(&bundle).iter().filter(|n| n.ends_with(".csv")) {
        let text = String::from_utf8(read(&bundle, name)).unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        for row in reader.records() {
            for cell in row.unwrap().iter() {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{name}: {cell:?} would run as a formula"
                );
                if let Some(original) = cell.strip_prefix('\'')
                    && original.starts_with(['=', '+', '-', '@', '\t', '\r'])
                {
                    quoted.push((name.clone(), original.to_string()));
                }
            }
        }
    }
    assert!(!quoted.is_empty(), "the demo's data has cells to quote (phone numbers)");
    for (name, original) in &quoted {
        let json = String::from_utf8(read(&bundle, &name.replace(".csv", ".json"))).unwrap();
        assert!(
            json.contains(&serde_json::to_string(original).unwrap()),
            "{name}: the JSON keeps {original:?}"
        );
    }
}

#[test]
fn hostile_attachment_names_stay_inside_their_folder() {
    let (_d, bundle) = demo_bundle();
    let names = entries(&bundle);
    assert!(
        names
            .iter()
            .all(|n| !n.contains("..") && !n.starts_with('/') && !n.contains('\\')),
        "{names:?}"
    );
    assert!(
        names.contains(&"microsoft365/attachments/0001-tilbud 2026.xlsx".to_string()),
        "{names:?}"
    );
    assert_eq!(
        read(&bundle, "microsoft365/attachments/0002-kravspesifikasjon.pdf"),
        b"%PDF-1.4 kravspesifikasjon for Kari Nordmann"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("google/mail/") && n.ends_with(".eml"))
    );
}

#[test]
fn a_portability_bundle_holds_only_what_the_subject_provided() {
    let d = Deployment::sqlite("[test_connector.google]\nrecords_per_email = 4\n");
    let (code, status) = d.dsr_json(&["run", "portability", "--email", util::SEEDED_EMAIL]);
    assert_eq!(code, 0, "{status}");
    let bundle = PathBuf::from(status["bundle"].as_str().unwrap());
    let records: Value = serde_json::from_slice(&read(&bundle, "google/contacts.json")).unwrap();
    // The scripted connector marks every other record as provided by the subject.
    assert_eq!(records.as_array().unwrap().len(), 2);
    assert_eq!(util::task(&status, "google")["records"]["found"], 2);
}

#[test]
fn spools_are_removed_once_the_bundle_is_written() {
    let d = Deployment::sqlite("[test_connector.google]\n");
    let (code, status) = d.dsr_json(&["run", "access", "--email", util::SEEDED_EMAIL]);
    assert_eq!(code, 0, "{status}");
    let spool = d.data().join("export/spool").join(status["id"].as_str().unwrap());
    assert!(
        !spool.exists(),
        "the spool is a second copy of personal data and must go"
    );
}

/// An href as a browser reads it: HTML entities, then percent-encoding, decoded.
fn unescape(href: &str) -> String {
    let text = href
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"");
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("a percent escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn a_redelivered_task_adds_no_records_to_the_bundle() {
    let d = Deployment::sqlite("[test_connector.google]\nrecords_per_email = 3\n");
    let (code, status) = d.dsr_json(&["run", "access", "--email", util::SEEDED_EMAIL]);
    assert_eq!(code, 0, "{status}");
    let id = status["id"].as_str().unwrap().to_string();
    let bundle = PathBuf::from(status["bundle"].as_str().unwrap());
    let before = read(&bundle, "manifest.json");
    let task = dsr_jobs::Job::ProcessorTask {
        request_id: id.clone(),
        processor: dsr_connector::Processor::Google,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(util::redeliver(
        &d,
        &[task.clone(), task, dsr_jobs::Job::Finalize { request_id: id.clone() }],
    ));
    let records: Value = serde_json::from_slice(&read(&bundle, "google/contacts.json")).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 3);
    assert_eq!(read(&bundle, "manifest.json"), before, "the bundle was not rewritten");
}

#[test]
fn the_bundle_writer_benchmark_runs_and_reports_memory_and_throughput() {
    let d = Deployment::sqlite("");
    let out = d.dsr(&["bench", "export", "--local", "--size", "8MiB", "--dir"]);
    assert_eq!(out.status.code(), Some(2), "--dir needs a value");
    let dir = d.path().display().to_string();
    let out = d.dsr(&["bench", "export", "--local", "--size", "8MiB", "--dir", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for line in ["export size", "dsr bundle writer", "peak RSS", "zip -1"] {
        assert!(text.contains(line), "the benchmark prints {line}: {text}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("dsr-bench-"))
        .collect();
    assert!(leftovers.is_empty(), "the benchmark cleans up after itself");
    let out = d.dsr(&["bench", "export", "--size", "8TB"]);
    assert_eq!(out.status.code(), Some(2), "a bad size is bad input: {}", stderr(&out));
}
