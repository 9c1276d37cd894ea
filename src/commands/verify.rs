//! `dsr verify <bundle.zip>`: is this bundle the one dsr made, unaltered? The bundle is a
//! local file, or its location in a shared export store (`s3://…/dsr-<id>.zip`, as `dsr
//! status` shows it), fetched to a private temporary file first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

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

async fn fetch(config: &Config, location: &str) -> Result<Option<Fetched>, CliError> {
    if Path::new(location).exists() || !location.contains("://") {
        return Ok(None);
    }
    let store = crate::wiring::export_store(config)?;
    let Some(key) = store.key_of(location) else {
        return Err(crate::error::bad_input(format!(
            "{location} is neither a file nor in the configured export store ({}); download it and pass the file",
            store.locate(&dsr_jobs::storage::key(""))
        )));
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

pub async fn verify(config: &Config, bundle: &str, as_json: bool) -> Result<ExitCode, CliError> {
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
    let ok = verdict.problems.is_empty();
    if as_json {
        println!(
            "{}",
            json!({"ok": ok, "bundle": bundle, "request_id": verdict.request_id, "files_checked": verdict.files_checked, "problems": verdict.problems})
        );
    } else if ok {
        println!(
            "ok: {} files match the manifest, and the manifest matches the ledger",
            verdict.files_checked
        );
    } else {
        for problem in &verdict.problems {
            println!("FAIL {problem}");
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
