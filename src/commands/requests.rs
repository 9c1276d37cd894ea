//! `dsr run`, `dsr enqueue`, `dsr status`, `dsr list`: submitting requests and watching them.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::Utc;
use dsr_jobs::model::RequestStatus;
use dsr_jobs::{Engine, Ledger, ListFilter};

use super::{Shutdown, workers};
use crate::cli::{EnqueueArgs, ListArgs, RequestArgs};
use crate::config::Config;
use crate::error::{CliError, bad_input};
use crate::output::{Progress, print_status, status_json, status_text};

fn validate(config: &Config, args: &RequestArgs) -> Result<dsr_jobs::model::NewRequest, CliError> {
    let (connectors, missing) = crate::wiring::connectors(config)?;
    for p in &missing {
        eprintln!("warning: processor {p} is enabled but this build has no connector for it; it is skipped");
    }
    crate::request::build_request(args, config, &connectors.processors())
}

/// Waits until the request ends or `timeout` passes, showing progress unless `quiet`.
async fn wait_for(ledger: &Ledger, id: &str, timeout: Duration, quiet: bool) -> Result<RequestStatus, CliError> {
    let started = Instant::now();
    let mut progress = Progress::default();
    loop {
        let request = ledger.get_request(id).await?;
        if !quiet {
            let tasks = ledger.tasks(id).await?;
            progress.show(&request, &tasks);
        }
        if request.status == RequestStatus::AwaitingApproval && !quiet {
            eprintln!(
                "request {id} waits for approval: `dsr plan {id}` shows what it will do, `dsr approve {id} --plan <hash>` lets it"
            );
        }
        if request.status.is_terminal()
            || request.status == RequestStatus::AwaitingApproval
            || started.elapsed() >= timeout
        {
            return Ok(request.status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 0 when the request completed, or stopped where an operator must approve its plan.
fn exit_for(status: RequestStatus) -> ExitCode {
    if matches!(status, RequestStatus::Completed | RequestStatus::AwaitingApproval) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Enqueues `new` and processes it with a worker in this process until it ends, stops for
/// approval, or `timeout` passes. Returns the request id and where it got to.
pub async fn process_here(
    engine: &Engine,
    new: dsr_jobs::model::NewRequest,
    by: &str,
    timeout: Duration,
    quiet: bool,
) -> Result<(String, RequestStatus), CliError> {
    let (id, _) = engine.enqueue_from(new, &entered_by(by)).await?;
    if !quiet {
        eprintln!("enqueued {id}; processing in this process");
    }
    let status = work_on(engine, &id, timeout, quiet).await?;
    Ok((id, status))
}

/// A request entered on the command line by `by` (an operator's name, recorded in its audit
/// event as who entered it: four-eyes approval compares it with the approver).
fn entered_by(by: &str) -> dsr_jobs::ledger::Origin {
    dsr_jobs::ledger::Origin {
        actor: Some(by.trim().to_string()),
        ..Default::default()
    }
}

/// Runs a worker in this process until request `id` ends, stops for approval, or `timeout`
/// passes.
pub async fn work_on(engine: &Engine, id: &str, timeout: Duration, quiet: bool) -> Result<RequestStatus, CliError> {
    let shutdown = Shutdown::new();
    let worker = {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { super::worker::run_in_process(&engine, true, None, None, &shutdown).await })
    };
    let waited = wait_for(engine.ledger(), id, timeout, quiet).await;
    shutdown.trigger();
    match tokio::time::timeout(Duration::from_secs(30), worker).await {
        Ok(Ok(Err(e))) => eprintln!("warning: the worker in this process stopped: {}", e.message()),
        Err(_) => eprintln!("warning: running tasks did not finish within 30 s of stopping"),
        _ => {}
    }
    waited
}

pub async fn run(config: &Config, args: &RequestArgs, as_json: bool) -> Result<ExitCode, CliError> {
    let new = validate(config, args)?;
    let engine = crate::wiring::engine(config).await?;
    let by = args.by.clone().unwrap_or_else(super::plans::default_operator);
    super::plans::four_eyes_account(
        config,
        engine.ledger(),
        &by,
        args.by.is_some(),
        dsr_jobs::model::Role::Operator,
    )
    .await?;
    let (id, status) = process_here(&engine, new, &by, args.timeout, as_json).await?;
    print_status(engine.ledger(), &id, as_json).await?;
    Ok(exit_for(status))
}

pub async fn enqueue(config: &Config, args: &EnqueueArgs, as_json: bool) -> Result<ExitCode, CliError> {
    let new = validate(config, &args.request)?;
    let engine = crate::wiring::engine(config).await?;
    let by = args.request.by.clone().unwrap_or_else(super::plans::default_operator);
    let given = args.request.by.is_some();
    super::plans::four_eyes_account(config, engine.ledger(), &by, given, dsr_jobs::model::Role::Operator).await?;
    let id = match engine.enqueue_from(new, &entered_by(&by)).await {
        Ok((id, _)) => id,
        Err(e) => {
            // Stored but not queued (the queue did not answer for a while): the id still goes
            // to stdout, so that whoever submitted it can follow it, and the exit code says 3.
            if let dsr_jobs::EngineError::Queue(queue) = &e
                && let Some(stored) = queue.stored_request()
            {
                print_enqueued(&engine, stored, as_json).await?;
            }
            return Err(e.into());
        }
    };
    if !args.wait {
        print_enqueued(&engine, &id, as_json).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let status = wait_for(engine.ledger(), &id, args.request.timeout, as_json).await?;
    print_status(engine.ledger(), &id, as_json).await?;
    Ok(exit_for(status))
}

/// What `dsr enqueue` prints: the request's id, or its status document with `--json`.
async fn print_enqueued(engine: &Engine, id: &str, as_json: bool) -> Result<(), CliError> {
    if as_json {
        let request = engine.ledger().get_request(id).await?;
        let tasks = engine.ledger().tasks(id).await?;
        println!("{}", status_json(&request, &tasks));
    } else {
        println!("{id}");
    }
    Ok(())
}

/// The request and its tasks, whether it needs attention, and which worker holds each
/// running task (live or not, and when it last polled).
pub async fn status(config: &Config, id: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    let request = ledger.get_request(id).await?;
    let tasks = ledger.tasks(id).await?;
    let attention = ledger.attention_since(id).await?;
    let held = ledger.held_tasks(Some(id)).await?;
    let workers = if held.is_empty() {
        Vec::new()
    } else {
        ledger.workers().await?
    };
    let holder = |processor: dsr_connector::Processor| {
        held.iter()
            .find(|(_, t)| t.processor == processor)
            .map(|(owner, task)| (owner, task, workers.iter().find(|w| &w.name == owner)))
    };
    if as_json {
        let mut doc = status_json(&request, &tasks);
        mark_attention(&mut doc, attention);
        if let Some(entries) = doc["processors"].as_array_mut() {
            for (entry, task) in entries.iter_mut().zip(&tasks) {
                entry["held_by"] = match holder(task.processor) {
                    Some((owner, held, worker)) => serde_json::json!({
                        "worker": owner,
                        "live": worker.is_some_and(|w| w.live),
                        "last_poll_at": worker.and_then(|w| w.last_poll_at).map(workers::rfc3339),
                        "since": workers::rfc3339(held.since),
                        "lease_until": held.lease_until.map(workers::rfc3339),
                    }),
                    None => serde_json::Value::Null,
                };
            }
        }
        println!("{doc}");
    } else {
        print!("{}", status_text(&request, &tasks));
        if let Some(since) = attention {
            println!(
                "  attention     since {}: a task is still failing or retrying within {} days of the deadline; \
                 fix what its error names and `dsr retry {id}`, or `dsr extend {id}` with a reason",
                workers::rfc3339(since),
                config.worker.deadline_warning_days()
            );
        }
        let now = ledger.now();
        for task in &tasks {
            let Some((owner, held, worker)) = holder(task.processor) else {
                continue;
            };
            let how = match worker {
                Some(w) => format!(
                    "{}, last poll {}",
                    workers::state(w),
                    w.last_poll_at
                        .map(|t| workers::when(t, now))
                        .unwrap_or_else(|| "never".into())
                ),
                None => "no heartbeat from it".into(),
            };
            println!(
                "  held by       {}: {owner} ({how}) since {}",
                task.processor,
                workers::when(held.since, now)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Adds `needs_attention` and `attention_since` to a status document.
fn mark_attention(doc: &mut serde_json::Value, since: Option<chrono::DateTime<Utc>>) {
    doc["needs_attention"] = serde_json::Value::Bool(since.is_some());
    doc["attention_since"] = since.map(workers::rfc3339).into();
}

pub async fn list(config: &Config, args: &ListArgs, as_json: bool) -> Result<ExitCode, CliError> {
    let status = args
        .status
        .as_deref()
        .map(str::parse::<RequestStatus>)
        .transpose()
        .map_err(bad_input)?;
    let ledger = crate::wiring::ledger(config).await?;
    let filter = ListFilter {
        status,
        overdue_at: args.overdue.then(Utc::now),
    };
    let mut requests = ledger.list(&filter).await?;
    let attention: std::collections::HashMap<String, chrono::DateTime<Utc>> =
        ledger.needing_attention().await?.into_iter().collect();
    if args.attention {
        requests.retain(|r| attention.contains_key(&r.id));
    }
    if as_json {
        let mut items = Vec::new();
        for r in &requests {
            let mut item = status_json(r, &ledger.tasks(&r.id).await?);
            mark_attention(&mut item, attention.get(&r.id).copied());
            items.push(item);
        }
        println!("{}", serde_json::json!({ "requests": items }));
    } else if requests.is_empty() {
        println!("no requests");
    } else {
        println!(
            "{:<36}  {:<13}  {:<19}  {:<20}  due",
            "id", "kind", "status", "received"
        );
        for r in &requests {
            let overdue = if !r.status.is_terminal() && r.due_at < Utc::now() {
                "  OVERDUE"
            } else {
                ""
            };
            let flag = if attention.contains_key(&r.id) {
                "  NEEDS ATTENTION"
            } else {
                ""
            };
            println!(
                "{:<36}  {:<13}  {:<19}  {:<20}  {}{overdue}{flag}",
                r.id,
                r.kind.as_str(),
                r.status.as_str(),
                r.received_at.format("%Y-%m-%d %H:%M"),
                r.due_at.format("%Y-%m-%d"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
