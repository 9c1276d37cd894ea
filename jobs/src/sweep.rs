//! Scheduled sweeps (apalis-cron): the recovery sweep puts lost and due work back on the
//! queue; the deadline watch flags requests due within a week and those overdue. apalis-cron
//! fires in every process, so each tick is claimed in the ledger and runs once.

use std::str::FromStr;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::engine::{Engine, EngineError};
use crate::ledger::ts;
use crate::queue::Job;

/// What one recovery sweep put back on the queue.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub fan_outs: usize,
    pub tasks: usize,
    pub finalizes: usize,
}

/// Re-enqueues every request never fanned out, every task that is due (pending and idle,
/// retrying with its backoff elapsed, running under an expired lease — its worker died or
/// its job vanished from the queue) and every request waiting only for `finalize`.
pub async fn recover(engine: &Engine, now: DateTime<Utc>) -> Result<SweepReport, EngineError> {
    let due = engine
        .ledger()
        .recoverable(now, engine.settings().recover_after)
        .await?;
    let queue = engine.queue();
    for id in &due.fan_outs {
        queue.push(Job::FanOut { request_id: id.clone() }).await?;
    }
    for (id, processor) in &due.tasks {
        queue
            .push(Job::ProcessorTask {
                request_id: id.clone(),
                processor: *processor,
            })
            .await?;
    }
    for id in &due.finalizes {
        queue.push(Job::Finalize { request_id: id.clone() }).await?;
    }
    let report = SweepReport {
        fan_outs: due.fan_outs.len(),
        tasks: due.tasks.len(),
        finalizes: due.finalizes.len(),
    };
    if report != SweepReport::default() {
        tracing::info!(?report, "recovery sweep re-enqueued work");
    }
    Ok(report)
}

/// Flags, once per deadline, every open request due within the warning window, with an
/// audit event (`deadline.approaching` or `deadline.overdue`). Returns how many it flagged.
pub async fn watch_deadlines(engine: &Engine, now: DateTime<Utc>) -> Result<usize, EngineError> {
    let horizon = now + chrono::Duration::days(engine.settings().deadline_warning_days);
    let due = engine.ledger().deadline_warnings(horizon).await?;
    for request in &due {
        let event = if request.due_at < now {
            "deadline.overdue"
        } else {
            "deadline.approaching"
        };
        tracing::warn!(request = %request.id, due_at = %ts(request.due_at), "{event}");
        engine
            .ledger()
            .mark_warned(&request.id, event, json!({"due_at": ts(request.due_at)}))
            .await?;
    }
    Ok(due.len())
}

/// One scheduled tick: runs the sweeps if no other process has claimed this tick.
pub async fn run_tick(engine: &Engine, tick_at: DateTime<Utc>) -> Result<bool, EngineError> {
    let name = format!("sweep@{}", ts(tick_at));
    if !engine.ledger().claim_tick(&name, engine.worker_name()).await? {
        return Ok(false);
    }
    let now = engine.now();
    recover(engine, now).await?;
    watch_deadlines(engine, now).await?;
    crate::retention::run(engine, now).await?;
    engine.ledger().prune_ticks(now - chrono::Duration::days(1)).await?;
    Ok(true)
}

async fn on_tick(tick: Tick, engine: Data<Engine>) -> Result<(), BoxDynError> {
    let at = DateTime::<Utc>::from_timestamp(tick.get_timestamp() as i64, 0).unwrap_or_else(Utc::now);
    run_tick(&engine, at).await.map(|_| ()).map_err(|e| {
        tracing::warn!(code = e.code(), error = %e, "scheduled sweep failed; the next tick tries again");
        Box::new(AbortError::new(e.code())) as BoxDynError
    })
}

/// The cron expression (with seconds) for a sweep every `every`.
pub fn schedule_for(every: std::time::Duration) -> String {
    let secs = every.as_secs().max(1);
    if secs < 60 {
        format!("0/{secs} * * * * *")
    } else {
        let mins = (secs / 60).clamp(1, 59);
        format!("0 0/{mins} * * * *")
    }
}

/// Runs the scheduler until `shutdown` resolves.
pub async fn run_scheduler(
    engine: Engine,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), EngineError> {
    let expression = schedule_for(engine.settings().sweep_every);
    let schedule = cron::Schedule::from_str(&expression).map_err(|e| EngineError::Schedule {
        expression: expression.clone(),
        reason: e.to_string(),
    })?;
    let name = engine.run_name("sweeps");
    let signal = async move {
        shutdown.await;
        Ok::<(), std::io::Error>(())
    };
    WorkerBuilder::new(name)
        .backend(CronScheduler::new(schedule))
        .data(engine)
        .build(on_tick)
        .run_until(signal)
        .await
        .map_err(|e| EngineError::Stopped {
            what: "the sweep scheduler",
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn schedules_parse_for_seconds_and_minutes() {
        for every in [
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(300),
        ] {
            let expr = schedule_for(every);
            assert!(cron::Schedule::from_str(&expr).is_ok(), "{expr}");
        }
        assert_eq!(schedule_for(Duration::from_secs(300)), "0 0/5 * * * *");
    }
}
