//! `dsr demo`: the whole path on this machine, with no config and no server — an access and
//! an erasure request for a seeded subject through the real queue and connectors, written
//! under `./dsr-demo/`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use dsr_connector::{Email, Identities};
use dsr_jobs::model::{Lang, NewRequest, RequestKind};
use serde_json::json;

use crate::config::Config;
use crate::error::{CliError, bad_input};
use crate::output::status_json;

/// The subject the fake vendors are seeded with.
pub const DEMO_SUBJECT: &str = "kari.nordmann@example.no";

pub async fn demo(config: &Config, as_json: bool) -> Result<ExitCode, CliError> {
    let (connectors, _) = crate::wiring::connectors(config);
    if connectors.is_empty() {
        let message = "No processor connectors are configured: this build ships none yet (Google, \
Microsoft 365, SuperOffice and Wix arrive with their own fake vendor servers), so the demo has \
nothing to run. The queue, ledger and sweeps are in place: `dsr doctor` shows their state.";
        if as_json {
            println!("{}", json!({"ran": false, "reason": message}));
        } else {
            println!("{message}");
        }
        return Ok(ExitCode::SUCCESS);
    }

    let root = std::path::absolute("dsr-demo").unwrap_or_else(|_| PathBuf::from("dsr-demo"));
    let mut config = config.clone();
    config.store.url = format!("sqlite://{}/ledger.db", root.display());
    config.queue.url = format!("sqlite://{}/queue.db", root.display());
    config.export.dir = root.join("export");
    let engine = crate::wiring::engine(&config).await?;
    let subject = Identities {
        emails: vec![Email::parse(DEMO_SUBJECT).map_err(|e| bad_input(e.to_string()))?],
        names: vec!["Kari Nordmann".into()],
        ..Default::default()
    };
    let mut documents = Vec::new();
    let mut all_completed = true;
    for kind in [RequestKind::Access, RequestKind::Erasure] {
        let new = NewRequest {
            kind,
            identities: subject.clone(),
            changes: vec![],
            lang: Lang::En,
            dry_run: false,
            processors: connectors.processors(),
            received_at: Utc::now(),
        };
        let (id, status) =
            super::requests::process_here(&engine, new, Duration::from_secs(120), as_json).await?;
        all_completed &= status == dsr_jobs::model::RequestStatus::Completed;
        let request = engine.ledger().get_request(&id).await?;
        let tasks = engine.ledger().tasks(&id).await?;
        if !as_json {
            println!("{} request {id}: {}", kind, request.status);
            println!(
                "  {:<13} {:<15} {:<15} {:>6} {:>8}",
                "processor", "status", "outcome", "found", "changed"
            );
            for t in &tasks {
                println!(
                    "  {:<13} {:<15} {:<15} {:>6} {:>8}",
                    t.processor.as_str(),
                    t.status.as_str(),
                    t.outcome.map(|o| o.as_str()).unwrap_or("-"),
                    t.found,
                    t.changed
                );
            }
            if let Some(b) = &request.bundle {
                println!("  bundle:       {b}");
            }
            if let Some(c) = &request.confirmation {
                println!("  confirmation: {c}");
            }
        }
        documents.push(status_json(&request, &tasks));
    }
    if as_json {
        println!("{}", json!({"ran": true, "requests": documents}));
    }
    Ok(if all_completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
