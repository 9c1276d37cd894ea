//! `dsr verify <bundle.zip | …-confirmation.json>` and `dsr audit verify`: is this what dsr
//! made, unaltered, and is the audit log whole? The bundle is a
//! local file, or its location in a shared export store (`s3://…/dsr-<id>.zip`, as `dsr
//! status` shows it), fetched to a private temporary file first. The checks themselves are
//! `dsr_jobs::verification`'s; this prints their verdict and sets the exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dsr_jobs::verification::{self, Problem, SignaturePolicy, VerificationError};
use serde_json::json;

use crate::config::Config;
use crate::error::CliError;

/// A bundle in the export store, copied to a temporary file readable by its owner only and
/// removed when dropped.
struct Fetched(tempfile::TempPath);

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
    let unreachable = |e: String| CliError::Unreachable(format!("cannot fetch {location}: {e}"));
    let mut reader = store.reader(&key).await.map_err(|e| unreachable(e.to_string()))?;
    let (target, mut file) = download_target().await.map_err(|e| unreachable(e.to_string()))?;
    tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(Some(target))
}

/// The file a bundle is downloaded to: made new under a random name (`O_EXCL`, so a link
/// planted in the shared temporary folder is never followed), mode 0600, removed when the
/// [`Fetched`] is dropped.
async fn download_target() -> std::io::Result<(Fetched, tokio::fs::File)> {
    let file = tokio::task::spawn_blocking(|| tempfile::Builder::new().prefix("dsr-verify-").suffix(".zip").tempfile())
        .await
        .map_err(std::io::Error::other)??;
    let (file, path) = file.into_parts();
    Ok((Fetched(path), tokio::fs::File::from_std(file)))
}

/// The signing key this deployment trusts, as base64, when one is configured.
fn trusted_key(config: &Config) -> Result<Option<String>, CliError> {
    Ok(crate::wiring::settings(config)?.signer.map(|s| s.public_key()))
}

/// A check that could not be made: the ledger unreachable, or the check stopped.
fn not_checked(e: VerificationError) -> CliError {
    match e {
        VerificationError::Ledger(e) => e.into(),
        e @ VerificationError::Stopped(_) => CliError::Failed(e.into()),
    }
}

fn print_problems(problems: &[Problem]) {
    for problem in problems {
        println!("FAIL {problem}");
    }
}

