//! `dsr bench fanout`: one access request for the demo's seeded subject over all four fake
//! vendors, each answering every call after `--latency`, through the real queue (the embedded
//! SQLite default, `[queue] poll` and `[worker] concurrency` from the config), connectors
//! and bundle writer, in a scratch deployment that is removed afterwards. Then one request at
//! each processor alone, the same way.
//!
//! Printed: the wall time of each request (enqueue to its end, with a worker already polling
//! in this process), each processor's call count from the fakes' call logs, and the ratio of
//! the wall time to the critical path: the lower bound [`super::critical_path`] computes from
//! those logs at the vendors' documented concurrency (its module doc says exactly how),
//! times the latency. Goal for the four together: ≤ 1.5.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dsr_connector::{Identities, Processor};
use dsr_fixtures::google::GoogleFake;
use dsr_fixtures::graph::GraphFake;
use dsr_fixtures::superoffice::SuperOfficeFake;
use dsr_fixtures::wix::WixFake;
use dsr_jobs::Engine;
use dsr_jobs::model::RequestStatus;

use super::critical_path::{self, DOCUMENTED};
use super::{Figure, Goal};
use crate::commands::{Shutdown, demo, worker};
use crate::config::Config;
use crate::error::CliError;

const BENCH: &str = "fanout";
const GOAL: f64 = 1.5;
/// How often the ledger is asked whether the request has ended: small beside any latency
/// worth measuring, so the wall time is not rounded up to the next look.
const LOOK_EVERY: Duration = Duration::from_millis(2);
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// The four fakes, started on loopback, and what they logged.
pub(crate) struct Fakes {
    google: GoogleFake,
    graph: GraphFake,
    superoffice: SuperOfficeFake,
    wix: WixFake,
}

impl Fakes {
    /// Starts the fakes with their seed data and points `config` at them, as `dsr demo` does.
    pub(crate) async fn start(config: &mut Config, root: &Path) -> Result<Fakes, CliError> {
        let (google, c) = demo::start_google_fake(root).await?;
        config.processors.google = Some(c);
        let (graph, mut c) = demo::start_graph_fake(root).await?;
        // The demo pages by five to show paging; measured is the connector as deployed.
        c.page_size = dsr_microsoft365::Microsoft365Config::DEFAULT_PAGE_SIZE;
        config.processors.microsoft365 = Some(c);
        let (superoffice, c) = demo::start_superoffice_fake(root).await?;
        config.processors.superoffice = Some(c);
        let (wix, c) = demo::start_wix_fake(root).await?;
        config.processors.wix = Some(c);
        Ok(Fakes {
            google,
            graph,
            superoffice,
            wix,
        })
    }

    /// Every API call to every fake is answered after `latency`.
    pub(crate) fn slow_down(&self, latency: Duration) {
        self.google.slow_down(latency);
        self.graph.slow_down(latency);
        self.superoffice.slow_down(latency);
        self.wix.slow_down(latency);
    }

    pub(crate) fn calls(&self, processor: Processor) -> Vec<String> {
        match processor {
            Processor::Google => self.google.calls(),
            Processor::Microsoft365 => self.graph.calls(),
            Processor::Superoffice => self.superoffice.calls(),
            Processor::Wix => self.wix.calls(),
            Processor::OpenDsr(_) => Vec::new(),
        }
    }
}

/// One request measured: its processors, wall time, end status, and each processor's calls
/// (the part of its fake's log this request made).
struct Measured {
    processors: Vec<Processor>,
    wall: Duration,
    status: RequestStatus,
    calls: Vec<(Processor, Vec<String>)>,
}

impl Measured {
    /// Each processor's bound, and the request's (the largest: processors run side by side).
    fn bounds(&self) -> (Vec<(Processor, critical_path::Bound)>, u32) {
        let bounds: Vec<_> = self
            .calls
            .iter()
            .map(|(p, calls)| (*p, critical_path::lower_bound(*p, calls, &DOCUMENTED)))
            .collect();
        let steps = bounds.iter().map(|(_, b)| b.steps).max().unwrap_or(0);
        (bounds, steps)
    }
}

pub async fn fanout(loaded: &Config, latency: Duration, as_json: bool) -> Result<ExitCode, CliError> {
    let figures = run(loaded, latency, as_json).await?;
    super::report(&figures, as_json)
}

/// Runs the benchmark, printing its account unless `quiet`, and returns its figures.
pub async fn run(loaded: &Config, latency: Duration, quiet: bool) -> Result<Vec<Figure>, CliError> {
    let scratch = tempfile::Builder::new()
        .prefix("dsr-bench-fanout-")
        .tempdir()
        .map_err(|e| CliError::Unreachable(format!("benchmark: cannot create a scratch folder: {e}")))?;
    let mut config = demo::demo_config(loaded, scratch.path())?;
    let fakes = Fakes::start(&mut config, scratch.path()).await?;
    fakes.slow_down(latency);
    let (connectors, _) = crate::wiring::connectors(&config)?;
    let engine = crate::wiring::engine(&config).await?;
    let subject = demo::demo_subject(&config)?;
    let all = connectors.processors();
    if !quiet {
        println!(
            "fan-out: one access request over {} with every fake answering each call after {}",
            names(&all),
            humantime::format_duration(latency)
        );
        println!(
            "queue: embedded SQLite, polled every {} ([queue] poll), {} tasks at once ([worker] concurrency)",
            humantime::format_duration(config.queue.poll),
            config.worker.concurrency
        );
    }
    let mut runs = vec![all.clone()];
    runs.extend(all.iter().map(|p| vec![*p]));
    let mut measured = Vec::new();
    for processors in runs {
        measured.push(one_request(&engine, &subject, processors, &fakes).await?);
    }
    if !quiet {
        print_runs(&measured, latency);
    }
    Ok(figures(&measured, latency))
}

