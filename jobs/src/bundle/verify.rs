//! `dsr verify`: every file in a bundle checked against its manifest, and the manifest
//! against the hash the ledger recorded when the bundle was made.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::FileEntry;

/// What a check found: the problems, named (empty when the bundle is intact).
#[derive(Debug, Default)]
pub struct Verdict {
    pub request_id: Option<String>,
    pub manifest_sha256: Option<String>,
    pub files_checked: usize,
    pub problems: Vec<String>,
    /// The manifest as stored, and its signature when the bundle carries one; the caller
    /// checks it against the key it trusts.
    pub manifest: Vec<u8>,
    pub signature: Option<Result<crate::signing::Signature, String>>,
}

/// Checks the ZIP against its own manifest. The caller compares `manifest_sha256` with the
/// ledger.
pub fn check(bundle: &Path) -> Verdict {
    let mut verdict = Verdict::default();
    let file = match std::fs::File::open(bundle) {
        Ok(f) => f,
        Err(e) => {
            verdict.problems.push(format!("cannot open {}: {e}", bundle.display()));
            return verdict;
        }
    };
    let mut zip = match zip::ZipArchive::new(file) {
        Ok(z) => z,
        Err(e) => {
            verdict
                .problems
                .push(format!("{} is not a readable ZIP: {e}", bundle.display()));
            return verdict;
        }
    };
    let mut manifest_bytes = Vec::new();
    match zip.by_name("manifest.json") {
        Ok(mut m) => {
            if let Err(e) = m.read_to_end(&mut manifest_bytes) {
                verdict.problems.push(format!("manifest.json cannot be read: {e}"));
                return verdict;
            }
        }
        Err(_) => {
            verdict.problems.push("manifest.json is missing".into());
            return verdict;
        }
    }
    verdict.manifest_sha256 = Some(hex::encode(Sha256::digest(&manifest_bytes)));
    if let Ok(mut sig) = zip.by_name(super::MANIFEST_SIGNATURE) {
        let mut bytes = Vec::new();
        verdict.signature = Some(
            sig.read_to_end(&mut bytes)
                .map_err(|e| e.to_string())
                .and_then(|_| serde_json::from_slice(&bytes).map_err(|e| e.to_string())),
        );
    }
    let manifest: serde_json::Value = match serde_json::from_slice(&manifest_bytes) {
        Ok(m) => m,
        Err(e) => {
            verdict.problems.push(format!("manifest.json is not valid JSON: {e}"));
            return verdict;
        }
    };
    verdict.request_id = manifest["request_id"].as_str().map(String::from);
    let entries: Vec<FileEntry> = serde_json::from_value(manifest["files"].clone()).unwrap_or_default();
    let listed: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for entry in &entries {
        let mut file = match zip.by_name(&entry.path) {
            Ok(f) => f,
            Err(_) => {
                verdict
                    .problems
                    .push(format!("{}: listed in the manifest but missing", entry.path));
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
                Err(e) => {
                    verdict.problems.push(format!("{}: cannot be read ({e})", entry.path));
                    break;
                }
            }
        }
        verdict.files_checked += 1;
        if hex::encode(hasher.finalize()) != entry.sha256 || bytes != entry.bytes {
            verdict
                .problems
                .push(format!("{}: content does not match the manifest (altered)", entry.path));
        }
    }
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    for name in names {
        if name != "manifest.json" && name != super::MANIFEST_SIGNATURE && !listed.contains(name.as_str()) {
            verdict
                .problems
                .push(format!("{name}: in the bundle but not in the manifest (added)"));
        }
    }
    verdict.manifest = manifest_bytes;
    verdict
}
