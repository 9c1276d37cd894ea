//! `dsr bench all`: every benchmark of issue 23 in one run — export, fan-out, queue overhead,
//! limits and footprint — each printing its own account, then one table of every figure
//! beside its goal. A benchmark that cannot run here (no Redis, no `zip`) is a row saying so,
//! not the end of the run. A benchmark added later gets its `run` call here, in the same way.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::{Figure, Goal};
use crate::config::Config;
use crate::error::CliError;

/// What `dsr bench all` passes on to each benchmark.
pub struct AllArgs<'a> {
    pub latency: Duration,
    pub queue: super::QueueBench,
    /// The limits benchmark's backlog (on the queue benchmark's Redis).
    pub limits_requests: usize,
    pub backlog: &'a [usize],
    pub export_size: u64,
    pub dir: Option<&'a Path>,
}

pub async fn all(loaded: &Config, args: &AllArgs<'_>, as_json: bool) -> Result<ExitCode, CliError> {
    let mut figures = Vec::new();
    let mut run = |name: &'static str, result: Result<Vec<Figure>, CliError>| match result {
        Ok(mut f) => figures.append(&mut f),
        Err(e) => {
            eprintln!("{name}: {}", e.message());
            figures.push(Figure::new(name, "did not run", None, "", Goal::None).note(e.message()));
        }
    };

    // Export first, on a quiet machine: its throughput is measured against zip's.
    heading("export", as_json);
    #[cfg(feature = "demo")]
    run(
        "export",
        super::export_path::run(loaded, args.export_size, args.dir, as_json).await,
    );
    #[cfg(not(feature = "demo"))]
    run("export", super::export::run(args.export_size, args.dir, as_json).await);

    heading("fan-out", as_json);
    #[cfg(feature = "demo")]
    run("fanout", super::fanout::run(loaded, args.latency, as_json).await);
    #[cfg(not(feature = "demo"))]
    run("fanout", Err(super::needs_demo("fanout")));

    heading("queue overhead", as_json);
    #[cfg(feature = "demo")]
    run("queue", super::queue::run(loaded, &args.queue, as_json).await);
    #[cfg(not(feature = "demo"))]
    run("queue", Err(super::needs_demo("queue")));

    heading("limits", as_json);
    #[cfg(feature = "demo")]
    run(
        "limits",
        super::limits::run(loaded, args.limits_requests, &args.queue.redis, as_json).await,
    );
    #[cfg(not(feature = "demo"))]
    run("limits", Err(super::needs_demo("limits")));

    heading("footprint", as_json);
    #[cfg(feature = "demo")]
    run("footprint", super::footprint::run(loaded, args.backlog, as_json).await);
    #[cfg(not(feature = "demo"))]
    run("footprint", Err(super::needs_demo("footprint")));
    let _ = (loaded, args.latency, &args.queue, args.limits_requests, args.backlog);

    if !as_json {
        println!("\n== summary ==");
    }
    super::print_figures(&figures, as_json);
    Ok(ExitCode::SUCCESS)
}

fn heading(name: &str, as_json: bool) {
    if !as_json {
        println!("\n== {name} ==");
    }
}
