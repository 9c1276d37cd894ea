//! `dsr worker`: process queued requests, and run the scheduled sweeps, until told to stop.

use std::process::ExitCode;

use dsr_jobs::Engine;
use dsr_jobs::queue::redacted;

use super::Shutdown;
use crate::cli::WorkerArgs;
use crate::config::Config;
use crate::error::CliError;

/// Runs the queue worker (and, unless `sweeps` is false, the scheduler) until `shutdown`.
/// Runs a worker in this process until `shutdown`: jobs, the heartbeat, and with `sweeps` the
/// scheduled sweeps, (with `opendsr`) the OpenDSR status callbacks and (with `deliverer`)
/// the e-mails that deliver finished requests to their subjects.
pub async fn run_in_process(
    engine: &Engine,
    sweeps: bool,
    opendsr: Option<std::sync::Arc<crate::opendsr::OpenDsr>>,
    deliverer: Option<crate::subject::delivery::Deliverer>,
    shutdown: &Shutdown,
) -> Result<(), CliError> {
    let heartbeat = tokio::spawn(dsr_jobs::heartbeat::run(engine.clone(), shutdown.signal()));
    let callbacks = match opendsr.filter(|_| sweeps) {
        Some(opendsr) => {
            let sender = crate::opendsr::callbacks::Sender::new(engine.clone(), opendsr)?;
            Some(tokio::spawn(sender.run(shutdown.signal())))
        }
        None => None,
    };
    let deliveries = deliverer
        .filter(|_| sweeps)
        .map(|deliverer| tokio::spawn(deliverer.run(shutdown.signal())));
    let scheduler = sweeps.then(|| {
        let engine = engine.clone();
        let signal = shutdown.signal();
        tokio::spawn(async move { dsr_jobs::sweep::run_scheduler(engine, signal).await })
    });
    let result = engine.run_worker(shutdown.signal()).await;
    if result.is_err() {
        // The worker gave up on its queue: the sweeps and the heartbeat stop with it, so the
        // process exits (non-zero) and its supervisor starts a new one, instead of living on
        // without taking work.
        shutdown.trigger();
    }
    if let Some(handle) = scheduler
        && let Ok(Err(e)) = handle.await
    {
        tracing::warn!(error = %e, "scheduler ended with an error");
    }
    if let Some(callbacks) = callbacks {
        let _ = callbacks.await;
    }
    if let Some(deliveries) = deliveries {
        let _ = deliveries.await;
    }
    // The heartbeat records the stop before the process exits (`dsr workers`: stopped).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), heartbeat).await;
    result.map_err(Into::into)
}

pub async fn worker(config: &Config, args: &WorkerArgs) -> Result<ExitCode, CliError> {
    let engine = crate::wiring::engine(config).await?;
    let (_, missing) = crate::wiring::connectors(config)?;
    for p in missing {
        eprintln!("warning: processor {p} is enabled but this build has no connector for it; its tasks will fail");
    }
    eprintln!(
        "dsr worker {} processing {} (ledger {}, queue {}); Ctrl-C to stop",
        engine.worker_name(),
        engine
            .connectors()
            .processors()
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        // Where, with any password left out.
        redacted(&config.store.url),
        redacted(&config.queue.url),
    );
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("stopping: letting running tasks finish");
        trigger.trigger();
    });
    let opendsr = crate::opendsr::OpenDsr::configured(config)?.map(std::sync::Arc::new);
    let deliverer = crate::subject::delivery::Deliverer::configured(&engine, config)?;
    run_in_process(&engine, !args.no_sweeps, opendsr, deliverer, &shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
