//! `dsr verify <bundle.zip>`: is this bundle the one dsr made, unaltered?

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::config::Config;
use crate::error::CliError;

pub async fn verify(config: &Config, bundle: &Path, as_json: bool) -> Result<ExitCode, CliError> {
    let path = bundle.to_path_buf();
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
