//! `dsr retry`, `dsr cancel`, `dsr extend`: an operator steering a request by hand.

use std::process::ExitCode;

use chrono::Utc;
use dsr_connector::Processor;

use crate::commands::plans::default_operator;
use crate::config::Config;
use crate::error::{CliError, bad_input};
use crate::output::print_status;

pub async fn retry(config: &Config, id: &str, processor: Option<&str>, as_json: bool) -> Result<ExitCode, CliError> {
    let processor = processor
        .map(|p| p.parse::<Processor>().map_err(|e| bad_input(e.to_string())))
        .transpose()?;
    let engine = crate::wiring::engine(config).await?;
    let reset = engine.ledger().retry(id, processor, &default_operator()).await?;
    let queued = engine.queue_tasks_or_sweep(id, &reset).await;
    if !queued {
        eprintln!(
            "warning: the queue did not answer: the tasks are reset in the ledger and the recovery sweep queues them"
        );
    }
    if !as_json {
        let names: Vec<_> = reset.iter().map(|p| p.as_str()).collect();
        eprintln!("queued again: {}; a running worker picks them up", names.join(", "));
    }
    print_status(engine.ledger(), id, as_json).await?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels a request, and withdraws what processors hold to carry out later (a request
/// submitted to an OpenDSR processor); says what was withdrawn and what could not be.
pub async fn cancel(config: &Config, id: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    let connectors = crate::wiring::withdrawing_connectors(config);
    let withdrawals = dsr_jobs::cancel::cancel(&ledger, &connectors, id, &default_operator()).await?;
    for w in &withdrawals {
        match &w.outcome {
            Ok(done) => eprintln!("{}: {done}", w.processor),
            Err(why) => eprintln!("warning: {}: not withdrawn: {why}", w.processor),
        }
    }
    print_status(&ledger, id, as_json).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn extend(config: &Config, id: &str, months: u32, reason: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let zone = config.zone();
    let ledger = crate::wiring::ledger(config).await?;
    ledger
        .extend(id, months, reason, zone, Utc::now(), &default_operator())
        .await?;
    print_status(&ledger, id, as_json).await?;
    Ok(ExitCode::SUCCESS)
}
