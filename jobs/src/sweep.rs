//! Scheduled sweeps (apalis-cron): the recovery sweep puts lost and due work back on the
//! queue; the deadline watch flags requests due within a week and those overdue, and
//! escalates those whose tasks still fail (`needs_attention`). apalis-cron fires in every
//! process, so each tick is claimed in the ledger and runs once.

use std::str::FromStr;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::engine::{Engine, EngineError};
use crate::ledger::ts;
use crate::model::TaskStatus;
use crate::queue::Job;

/// How long a sweep keeps pushing to a queue that does not answer before the tick fails.
const SWEEP_PUSH_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(5);

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
    // A queue that does not answer is retried briefly; then this tick fails (logged) and the
    // next tick finds the same work due again.
    let bound = (engine.settings().sweep_every / 2).min(SWEEP_PUSH_RETRY_FOR);
    for id in &due.fan_outs {
        queue.push_within(Job::FanOut { request_id: id.clone() }, bound).await?;
    }
    for (id, processor) in &due.tasks {
        queue
            .push_within(
                Job::ProcessorTask {
                    request_id: id.clone(),
                    processor: *processor,
                },
                bound,
            )
            .await?;
    }
    for id in &due.finalizes {
        queue
            .push_within(Job::Finalize { request_id: id.clone() }, bound)
            .await?;
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

/// What one escalation pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// Requests newly flagged as needing attention.
    pub flagged: Vec<String>,
    /// Requests whose flag was cleared (they ended, recovered, or were extended).
    pub cleared: Vec<String>,
}

/// The deadline drives escalation: every open request due within the warning window with a
/// task still failing or retrying is flagged `needs_attention` (once, with a
/// `request.needs_attention` audit event and a WARN line) instead of retrying quietly into
/// the legal deadline; a flag is cleared once its request ended, its tasks recovered or its
/// deadline was extended past the window.
pub async fn escalate(engine: &Engine, now: DateTime<Utc>) -> Result<Escalation, EngineError> {
    let ledger = engine.ledger();
    let horizon = now + chrono::Duration::days(engine.settings().deadline_warning_days);
    let mut report = Escalation::default();
    for request in ledger.attention_due(horizon).await? {
        // Processors, states and attempts only: the events and the log name nobody.
        let open: Vec<_> = ledger
            .tasks(&request.id)
            .await?
            .into_iter()
            .filter(|t| !t.status.is_terminal() || t.status == TaskStatus::Failed)
            .filter(|t| t.status != TaskStatus::Planned)
            .map(|t| json!({"processor": t.processor.as_str(), "status": t.status.as_str(), "attempts": t.attempts}))
            .collect();
        let days_left = (request.due_at - now).num_days();
        let detail = json!({"due_at": ts(request.due_at), "tasks": open});
        if ledger.mark_attention(&request.id, detail).await? {
            tracing::warn!(
                request = %request.id,
                due_at = %ts(request.due_at),
                days_left,
                "request.needs_attention: a task is still failing or retrying this close to the deadline; \
                 see `dsr status {}` and fix the processor, or `dsr extend` with a reason",
                request.id
            );
            report.flagged.push(request.id);
        }
    }
    for (id, why) in ledger.attention_resolved(horizon).await? {
        if ledger.clear_attention(&id, why).await? {
            tracing::info!(request = %id, reason = why.as_str(), "request no longer needs attention");
            report.cleared.push(id);
        }
    }
    Ok(report)
}

/// One scheduled tick: runs the sweeps if no other process has claimed this tick.
pub async fn run_tick(engine: &Engine, tick_at: DateTime<Utc>) -> Result<bool, EngineError> {
    let name = format!("sweep@{}", ts(tick_at));
    if !engine.ledger().claim_tick(&name, engine.worker_name()).await? {
        return Ok(false);
    }
    let now = engine.now();
    // The deadline watch and the escalation need only the ledger: they run even while the
    // queue is away (when work is stuck), and the recovery's error is returned after them.
    let recovered = recover(engine, now).await;
    watch_deadlines(engine, now).await?;
    escalate(engine, now).await?;
    recovered?;
    crate::retention::run(engine, now).await?;
    engine.ledger().prune_ticks(now - chrono::Duration::days(1)).await?;
    Ok(true)
}

async fn on_tick(tick: Tick, engine: Data<Engine>) -> Result<(), BoxDynError> {
    let at = DateTime::<Utc>::from_timestamp(tick.get_timestamp() as i64, 0).unwrap_or_else(Utc::now);
    // A panic in one tick must not end the scheduler: the process would keep running with
    // no sweeps at all.
    let Ok(result) = crate::failure::catch_panic(run_tick(&engine, at)).await else {
        tracing::error!("a scheduled sweep panicked (a bug in dsr: report it); the next tick tries again");
        return Err(Box::new(AbortError::new("stopped")) as BoxDynError);
    };
    result.map(|_| ()).map_err(|e| {
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

/// Runs the scheduler until `shutdown` resolves. A tick that fails (the ledger or the queue
/// unreachable) is logged and the next tick tries again; should the cron worker itself end
/// unasked, it is started again with capped backoff, so the sweeps outlive any outage.
pub async fn run_scheduler(
    engine: Engine,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), EngineError> {
    let expression = schedule_for(engine.settings().sweep_every);
    let schedule = cron::Schedule::from_str(&expression).map_err(|e| EngineError::Schedule {
        expression: expression.clone(),
        reason: e.to_string(),
    })?;
    let stop = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        })
    };
    let mut restarts = 0u32;
    loop {
        let name = engine.run_name("sweeps");
        let signal = stop.clone().cancelled_owned();
        let ended = WorkerBuilder::new(name)
            .backend(CronScheduler::new(schedule.clone()))
            .data(engine.clone())
            .build(on_tick)
            .run_until(async move {
                signal.await;
                Ok::<(), std::io::Error>(())
            })
            .await;
        if stop.is_cancelled() {
            break;
        }
        restarts += 1;
        let delay = crate::backoff::delay(
            restarts,
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(30),
            None,
        );
        match ended {
            Err(e) => tracing::warn!(error = %e, "the sweep scheduler stopped; starting it again in {delay:?}"),
            Ok(()) => tracing::warn!("the sweep scheduler ended unasked; starting it again in {delay:?}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => break,
        }
    }
    watcher.abort();
    Ok(())
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
