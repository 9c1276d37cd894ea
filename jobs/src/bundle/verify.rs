//! Every file in a bundle checked against its manifest. [`crate::verification`] adds the
//! manifest against the hash the ledger recorded when the bundle was made, and its signature.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{FileEntry, MANIFEST, MANIFEST_SIGNATURE, Manifest};
use crate::signing::{Signature, SigningError};
use crate::verification::{DocumentError, Problem};

/// What reading a bundle found: the problems, named (empty when every file matches).
#[derive(Debug, Default)]
pub struct Contents {
    /// The manifest, when it reads as one.
    pub manifest: Option<Manifest>,
    /// The request the manifest names, even when it does not read as a whole.
    pub request_id: Option<String>,
    /// The manifest as stored (what the ledger's hash and the signature cover), and its hash.
    pub manifest_bytes: Vec<u8>,
    pub manifest_sha256: Option<String>,
    pub files_checked: usize,
    pub problems: Vec<Problem>,
    /// The manifest's signature, when the bundle carries one; the caller checks it against
    /// the key it trusts.
    pub signature: Option<Result<Signature, SigningError>>,
}

/// What a manifest lists even when it no longer reads as a whole: enough to check the files.
#[derive(Default, Deserialize)]
struct Listed {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    files: Vec<FileEntry>,
}

/// Checks the ZIP against its own manifest.
pub fn check(bundle: &Path) -> Contents {
    let mut contents = Contents::default();
    let file = match std::fs::File::open(bundle) {
        Ok(f) => f,
        Err(error) => {
            contents.problems.push(Problem::CannotOpen {
                path: bundle.to_path_buf(),
                error,
            });
            return contents;
        }
    };
    let mut zip = match zip::ZipArchive::new(file) {
        Ok(z) => z,
        Err(error) => {
            contents.problems.push(Problem::NotZip {
                path: bundle.to_path_buf(),
                error,
            });
            return contents;
        }
    };
    if zip.has_duplicate_names() {
        // Which of two same-named entries a program shows is up to the program: the one
        // checked here need not be the one the subject opens. Nothing in it is vouched for.
        let names = duplicate_names(bundle, zip.central_directory_start());
        if names.is_empty() {
            contents.problems.push(Problem::DuplicateEntries);
        }
        contents.problems.extend(names.into_iter().map(Problem::DuplicateEntry));
        return contents;
    }
    let mut manifest_bytes = Vec::new();
    match zip.by_name(MANIFEST) {
        Ok(mut m) => {
            if let Err(e) = m.read_to_end(&mut manifest_bytes) {
                contents.problems.push(Problem::ManifestUnreadable(e));
                return contents;
            }
        }
        Err(_) => {
            contents.problems.push(Problem::ManifestMissing);
            return contents;
        }
    }
    contents.manifest_sha256 = Some(hex::encode(Sha256::digest(&manifest_bytes)));
    if let Ok(mut sig) = zip.by_name(MANIFEST_SIGNATURE) {
        let mut bytes = Vec::new();
        contents.signature = Some(match sig.read_to_end(&mut bytes) {
            Ok(_) => Signature::from_slice(&bytes),
            Err(e) => Err(SigningError::Read(e)),
        });
    }
    let entries = match Manifest::from_slice(&manifest_bytes) {
        Ok(manifest) => {
            contents.request_id = Some(manifest.request_id.clone());
            let files = manifest.files.clone();
            contents.manifest = Some(manifest);
            files
        }
        Err(DocumentError::NotJson(e)) => {
            contents.problems.push(Problem::ManifestNotJson(e));
            return contents;
        }
        Err(error) => {
            contents.problems.push(Problem::Unreadable {
                name: MANIFEST.into(),
                error,
            });
            let listed: Listed = serde_json::from_slice(&manifest_bytes).unwrap_or_default();
            contents.request_id = listed.request_id;
            listed.files
        }
    };
    contents.manifest_bytes = manifest_bytes;
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for entry in &entries {
        let mut file = match zip.by_name(&entry.path) {
            Ok(f) => f,
            Err(_) => {
                contents.problems.push(Problem::FileMissing(entry.path.clone()));
                continue;
            }
        };
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    bytes += n as u64;
                }
                Err(error) => {
                    contents.problems.push(Problem::FileUnreadable {
                        path: entry.path.clone(),
                        error,
                    });
                    break;
                }
            }
        }
        contents.files_checked += 1;
        if hex::encode(hasher.finalize()) != entry.sha256 || bytes != entry.bytes {
            contents.problems.push(Problem::FileAltered(entry.path.clone()));
        }
    }
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    for name in names {
        if name != MANIFEST && name != MANIFEST_SIGNATURE && !listed.contains(name.as_str()) {
            contents.problems.push(Problem::FileAdded(name));
        }
    }
    contents
}