fn exit_code(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// How `--allow-unsigned` reads.
fn policy(allow_unsigned: bool) -> SignaturePolicy {
    if allow_unsigned {
        SignaturePolicy::UncheckedAllowed
    } else {
        SignaturePolicy::Required
    }
}

pub async fn verify(config: &Config, target: &str, allow_unsigned: bool, as_json: bool) -> Result<ExitCode, CliError> {
    if target.ends_with("-confirmation.json") {
        return verify_confirmation(config, target, policy(allow_unsigned), as_json).await;
    }
    let bundle = target;
    let fetched = fetch(config, bundle).await?;
    let path = fetched
        .as_ref()
        .map(|f| f.0.to_path_buf())
        .unwrap_or_else(|| PathBuf::from(bundle));
    let ledger = crate::wiring::ledger(config).await?;
    let trusted = trusted_key(config)?;
    let verdict = verification::verify_bundle(&path, &ledger, trusted.as_deref(), policy(allow_unsigned))
        .await
        .map_err(not_checked)?;
    let ok = verdict.ok();
    if as_json {
        println!(
            "{}",
            json!({"ok": ok, "bundle": bundle, "request_id": verdict.request_id, "files_checked": verdict.files_checked,
                   "signature": verdict.signature.describe(), "problems": verdict.problems})
        );
    } else if ok {
        println!(
            "ok: {} files match the manifest, and the manifest matches the ledger (signature: {})",
            verdict.files_checked, verdict.signature
        );
    } else {
        print_problems(&verdict.problems);
    }
    Ok(exit_code(ok))
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
async fn verify_confirmation(
    config: &Config,
    location: &str,
    policy: SignaturePolicy,
    as_json: bool,
) -> Result<ExitCode, CliError> {
    let name = Path::new(location)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| location.to_string());
    let Some(bytes) = read_small(config, location).await? else {
        return Err(crate::error::bad_input(format!("{location}: no such confirmation")));
    };
    let signature = read_small(config, &format!("{location}.sig")).await?;
    let ledger = crate::wiring::ledger(config).await?;
    let trusted = trusted_key(config)?;
    let verdict =
        verification::verify_confirmation(&name, &bytes, signature.as_deref(), &ledger, trusted.as_deref(), policy)
            .await
            .map_err(not_checked)?;
    let ok = verdict.ok();
    if as_json {
        println!(
            "{}",
            json!({"ok": ok, "confirmation": location, "request_id": verdict.request_id, "sha256": verdict.sha256,
                   "signature": verdict.signature.describe(), "audit_events": verdict.audit_events,
                   "problems": verdict.problems})
        );
    } else if ok {
        println!(
            "ok: {name} matches the ledger, signature: {}, audit chain whole ({} events)",
            verdict.signature, verdict.audit_events
        );
    } else {
        print_problems(&verdict.problems);
    }
    Ok(exit_code(ok))
}

/// `dsr audit verify`: walks the whole chain and names the first event altered or removed.
pub async fn audit_verify(config: &Config, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    let verdict = ledger.verify_audit_chain().await?;
    if as_json {
        println!("{}", chain_json(&verdict));
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

/// The audit chain's verdict as `dsr audit verify --json` prints it.
pub fn chain_json(verdict: &dsr_jobs::ledger::ChainVerdict) -> serde_json::Value {
    json!({"ok": verdict.problem.is_none(), "events": verdict.events, "head": verdict.head, "problem": verdict.problem})
}

/// A request's audit events as `dsr audit events --json` prints them.
pub fn events_json(id: &str, events: &[dsr_jobs::ledger::AuditEvent]) -> serde_json::Value {
    let events: Vec<_> = events
        .iter()
        .map(|e| {
            json!({"seq": e.seq, "at": e.at.to_rfc3339(), "event": e.event, "processor": e.processor,
                   "detail": e.detail, "note": e.note})
        })
        .collect();
    json!({"request_id": id, "events": events})
}

/// Prints a request's audit events with their notes (`dsr audit events <id>`).
pub async fn audit_events(config: &Config, id: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    // An unknown id is an error that says so, not an empty list.
    ledger.get_request(id).await?;
    let events = ledger.audit_events(id).await?;
    if as_json {
        println!("{}", events_json(id, &events));
    } else {
        for e in &events {
            let code = e.detail["code"].as_str().map(|c| format!(" ({c})")).unwrap_or_default();
            println!(
                "#{:<6} {} {}{}{code}",
                e.seq,
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.event,
                e.processor.as_deref().map(|p| format!(" {p}")).unwrap_or_default(),
            );
            match (&e.note, e.detail["note"].is_string()) {
                // A note may quote a vendor: no escape sequence of theirs reaches the terminal.
                (Some(note), _) => note.lines().for_each(|line| {
                    let line: String = line.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
                    println!("         {line}")
                }),
                (None, true) => println!("         (note scrubbed)"),
                (None, false) => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn a_download_goes_to_a_new_private_file_never_through_a_planted_link() {
        use std::os::unix::fs::PermissionsExt;
        use tokio::io::AsyncWriteExt;
        // A link planted where the download used to go, naming a file of the user's.
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "keep me").unwrap();
        let planted = std::env::temp_dir().join(format!("dsr-verify-{}.zip", std::process::id()));
        let _ = std::fs::remove_file(&planted);
        std::os::unix::fs::symlink(&victim, &planted).unwrap();

        let (target, mut file) = download_target().await.unwrap();
        file.write_all(b"PK").await.unwrap();
        file.flush().await.unwrap();
        let path = target.0.to_path_buf();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kept = std::fs::read_to_string(&victim).unwrap();
        let _ = std::fs::remove_file(&planted);
        assert_eq!(kept, "keep me", "the planted link was followed");
        assert_ne!(path, planted, "the name is not predictable");
        assert!(meta.file_type().is_file(), "a file of its own, not a link");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"PK");
        drop((target, file));
        assert!(!path.exists(), "removed when dropped");
    }
}
