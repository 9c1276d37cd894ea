//! A worker's heartbeat: every `Settings::heartbeat_every` it tells the ledger it is alive
//! and when its queue poller last got an answer (from the engine's [`Liveness`]), so
//! `dsr workers`, `dsr status` and `dsr doctor` can tell a live worker from a dead one, and
//! one that is alive but no longer takes work. It also forgets workers dead for a day.

use std::future::Future;

use crate::engine::Engine;
use crate::ledger::workers::Heartbeat;
use crate::liveness::Liveness;

/// Workers whose last heartbeat is older than this are forgotten.
pub const FORGET_AFTER_DAYS: i64 = 1;

/// Beats between two prunes of dead workers (the first beat prunes too).
const PRUNE_EVERY_BEATS: u64 = 40;

/// What this process says about itself in each heartbeat.
pub fn beat(engine: &Engine, liveness: &Liveness, started_at: chrono::DateTime<chrono::Utc>) -> Heartbeat {
    Heartbeat {
        name: engine.worker_name().to_string(),
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        last_poll: liveness.last_poll(),
        every: engine.settings().heartbeat_every,
    }
}

/// Writes a heartbeat at once and then every `heartbeat_every` until `shutdown` resolves;
/// then marks this worker as stopping (it finishes its running tasks and exits). A ledger
/// that cannot be reached is logged and tried again at the next beat: the heartbeat never
/// ends the worker (the reconnect supervisor decides that), it only stops saying it lives.
pub async fn run(engine: Engine, shutdown: impl Future<Output = ()> + Send) {
    let liveness = engine.liveness().clone();
    let started_at = engine.now();
    let mut every = tokio::time::interval(engine.settings().heartbeat_every.max(std::time::Duration::from_secs(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beats: u64 = 0;
    let mut failing = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = every.tick() => {}
        }
        let ledger = engine.ledger();
        let written = ledger.heartbeat(&beat(&engine, &liveness, started_at)).await;
        match (&written, failing) {
            (Err(e), false) => {
                tracing::warn!(error_kind = e.kind(), error = %e, "cannot write this worker's heartbeat to the ledger; trying again every beat")
            }
            (Ok(()), true) => tracing::info!("heartbeat written again"),
            _ => {}
        }
        failing = written.is_err();
        if written.is_ok() && beats.is_multiple_of(PRUNE_EVERY_BEATS) {
            let before = engine.now() - chrono::Duration::days(FORGET_AFTER_DAYS);
            match ledger.prune_workers(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(workers = n, "forgot workers dead for a day"),
                Err(e) => tracing::warn!(error_kind = e.kind(), "could not prune dead workers"),
            }
        }
        beats += 1;
    }
    if let Err(e) = engine
        .ledger()
        .worker_stopped(engine.worker_name(), liveness.last_poll())
        .await
    {
        tracing::warn!(error_kind = e.kind(), error = %e, "could not record this worker's stop; it shows as not live once its heartbeat is old");
    }
}
