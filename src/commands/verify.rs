//! `dsr verify <bundle.zip | …-confirmation.json>` and `dsr audit verify`: is this what dsr
//! made, unaltered, and is the audit log whole? The bundle is a
//! local file, or its location in a shared export store (`s3://…/dsr-<id>.zip`, as `dsr
//! status` shows it), fetched to a private temporary file first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dsr_jobs::signing::Signature;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::CliError;

/// A bundle in the export store, copied to a temporary file readable by its owner only and
/// removed when dropped.
struct Fetched(PathBuf);

impl Drop for Fetched {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The export store and key behind `location`, or None when it names a local file.
fn in_store(
    config: &Config,
    location: &str,
) -> Result<Option<(dsr_jobs::storage::ExportStore, dsr_jobs::storage::Key)>, CliError> {
    if Path::new(location).exists() || !location.contains("://") {
        return Ok(None);
    }
    let store = crate::wiring::export_store(config)?;
    match store.key_of(location) {
        Some(key) => Ok(Some((store, key))),
        None => Err(crate::error::bad_input(format!(
            "{location} is neither a file nor in the configured export store ({}); download it and pass the file",
            store.locate(&dsr_jobs::storage::key(""))
        ))),
    }
}

async fn fetch(config: &Config, location: &str) -> Result<Option<Fetched>, CliError> {
    let Some((store, key)) = in_store(config, location)? else {
        return Ok(None);
    };
    let target = Fetched(std::env::temp_dir().join(format!("dsr-verify-{}.zip", std::process::id())));
    let unreachable = |e: String| CliError::Unreachable(format!("cannot fetch {location}: {e}"));
    let mut reader = store.reader(&key).await.map_err(|e| unreachable(e.to_string()))?;
    let mut open = tokio::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    open.mode(0o600);
    let mut file = open.open(&target.0).await.map_err(|e| unreachable(e.to_string()))?;
    tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(Some(target))
}

/// The signing key this deployment trusts, as base64, when one is configured.
fn trusted_key(config: &Config) -> Result<Option<String>, CliError> {
    Ok(crate::wiring::settings(config)?.signer.map(|s| s.public_key()))
}

/// Checks a signature against the trusted key; names `what` in the problem.
fn check_signature(
    what: &str,
    signature: Option<Result<Signature, String>>,
    signed: &[u8],
    trusted: Option<&str>,
    problems: &mut Vec<String>,
) -> &'static str {
    match (signature, trusted) {
        (None, None) => "unsigned",
        (None, Some(_)) => {
            problems.push(format!(
                "{what}: not signed, but this deployment signs everything it writes"
            ));
            "missing"
        }
        (Some(Err(e)), _) => {
            problems.push(format!("{what}.sig: unreadable ({e})"));
            "unreadable"
        }
        (Some(Ok(_)), None) => "signed, not checked (no [export] signing_key configured here)",
        (Some(Ok(sig)), Some(key)) => match dsr_jobs::signing::check(&sig, signed, key) {
            Ok(()) => "valid",
            Err(e) => {
                problems.push(format!("{what}: signature check failed: {e}"));
                "invalid"
            }
        },
    }
}

pub async fn verify(config: &Config, target: &str, as_json: bool) -> Result<ExitCode, CliError> {
    if target.ends_with("-confirmation.json") {
        return verify_confirmation(config, target, as_json).await;
    }
    let bundle = target;
    let fetched = fetch(config, bundle).await?;
    let path = fetched
        .as_ref()
        .map(|f| f.0.clone())
        .unwrap_or_else(|| PathBuf::from(bundle));
    let mut verdict = tokio::task::spawn_blocking(move || dsr_jobs::bundle::verify::check(&path))
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("the check stopped: {e}")))?;
    // The manifest must be the one the ledger recorded when the bundle was made.
    if let (Some(id), Some(hash)) = (verdict.request_id.clone(), verdict.manifest_sha256.clone()) {
        let ledger = crate::wiring::ledger(config).await?;
        match ledger.request(&id).await? {
            None => verdict.problems.push(format!(
                "request {id} is not in this ledger: the bundle cannot be vouched for"
            )),
            Some(request) => match request.bundle_sha256 {
                Some(recorded) if recorded == hash => {}
                Some(_) => verdict
                    .problems
                    .push("manifest.json: differs from the manifest recorded in the ledger (altered)".into()),
                None => verdict
                    .problems
                    .push(format!("request {id} has no bundle recorded in the ledger")),
            },
        }
    }
    let trusted = trusted_key(config)?;
    let signature = if verdict.request_id.is_some() {
        check_signature(
            "manifest.json",
            verdict.signature.take(),
            &verdict.manifest,
            trusted.as_deref(),
            &mut verdict.problems,
        )
    } else {
        "not checked"
    };
    let ok = verdict.problems.is_empty();
    if as_json {
        println!(
            "{}",
            json!({"ok": ok, "bundle": bundle, "request_id": verdict.request_id, "files_checked": verdict.files_checked,
                   "signature": signature, "problems": verdict.problems})
        );
    } else if ok {
        println!(
            "ok: {} files match the manifest, and the manifest matches the ledger (signature: {signature})",
            verdict.files_checked
        );
    } else {
        for problem in &verdict.problems {
            println!("FAIL {problem}");
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Reads a small object: a local file, or an object in the export store.
async fn read_small(config: &Config, location: &str) -> Result<Option<Vec<u8>>, CliError> {
    let Some((store, key)) = in_store(config, location)? else {
        return match std::fs::read(location) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::Unreachable(format!("cannot read {location}: {e}"))),
        };
    };
    match store.get(&key).await {
        Ok(bytes) => Ok(Some(bytes.to_vec())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Unreachable(e.to_string())),
    }
}