/// Enqueues one access request at `processors` for a worker already polling in this process,
/// and waits for it to end.
async fn one_request(
    engine: &Engine,
    subject: &Identities,
    processors: Vec<Processor>,
    fakes: &Fakes,
) -> Result<Measured, CliError> {
    let logged: Vec<usize> = processors.iter().map(|p| fakes.calls(*p).len()).collect();
    let shutdown = Shutdown::new();
    let running = {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { worker::run_in_process(&engine, false, None, None, &shutdown).await })
    };
    // The clock starts with a worker that has asked the queue at least once: what is measured
    // is the request, not the worker starting.
    let since = engine.liveness().last_poll();
    let started = Instant::now();
    while engine.liveness().last_poll() == since && started.elapsed() < GIVE_UP_AFTER && !running.is_finished() {
        tokio::time::sleep(LOOK_EVERY).await;
    }
    let new = super::access_request(subject, processors.clone());
    let started = Instant::now();
    let id = engine.enqueue(new).await?;
    let status = loop {
        let status = engine.ledger().get_request(&id).await?.status;
        if status.is_terminal() || status == RequestStatus::AwaitingApproval || started.elapsed() > GIVE_UP_AFTER {
            break status;
        }
        if running.is_finished() {
            break status;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    };
    let wall = started.elapsed();
    shutdown.trigger();
    match tokio::time::timeout(Duration::from_secs(30), running).await {
        Ok(Ok(Err(e))) => eprintln!("warning: the benchmark's worker stopped: {}", e.message()),
        Err(_) => eprintln!("warning: the benchmark's worker did not stop within 30 s"),
        _ => {}
    }
    let calls = processors
        .iter()
        .zip(logged)
        .map(|(p, from)| (*p, fakes.calls(*p).split_off(from)))
        .collect();
    Ok(Measured {
        processors,
        wall,
        status,
        calls,
    })
}

fn names(processors: &[Processor]) -> String {
    processors.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

fn label(m: &Measured) -> String {
    match m.processors.as_slice() {
        [one] => format!("{} alone", one.as_str()),
        all => format!("all {} together", all.len()),
    }
}

/// Wall time over critical path, when there is a path (a latency of zero leaves none).
fn ratio(wall: Duration, steps: u32, latency: Duration) -> Option<f64> {
    let path = latency.as_secs_f64() * f64::from(steps);
    (path > 0.0).then(|| wall.as_secs_f64() / path)
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn print_runs(measured: &[Measured], latency: Duration) {
    println!(
        "\n{:<24} {:>10} {:>7} {:>15} {:>7}  status / what sets the critical path",
        "request", "wall", "calls", "critical path", "ratio"
    );
    for m in measured {
        let (bounds, steps) = m.bounds();
        let calls: usize = m.calls.iter().map(|(_, c)| c.len()).sum();
        println!(
            "{:<24} {:>10} {:>7} {:>15} {:>7}  {}",
            label(m),
            millis(m.wall),
            calls,
            format!("{steps} x {}", millis(latency)),
            ratio(m.wall, steps, latency).map_or("-".into(), |r| format!("{r:.2}")),
            m.status.as_str()
        );
        if m.processors.len() > 1 {
            for (p, bound) in &bounds {
                let logged = m.calls.iter().find(|(q, _)| q == p).map_or(0, |(_, c)| c.len());
                println!(
                    "  {:<22} {:>10} {:>7} {:>15} {:>7}  {} (timed calls: {})",
                    p.as_str(),
                    "",
                    logged,
                    format!("{} x {}", bound.steps, millis(latency)),
                    "",
                    bound.because,
                    bound.timed_calls
                );
            }
        }
    }
    println!(
        "\ncritical path: per processor, the most steps of {} that its logged calls need at the \
         documented concurrency (Graph 4 per mailbox; Gmail {} per user; SuperOffice {} per tenant; \
         Wix {} per site), counting the calls each must wait for (a read after the search that \
         found it, a mailbox after the directory listing): max over limit key and depth d of \
         d + ceil(calls of depth >= d / limit); the request's is the largest processor's. A lower \
         bound, so ratio >= 1; what is above 1 is queue, ledger, bundle and calls that did not overlap.",
        millis(latency),
        DOCUMENTED.gmail_per_user,
        DOCUMENTED.superoffice_per_tenant,
        DOCUMENTED.wix_per_site
    );
}

fn figures(measured: &[Measured], latency: Duration) -> Vec<Figure> {
    measured
        .iter()
        .map(|m| {
            let (_, steps) = m.bounds();
            let together = m.processors.len() > 1;
            let goal = if together { Goal::AtMost(GOAL) } else { Goal::None };
            let mut note = format!("wall {}, critical path {steps} x {}", millis(m.wall), millis(latency));
            if m.status != RequestStatus::Completed {
                note.push_str(&format!("; the request ended {}", m.status.as_str()));
            }
            if steps == 0 || latency.is_zero() {
                note.push_str("; no latency, no critical path to compare");
            }
            Figure::new(
                BENCH,
                format!("wall / critical path, {}", label(m)),
                ratio(m.wall, steps, latency),
                "x",
                goal,
            )
            .note(note)
        })
        .collect()
}
