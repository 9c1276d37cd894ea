//! `dsr bench limits`: a backlog of access requests worked by three workers on one Redis
//! against a fake Graph that enforces Graph's documented limits per mailbox — four
//! concurrent requests, and 10,000 requests per 10 minutes — refusing anything past them
//! with 429 and Retry-After, as Graph does
//! (https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits).
//!
//! Scaled down in time ([`SCALE`]): the window's count 20 times smaller and the clock three
//! times faster — at most 500 requests in any 10 s per mailbox (the fake counts a sliding
//! window) — so the steady rate is reached within seconds instead of ten minutes and 200
//! requests take about two minutes; dsr's limiters are scaled the same way
//! ([`dsr_connector::http::scale_limits_for_benchmark`]). The three workers
//! run in this process, each with its own connectors and limiters, sharing only Redis, as
//! three machines would.
//!
//! Printed: calls Graph refused (goal 0), and the share of the limit used at the busiest
//! mailbox — its calls served against what the limit allowed between its first call and
//! its last answer (goal ≥ 90%).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::Utc;
use dsr_connector::Processor;
use dsr_connector::http::Scale;
use dsr_fixtures::enforce::EnforcedLimits;

use super::resp::Redis;
use super::{Figure, Goal};
use crate::commands::{Shutdown, demo, worker};
use crate::config::Config;
use crate::error::{CliError, bad_input};

const BENCH: &str = "limits";
/// Graph's burst 20 times smaller and its clock three times faster in this benchmark: 500
/// requests per 10 s per mailbox.
pub const SCALE: Scale = Scale { burst: 20, speed: 3 };
const WORKERS: usize = 3;
const GIVE_UP_AFTER: Duration = Duration::from_secs(900);
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Graph's documented per-mailbox limits, scaled as the connector's are.
fn graph_limits() -> EnforcedLimits {
    let documented = dsr_connector::http::Limits {
        requests: 10_000,
        per: Duration::from_secs(600),
        concurrent: 4,
    }
    .scaled(SCALE);
    EnforcedLimits {
        requests: documented.requests,
        per: documented.per,
        concurrent: documented.concurrent,
    }
}

pub async fn limits(loaded: &Config, requests: usize, redis: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let figures = run(loaded, requests, redis, as_json).await?;
    super::report(&figures, as_json)
}

/// Runs the benchmark, printing its account unless `quiet`, and returns its figures.
pub async fn run(loaded: &Config, requests: usize, redis: &str, quiet: bool) -> Result<Vec<Figure>, CliError> {
    if requests == 0 {
        return Err(bad_input("--requests must be at least 1"));
    }
    let mut cleaner = Redis::connect(redis).await.map_err(|e| {
        bad_input(format!(
            "the limits benchmark needs Redis: {} does not answer ({e}). Start Redis or name one with --redis URL",
            dsr_jobs::queue::redacted(redis)
        ))
    })?;
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let prefix = format!("dsr-bench-{}-{nanos}", std::process::id());
    let measured = measure(loaded, requests, redis, &prefix, quiet).await;
    match cleaner.delete_prefixed(&prefix).await {
        Ok(n) if !quiet => println!("removed the benchmark's {n} Redis keys (prefix {prefix})"),
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not remove the Redis keys under {prefix}: {e}"),
    }
    let measured = measured?;
    let limits = graph_limits();
    if !quiet {
        println!(
            "{requests} access requests at Microsoft 365 on {WORKERS} workers in {:.1} s; Graph limits per mailbox \
             scaled (burst /{}, clock x{}): {} concurrent, {} requests per {} s",
            measured.wall.as_secs_f64(),
            SCALE.burst,
            SCALE.speed,
            limits.concurrent,
            limits.requests,
            limits.per.as_secs_f64()
        );
        for (mailbox, counts) in &measured.counts {
            println!(
                "  {mailbox:<12} {:>6} served, {:>4} refused (concurrency), {:>4} refused (rate), most in flight {}",
                counts.served, counts.refused_for_concurrency, counts.refused_for_rate, counts.most_in_flight
            );
        }
    }
    Ok(vec![
        Figure::new(
            BENCH,
            format!("calls Graph refused (429), {requests} requests, {WORKERS} workers"),
            Some(measured.refused as f64),
            "",
            Goal::AtMost(0.0),
        ),
        Figure::new(
            BENCH,
            "share of the busiest mailbox's limit used",
            measured.share.map(|s| s * 100.0),
            "%",
            Goal::AtLeast(90.0),
        )
        .note(format!(
            "Graph's 10,000 per 10 min and 4 concurrent per mailbox, burst /{}, clock x{}; {:.1} s",
            SCALE.burst,
            SCALE.speed,
            measured.wall.as_secs_f64()
        )),
    ])
}

struct Measured {
    wall: Duration,
    refused: u64,
    share: Option<f64>,
    counts: std::collections::BTreeMap<String, dsr_fixtures::enforce::KeyCounts>,
}

async fn measure(
    loaded: &Config,
    requests: usize,
    redis: &str,
    prefix: &str,
    quiet: bool,
) -> Result<Measured, CliError> {
    let scratch = tempfile::Builder::new()
        .prefix("dsr-bench-limits-")
        .tempdir()
        .map_err(|e| CliError::Unreachable(format!("benchmark: cannot create a scratch folder: {e}")))?;
    let mut config = demo::demo_config(loaded, scratch.path())?;
    config.queue.url = redis.to_string();
    config.queue.prefix = prefix.to_string();
    dsr_connector::http::scale_limits_for_benchmark(SCALE);
    let (fake, section) = demo::start_graph_fake(scratch.path()).await?;
    config.processors.microsoft365 = Some(section);
    let enforcer = fake.enforce(graph_limits());

    let mut engines = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        // Each with its own connectors and limiters: only Redis is shared.
        engines.push(crate::wiring::engine(&config).await?);
    }
    let subject = demo::demo_subject(&config)?;
    let mut ids = Vec::with_capacity(requests);
    for _ in 0..requests {
        ids.push(
            engines[0]
                .enqueue(super::access_request(&subject, vec![Processor::Microsoft365]))
                .await?,
        );
    }
    if !quiet {
        println!("limits: {requests} access requests queued; starting {WORKERS} workers");
    }
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let running: Vec<_> = engines
        .iter()
        .map(|engine| {
            let (engine, shutdown) = (engine.clone(), shutdown.clone());
            tokio::spawn(async move { worker::run_in_process(&engine, false, None, None, &shutdown).await })
        })
        .collect();
    let mut ended = 0;
    while ended < ids.len() && started.elapsed() < GIVE_UP_AFTER && running.iter().all(|r| !r.is_finished()) {
        if engines[0].ledger().get_request(&ids[ended]).await?.status.is_terminal() {
            ended += 1;
        } else {
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
    let wall = started.elapsed();
    shutdown.trigger();
    for r in running {
        let _ = tokio::time::timeout(Duration::from_secs(30), r).await;
    }
    dsr_connector::http::scale_limits_for_benchmark(Scale::NONE);
    if ended < ids.len() {
        return Err(CliError::Failed(anyhow::anyhow!(
            "only {ended} of {requests} requests ended within {GIVE_UP_AFTER:?}"
        )));
    }
    Ok(Measured {
        wall,
        refused: enforcer.refused(),
        share: enforcer.share_of_rate_used(),
        counts: enforcer.counts(),
    })
}