/// A confirmation: its hash against the ledger, its signature against the trusted key, and
/// the audit chain it pins (whole, and holding the event it names).
async fn verify_confirmation(config: &Config, location: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let name = Path::new(location)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| location.to_string());
    let Some(bytes) = read_small(config, location).await? else {
        return Err(crate::error::bad_input(format!("{location}: no such confirmation")));
    };
    let mut problems = Vec::new();
    let document: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("{name}: not valid JSON ({e}): altered"));
            serde_json::Value::Null
        }
    };
    let request_id = document["request_id"].as_str().map(String::from);
    let sha = hex::encode(Sha256::digest(&bytes));
    let ledger = crate::wiring::ledger(config).await?;
    if let Some(id) = &request_id {
        match ledger.request(id).await? {
            None => problems.push(format!(
                "request {id} is not in this ledger: the confirmation cannot be vouched for"
            )),
            Some(r) => match r.confirmation_sha256 {
                Some(recorded) if recorded == sha => {}
                Some(_) => problems.push(format!(
                    "{name}: differs from the confirmation recorded in the ledger (altered)"
                )),
                None => problems.push(format!("request {id} has no confirmation recorded in the ledger")),
            },
        }
    } else if problems.is_empty() {
        problems.push(format!("{name}: names no request (altered, or not a dsr confirmation)"));
    }
    let signature = read_small(config, &format!("{location}.sig"))
        .await?
        .map(|b| serde_json::from_slice::<Signature>(&b).map_err(|e| e.to_string()));
    let trusted = trusted_key(config)?;
    let signature = check_signature(&name, signature, &bytes, trusted.as_deref(), &mut problems);
    let chain = ledger.verify_audit_chain().await?;
    if let Some(problem) = &chain.problem {
        problems.push(format!("audit chain: {problem}"));
    }
    let pinned_seq = document["audit_chain"]["seq"].as_i64().unwrap_or(0);
    let pinned_hash = document["audit_chain"]["hash"].as_str().unwrap_or("");
    if pinned_seq > 0 && ledger.audit_hash_at(pinned_seq).await?.as_deref() != Some(pinned_hash) {
        problems.push(format!(
            "audit chain: event #{pinned_seq}, which {name} pins, is not in the chain as it was (altered or removed)"
        ));
    }
    let ok = problems.is_empty();
    if as_json {
        println!(
            "{}",
            json!({"ok": ok, "confirmation": location, "request_id": request_id, "sha256": sha, "signature": signature,
                   "audit_events": chain.events, "problems": problems})
        );
    } else if ok {
        println!(
            "ok: {name} matches the ledger, signature: {signature}, audit chain whole ({} events)",
            chain.events
        );
    } else {
        for problem in &problems {
            println!("FAIL {problem}");
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `dsr audit verify`: walks the whole chain and names the first event altered or removed.
pub async fn audit_verify(config: &Config, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    let verdict = ledger.verify_audit_chain().await?;
    if as_json {
        println!(
            "{}",
            json!({"ok": verdict.problem.is_none(), "events": verdict.events, "head": verdict.head, "problem": verdict.problem})
        );
    } else {
        match &verdict.problem {
            None => println!(
                "ok: {} audit events, each linked to the one before; head #{} {}",
                verdict.events, verdict.head.seq, verdict.head.hash
            ),
            Some(problem) => println!("FAIL {problem}"),
        }
    }
    Ok(if verdict.problem.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
