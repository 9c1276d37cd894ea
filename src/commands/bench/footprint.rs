//! `dsr bench footprint`: the memory of a real `dsr worker` — this binary, started as a child
//! process on a scratch deployment (embedded SQLite ledger and queue) — read from
//! `/proc/<pid>/status` (`VmRSS`): once idle, then as the backlog grows from 100 to 10,000
//! waiting requests. The requests are for Microsoft 365, whose fake (in this process) holds
//! every API call for an hour, so the worker's task places fill and the rest of the requests
//! wait in the queue, as in a backlog. Goals: idle < 50 MiB; flat as the queue grows (RSS at
//! the largest backlog at most 1.10 × RSS at the smallest), since the queue holds ids, not data.

use std::process::ExitCode;
use std::time::Duration;

use dsr_connector::Processor;
use dsr_jobs::Engine;

use super::{Figure, Goal, bench_io, status_kib};
use crate::commands::demo;
use crate::config::Config;
use crate::error::{CliError, bad_input};

const BENCH: &str = "footprint";
const IDLE_GOAL_MIB: f64 = 50.0;
const FLAT_GOAL: f64 = 1.10;
/// How long the fake holds each call: longer than the benchmark runs.
const HOLD: Duration = Duration::from_secs(3600);
/// How long RSS is watched after each step before it is read, so what the worker does with
/// the new backlog (fetching, fanning out, polling) has happened.
const SETTLE: Duration = Duration::from_secs(3);

pub async fn footprint(loaded: &Config, backlog: &[usize], as_json: bool) -> Result<ExitCode, CliError> {
    let figures = run(loaded, backlog, as_json).await?;
    super::report(&figures, as_json)
}

/// Runs the benchmark with the backlog growing through `steps` (ascending request counts),
/// printing its account unless `quiet`, and returns its figures.
pub async fn run(loaded: &Config, steps: &[usize], quiet: bool) -> Result<Vec<Figure>, CliError> {
    if steps.is_empty() || steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad_input(
            "--backlog takes ascending request counts, e.g. 100,1000,10000",
        ));
    }
    if status_kib("self", "VmRSS:").is_none() {
        return Err(bad_input("`dsr bench footprint` reads /proc/<pid>/status: Linux only"));
    }
    let scratch = tempfile::Builder::new()
        .prefix("dsr-bench-footprint-")
        .tempdir()
        .map_err(bench_io("create a scratch folder"))?;
    let root = scratch.path();
    let graph = dsr_fixtures::graph::GraphFake::start()
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot start the fake Graph on loopback: {e}")))?;
    graph.slow_down(HOLD);
    let config_path = super::graph_deployment(loaded, root, &graph)?;
    let config = Config::load(Some(config_path.as_path()))?;
    let engine = crate::wiring::engine(&config).await?;
    let mut child = super::spawn_worker(&config_path, root)?;
    let measured = measure(&engine, &mut child, steps, quiet).await;
    // Its tasks are held for an hour: it could not stop gracefully within the benchmark.
    let _ = child.start_kill();
    let _ = child.wait().await;
    let (idle, rows) = match measured {
        Ok(m) => m,
        Err(e) => {
            super::print_worker_log(root);
            return Err(e);
        }
    };

    let mib = |kib: u64| kib as f64 / 1024.0;
    if !quiet {
        println!("{:<32} {:>10}", "waiting requests", "VmRSS");
        println!("{:<32} {:>6.1} MiB", "0 (idle)", mib(idle));
        for (n, kib) in &rows {
            println!("{n:<32} {:>6.1} MiB", mib(*kib));
        }
    }
    let mut figures = vec![
        Figure::new(
            BENCH,
            "idle worker RSS",
            Some(mib(idle)),
            "MiB",
            Goal::AtMost(IDLE_GOAL_MIB),
        )
        .note("a `dsr worker` child process, VmRSS"),
    ];
    if let (Some((first_n, first)), Some((last_n, last))) = (rows.first(), rows.last()) {
        figures.push(
            Figure::new(
                BENCH,
                format!("RSS at {last_n} / at {first_n} waiting"),
                Some(*last as f64 / (*first).max(1) as f64),
                "x",
                Goal::AtMost(FLAT_GOAL),
            )
            .note(format!("{:.1} MiB -> {:.1} MiB", mib(*first), mib(*last))),
        );
    }
    Ok(figures)
}

/// Waits for the worker to poll, reads its idle RSS, then grows the backlog through `steps`
/// and reads its RSS after each.
async fn measure(
    engine: &Engine,
    child: &mut tokio::process::Child,
    steps: &[usize],
    quiet: bool,
) -> Result<(u64, Vec<(usize, u64)>), CliError> {
    let pid = super::wait_for_poll(engine, child).await?;
    let idle = settled_rss(child, pid).await?;
    if !quiet {
        println!("footprint: `dsr worker` (pid {pid}) polls its queue; growing the backlog to {steps:?} requests");
    }
    let subject = demo::demo_subject(&Config::default())?;
    let mut rows = Vec::new();
    let mut queued = 0;
    for &step in steps {
        while queued < step {
            engine
                .enqueue(super::access_request(&subject, vec![Processor::Microsoft365]))
                .await?;
            queued += 1;
        }
        rows.push((step, settled_rss(child, pid).await?));
    }
    Ok((idle, rows))
}

/// The child's VmRSS after [`SETTLE`], read while it still runs.
async fn settled_rss(child: &mut tokio::process::Child, pid: u32) -> Result<u64, CliError> {
    tokio::time::sleep(SETTLE).await;
    if let Ok(Some(status)) = child.try_wait() {
        return Err(CliError::Failed(anyhow::anyhow!("`dsr worker` ended ({status})")));
    }
    status_kib(&pid.to_string(), "VmRSS:")
        .ok_or_else(|| CliError::Failed(anyhow::anyhow!("cannot read /proc/{pid}/status")))
}