/// The names the ZIP's central directory lists more than once, read header by header from
/// `start` (the zip crate says that some name repeats, not which).
fn duplicate_names(bundle: &Path, start: u64) -> Vec<String> {
    use std::io::{BufReader, Seek, SeekFrom};
    /// A central directory header is 46 bytes from its signature, with the lengths of the
    /// name, the extra field and the comment at 28, 30 and 32; the name follows (APPNOTE
    /// 4.3.12).
    const SIGNATURE: [u8; 4] = *b"PK\x01\x02";
    let Ok(mut file) = std::fs::File::open(bundle) else {
        return Vec::new();
    };
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut reader = BufReader::new(file);
    let mut seen = BTreeSet::new();
    let mut twice = BTreeSet::new();
    let mut header = [0u8; 46];
    while reader.read_exact(&mut header).is_ok() && header[..4] == SIGNATURE {
        let length = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
        let mut name = vec![0u8; usize::from(length(28))];
        let skip = i64::from(length(30)) + i64::from(length(32));
        if reader.read_exact(&mut name).is_err() || reader.seek_relative(skip).is_err() {
            break;
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        if !seen.insert(name.clone()) {
            twice.insert(name);
        }
    }
    twice.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::bundle::{CategoryRecords, MANIFEST_SCHEMA, ManifestProcessor};
    use crate::model::{Outcome, RequestKind, TaskStatus};
    use chrono::{SubsecRound, Utc};
    use dsr_connector::Processor;

    fn manifest(files: &[(&str, &[u8])]) -> Manifest {
        Manifest {
            schema_version: MANIFEST_SCHEMA,
            request_id: "r-9".into(),
            kind: RequestKind::Access,
            identities_searched: Default::default(),
            received_at: Utc::now().trunc_subsecs(6),
            generated_at: Utc::now().trunc_subsecs(6),
            processors: vec![ManifestProcessor {
                processor: Processor::Wix,
                status: TaskStatus::Succeeded,
                outcome: Some(Outcome::Done),
                reason: None,
                error: None,
                notes: Vec::new(),
                refused_records: 0,
                categories: [("contacts".to_string(), CategoryRecords { records: 1 })].into(),
            }],
            files: files
                .iter()
                .map(|(path, bytes)| FileEntry {
                    path: (*path).into(),
                    bytes: bytes.len() as u64,
                    media_type: "application/json".into(),
                    sha256: hex::encode(Sha256::digest(bytes)),
                })
                .collect(),
        }
    }

    fn zip(path: &Path, manifest: &[u8], files: &[(&str, &[u8])]) {
        let mut out = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, bytes) in files.iter().copied().chain([(MANIFEST, manifest)]) {
            out.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            out.write_all(bytes).unwrap();
        }
        out.finish().unwrap();
    }

    #[test]
    fn the_typed_manifest_reads_back_and_each_file_is_checked_against_it() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("b.zip");
        let files: &[(&str, &[u8])] = &[("wix/contacts.json", b"[]\n"), ("index.html", b"<p>")];
        let written = manifest(files);
        let bytes = serde_json::to_vec_pretty(&written).unwrap();
        zip(&bundle, &bytes, files);
        let contents = check(&bundle);
        assert!(contents.problems.is_empty(), "{:?}", contents.problems);
        assert_eq!(contents.manifest.as_ref(), Some(&written));
        assert_eq!(contents.request_id.as_deref(), Some("r-9"));
        assert_eq!(contents.files_checked, 2);
        assert_eq!(contents.manifest_bytes, bytes);
        assert!(contents.signature.is_none());

        // One file altered, one added.
        zip(
            &bundle,
            &bytes,
            &[
                ("wix/contacts.json", b"[{}]\n"),
                ("index.html", b"<p>"),
                ("extra.txt", b"x"),
            ],
        );
        let problems: Vec<String> = check(&bundle).problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "wix/contacts.json: content does not match the manifest (altered)",
                "extra.txt: in the bundle but not in the manifest (added)",
            ]
        );
    }

    #[test]
    fn a_manifest_of_an_unknown_schema_version_is_named_and_its_files_still_checked() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("b.zip");
        let files: &[(&str, &[u8])] = &[("wix/contacts.json", b"[]\n")];
        let mut value = serde_json::to_value(manifest(files)).unwrap();
        value["schema_version"] = serde_json::json!(3);
        zip(&bundle, &serde_json::to_vec(&value).unwrap(), files);
        let contents = check(&bundle);
        assert!(contents.manifest.is_none());
        assert_eq!(contents.request_id.as_deref(), Some("r-9"));
        assert_eq!(contents.files_checked, 1);
        assert_eq!(contents.problems.len(), 1, "{:?}", contents.problems);
        assert!(
            contents.problems[0]
                .to_string()
                .starts_with("manifest.json: schema version 3 is not one this dsr reads"),
            "{}",
            contents.problems[0]
        );

        zip(&bundle, b"{not json", files);
        let contents = check(&bundle);
        assert!(contents.request_id.is_none());
        assert!(
            contents.problems[0]
                .to_string()
                .starts_with("manifest.json is not valid JSON: ")
        );
        let contents = check(&dir.path().join("absent.zip"));
        assert!(matches!(contents.problems[..], [Problem::CannotOpen { .. }]));
    }

    #[test]
    fn a_zip_holding_two_entries_of_one_name_is_refused_and_the_name_given() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("b.zip");
        // What an unzip program may show first, then what the manifest lists.
        let files: &[(&str, &[u8])] = &[("wix/contacts.jso#", b"[{}]\n"), ("wix/contacts.json", b"[]\n")];
        let bytes = serde_json::to_vec_pretty(&manifest(&files[1..])).unwrap();
        zip(&bundle, &bytes, files);
        // The zip crate refuses to write one name twice: the second name is changed after.
        let mut raw = std::fs::read(&bundle).unwrap();
        let mut renamed = 0;
        while let Some(at) = raw.windows(17).position(|w| w == b"wix/contacts.jso#") {
            raw[at + 16] = b'n';
            renamed += 1;
        }
        assert_eq!(renamed, 2, "the local and the central header");
        std::fs::write(&bundle, raw).unwrap();
        let contents = check(&bundle);
        let problems: Vec<String> = contents.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "wix/contacts.json: more than one entry in the ZIP has this name (refused: which one a reader gets depends on the program)"
            ]
        );
        assert!(contents.manifest.is_none() && contents.request_id.is_none());
    }
}
