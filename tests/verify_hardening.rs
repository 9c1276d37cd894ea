//! `dsr verify` against what a hostile hand could give it: a ZIP holding two entries of one
//! name, and bundles or confirmations whose signature cannot be checked here.

mod util;

use std::io::Write;
use std::path::Path;

use util::Deployment;

/// A deployment with the scripted Wix, and `extra` TOML.
fn deployment(extra: &str) -> Deployment {
    Deployment::sqlite(&format!("[test_connector.wix]\n{extra}"))
}

/// Runs `kind` for the seeded subject; returns the status `dsr run` printed.
fn run(d: &Deployment, kind: &str) -> serde_json::Value {
    let (code, status) = d.dsr_json(&["run", kind, "--email", util::SEEDED_EMAIL]);
    assert_eq!(code, 0, "{status}");
    status
}

/// A signing key in a file, and the `[export]` line that configures it.
fn signing_key(d: &Deployment) -> String {
    let (_, pem) = dsr_jobs::signing::Signer::generate().unwrap();
    let path = d.path().join("signing-key.pem");
    std::fs::write(&path, pem).unwrap();
    format!("signing_key = \"file:{}\"\n", path.display())
}

fn problems(verdict: &serde_json::Value) -> String {
    verdict["problems"].to_string()
}

#[test]
fn an_unsigned_bundle_or_confirmation_fails_unless_unsigned_is_allowed() {
    let d = deployment("");
    let bundle = run(&d, "access")["bundle"].as_str().unwrap().to_string();
    let confirmation = run(&d, "erasure")["confirmation"].as_str().unwrap().to_string();
    for target in [&bundle, &confirmation] {
        let (code, verdict) = d.dsr_json(&["verify", target]);
        assert_eq!(code, 1, "{verdict}");
        assert_eq!(verdict["ok"], false);
        assert_eq!(verdict["signature"], "unsigned");
        let problems = problems(&verdict);
        assert!(
            problems.contains("not signed")
                && problems.contains("[export] signing_key")
                && problems.contains("--allow-unsigned"),
            "says what to configure, or what to pass: {problems}"
        );
        let (code, verdict) = d.dsr_json(&["verify", "--allow-unsigned", target]);
        assert_eq!(code, 0, "{verdict}");
        assert_eq!(verdict["ok"], true);
        assert_eq!(verdict["signature"], "unsigned");
    }
    // The printed sentence says so too.
    let out = d.dsr(&["verify", &bundle]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("FAIL manifest.json: not signed"), "{text}");
}

#[test]
fn a_signed_bundle_with_no_key_configured_here_fails_unless_unsigned_is_allowed() {
    let d = deployment("");
    let key = signing_key(&d);
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, text.replace("[export]\n", &format!("[export]\n{key}"))).unwrap();
    let bundle = run(&d, "access")["bundle"].as_str().unwrap().to_string();
    let confirmation = run(&d, "erasure")["confirmation"].as_str().unwrap().to_string();
    for target in [&bundle, &confirmation] {
        let (code, verdict) = d.dsr_json(&["verify", target]);
        assert_eq!(code, 0, "signed, and checked against the key configured: {verdict}");
        assert_eq!(verdict["signature"], "valid");
    }

    // The same files, checked where no key is configured.
    std::fs::write(&d.config, text).unwrap();
    for target in [&bundle, &confirmation] {
        let (code, verdict) = d.dsr_json(&["verify", target]);
        assert_eq!(code, 1, "{verdict}");
        let problems = problems(&verdict);
        assert!(
            problems.contains("signature not checked")
                && problems.contains("[export] signing_key")
                && problems.contains("--allow-unsigned"),
            "{problems}"
        );
        let (code, verdict) = d.dsr_json(&["verify", target, "--allow-unsigned"]);
        assert_eq!(code, 0, "{verdict}");
        assert_eq!(
            verdict["signature"],
            "signed, not checked (no [export] signing_key configured here)"
        );
    }
}

/// Copies the ZIP at `from` to `to`, every entry as it is, with one more entry whose name
/// differs from `name` in one byte; then gives it `name` in both of its headers. (The zip
/// crate refuses to write two entries of one name, so the bytes are changed after.)
fn with_duplicate(from: &Path, to: &Path, name: &str, content: &[u8]) {
    let mut source = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut out = zip::ZipWriter::new(&mut buffer);
        for i in 0..source.len() {
            out.raw_copy_file(source.by_index(i).unwrap()).unwrap();
        }
        let stand_in = format!("{}#", &name[..name.len() - 1]);
        out.start_file(stand_in.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(content).unwrap();
        out.finish().unwrap();
    }
    let mut bytes = buffer.into_inner();
    let stand_in = format!("{}#", &name[..name.len() - 1]);
    let mut replaced = 0;
    while let Some(at) = bytes.windows(stand_in.len()).position(|w| w == stand_in.as_bytes()) {
        bytes[at..at + name.len()].copy_from_slice(name.as_bytes());
        replaced += 1;
    }
    assert_eq!(replaced, 2, "the local and the central header");
    std::fs::write(to, bytes).unwrap();
}

#[test]
fn a_zip_with_two_entries_of_one_name_is_refused_and_the_name_given() {
    let d = deployment("");
    let bundle = run(&d, "access")["bundle"].as_str().unwrap().to_string();
    let (code, verdict) = d.dsr_json(&["verify", "--allow-unsigned", &bundle]);
    assert_eq!(code, 0, "{verdict}");

    let twice = d.path().join("twice.zip");
    with_duplicate(Path::new(&bundle), &twice, "index.html", b"[]\n");
    let names: Vec<String> = zip::ZipArchive::new(std::fs::File::open(&twice).unwrap())
        .unwrap()
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect();
    assert!(names.contains(&"index.html".to_string()), "{names:?}");
    let (code, verdict) = d.dsr_json(&["verify", "--allow-unsigned", &twice.display().to_string()]);
    assert_eq!(code, 1, "{verdict}");
    assert_eq!(verdict["ok"], false);
    let problems = problems(&verdict);
    assert!(
        problems.contains("index.html: more than one entry in the ZIP has this name"),
        "{problems}"
    );
}
