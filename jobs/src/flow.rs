//! The request's path through the queue: `fan_out` → one `processor_task` per processor →
//! `finalize`. Each step asks the ledger what is left to do, so any step may run twice.

use std::time::Duration;

use dsr_connector::{ConnectorError, Processor, Support, TaskContext};
use serde_json::json;

use crate::engine::{Engine, EngineError};
use crate::failure::Retries;
use crate::guard::CheckedSpool;
use crate::ledger::{Claim, Claimed, TaskError, TaskResult, Written};
use crate::model::{Outcome, Request, RequestKind, RequestStatus, TaskStatus};
use crate::queue::Job;
use crate::spool::{SpoolWriter, request_prefix, spool_key};

/// A worker's jobs: each step of the flow, by job. A panic in any step ends that job only
/// (apalis would let it unwind through the worker and every job it runs): the job fails
/// with the code `stopped`, and the sweep takes the work up again.
#[async_trait::async_trait]
impl crate::queue::Handler for Engine {
    async fn handle(&self, job: &Job) -> Result<(), EngineError> {
        let step = async {
            match job {
                Job::FanOut { request_id } => fan_out(self, request_id).await,
                Job::ProcessorTask { request_id, processor } => processor_task(self, request_id, *processor).await,
                Job::Finalize { request_id } => finalize(self, request_id).await,
            }
        };
        match crate::failure::catch_panic(step).await {
            Ok(result) => result,
            Err(panic) => Err(step_panicked(self, job, panic).await),
        }
    }
}

/// A step of the flow panicked (not a connector: those fail their task): say so where the
/// operator looks, and fail the job.
async fn step_panicked(engine: &Engine, job: &Job, panic: crate::failure::Panic) -> EngineError {
    let (step, request_id) = match job {
        Job::FanOut { request_id } => ("fan_out", request_id),
        Job::ProcessorTask { request_id, .. } => ("processor_task", request_id),
        Job::Finalize { request_id } => ("finalize", request_id),
    };
    tracing::error!(request = %request_id, step, location = panic.location.as_deref().unwrap_or("unknown"),
        "a step of the flow panicked: a bug in dsr; report it with this log. The sweep tries the step again");
    if let Job::Finalize { request_id } = job {
        let note = "finalize panicked: a bug in dsr; report it with the worker's log. The sweep tries again";
        // Whose lease it was is not known here: it is left to expire rather than taken from
        // an attempt that may still hold it.
        if let Err(e) = engine.ledger().note_finalize_failure(request_id, note, None).await {
            tracing::warn!(error = %e, "could not note the panic in the ledger");
        }
    }
    EngineError::Stopped {
        what: step,
        reason: "it panicked (a bug in dsr: report it with the worker's log)".into(),
    }
}

/// Moves the request to in_progress and queues a task for every processor still due.
pub async fn fan_out(engine: &Engine, request_id: &str) -> Result<(), EngineError> {
    let ledger = engine.ledger();
    let request = ledger.get_request(request_id).await?;
    if request.status.is_terminal() {
        return Ok(());
    }
    ledger.start_request(request_id).await?;
    let tasks = ledger.tasks(request_id).await?;
    if tasks.iter().all(|t| t.status.is_terminal()) {
        return engine
            .queue()
            .push(Job::Finalize {
                request_id: request_id.to_string(),
            })
            .await
            .map_err(Into::into);
    }
    for task in tasks
        .iter()
        .filter(|t| matches!(t.status, TaskStatus::Pending | TaskStatus::Retrying))
    {
        engine
            .queue()
            .push(Job::ProcessorTask {
                request_id: request_id.to_string(),
                processor: task.processor,
            })
            .await?;
    }
    Ok(())
}

/// Runs one request at one processor, once per claim, and records the result.
pub async fn processor_task(engine: &Engine, request_id: &str, processor: Processor) -> Result<(), EngineError> {
    let ledger = engine.ledger();
    let request = ledger.get_request(request_id).await?;
    if request.status != RequestStatus::InProgress {
        return Ok(());
    }
    let Some(connector) = engine.connectors().get(processor).cloned() else {
        let error = format!(
            "processor {processor} is not configured in this deployment: enable [processors.{processor}] and run `dsr retry {request_id}`"
        );
        ledger
            .settle_unstarted(
                request_id,
                processor,
                &TaskResult::Failed {
                    error: TaskError::new("not_configured", error),
                },
            )
            .await?;
        return maybe_finalize(engine, request_id).await;
    };
    if let Support::NotApplicable(reason) = connector.capabilities().for_right(request.kind.right()) {
        let result = TaskResult::NotApplicable { reason: reason.clone() };
        ledger.settle_unstarted(request_id, processor, &result).await?;
        return maybe_finalize(engine, request_id).await;
    }

    let settings = engine.settings();
    let owner = engine.worker_name().to_string();
    let claim = match ledger
        .claim_task_within(
            request_id,
            processor,
            &owner,
            settings.task_lease,
            settings.max_attempts,
        )
        .await?
    {
        Claimed::Taken(claim) => claim,
        Claimed::NotDue => return Ok(()), // done already, or a live worker holds it
        Claimed::Abandoned => {
            tracing::error!(request = %request_id, %processor, "task failed: the worker holding it stopped while running it and its attempts are spent; it may crash workers");
            return maybe_finalize(engine, request_id).await;
        }
    };
    tracing::info!(request = %request_id, %processor, attempt = claim.attempt, "task started");

    let keep_lease = {
        let (engine, id) = (engine.clone(), request_id.to_string());
        let lease = engine.settings().task_lease;
        Renewal::spawn(async move {
            keep_renewing(lease, "task", || {
                engine
                    .ledger()
                    .renew_lease(&id, processor, engine.worker_name(), claim, lease)
            })
            .await
        })
    };
    let generation = ledger.task_retries(request_id, processor).await?;
    let ctx = TaskContext::new(request_id, claim.attempt, request.dry_run)
        .with_generation(generation)
        .asked(
            request.received_at,
            request.kind == crate::model::RequestKind::Portability,
        );
    let ids = &request.identities;
    // The connector's work runs contained: a panic fails this task only, and work past
    // `task_timeout` is stopped and retried by policy.
    let limit = settings.task_timeout;
    let result = match request.kind {
        RequestKind::Access | RequestKind::Portability => {
            let mut spool = SpoolWriter::create(&settings.export, spool_key(request_id, processor, claim.attempt));
            let accessed = {
                let mut checked = CheckedSpool::new(&mut spool, ids, processor, request_id);
                crate::failure::contain(limit, connector.access(&ctx, ids, &mut checked))
                    .await
                    .into_result(processor, request.kind.as_str(), request_id)
                    .and_then(|accessed| accessed)
            };
            match accessed {
                Ok(summary) => {
                    let refused = spool.dropped();
                    let found = if request.kind == RequestKind::Portability {
                        spool.provided_by_subject()
                    } else {
                        spool.count()
                    };
                    match spool.commit().await {
                        Ok(spool) => Ok(TaskResult::Succeeded {
                            outcome: if found == 0 {
                                Outcome::NothingFound
                            } else {
                                Outcome::Done
                            },
                            found,
                            changed: 0,
                            reason: None,
                            evidence: json!({"notes": summary.notes, "operator_notes": summary.operator_notes, "refused_records": refused}),
                            spool: Some(spool.to_string()),
                        }),
                        Err(e) => Err(EngineError::Storage(e)),
                    }
                }
                Err(e) => {
                    spool.discard().await;
                    Ok(classify_failure(engine, &request, claim, e))
                }
            }
        }
        RequestKind::Erasure | RequestKind::Rectification | RequestKind::Objection => {
            let run = crate::change::run(engine, &request, processor, connector.as_ref(), claim, &ctx);
            match crate::failure::contain(limit, run)
                .await
                .into_result(processor, request.kind.as_str(), request_id)
            {
                Ok(Ok(crate::change::Step::Result(result))) => Ok(result),
                Ok(Ok(crate::change::Step::Vendor(e))) | Err(e) => Ok(classify_failure(engine, &request, claim, e)),
                Ok(Ok(crate::change::Step::Lagging(why))) => Ok(retry_or_fail(engine, &request, claim, why, None)),
                Ok(Err(EngineError::Storage(e))) => Err(EngineError::Storage(e)),
                Ok(Err(e)) => {
                    keep_lease.abort();
                    return Err(e);
                }
            }
        }
    };
    keep_lease.abort();
    let result = match result {
        Ok(result) => result,
        Err(storage) => {
            // Our disk, not the vendor: keep the task for a later attempt and say why.
            let storage: EngineError = storage;
            tracing::error!(request = %request_id, %processor, error = %storage, "could not store records");
            retry_or_fail(
                engine,
                &request,
                claim,
                TaskError::new("storage", storage.to_string()),
                None,
            )
        }
    };
    // What is stored is dsr's text without the subject's identifiers, other addresses or
    // URL queries, whatever a connector put in it; the vendor's words only reach the
    // audit log's scrubbable note, scrubbed the same way.
    let result = result.scrubbed(|text| crate::redact::scrub(text, &request.identities));
    let recorded = ledger
        .finish_task(request_id, processor, &owner, claim, &result)
        .await?;
    if !recorded {
        // Cancelled while this attempt ran: what it may just have handed the processor (an
        // OpenDSR request submitted as the cancellation was withdrawing) is withdrawn now.
        if ledger.get_request(request_id).await?.status == crate::model::RequestStatus::Cancelled {
            tracing::info!(request = %request_id, %processor, "the request was cancelled while its task ran; withdrawing");
            crate::cancel::withdraw(ledger, connector.as_ref(), request_id).await?;
            return Ok(());
        }
        tracing::warn!(request = %request_id, %processor, attempt = claim.attempt, "another worker took this task over; result discarded");
        return Ok(());
    }
    tracing::info!(request = %request_id, %processor, attempt = claim.attempt, status = ?status_name(&result), "task ended");
    maybe_finalize(engine, request_id).await
}

fn status_name(result: &TaskResult) -> &'static str {
    match result {
        TaskResult::Succeeded { .. } => "succeeded",
        TaskResult::Retrying { .. } | TaskResult::Throttled { .. } => "retrying",
        TaskResult::Failed { .. } => "failed",
        TaskResult::NotApplicable { .. } => "not_applicable",
        TaskResult::Planned { .. } => "planned",
    }
}

/// A lease being renewed in the background, for as long as the work it covers runs: dropped
/// (the work ended, failed, or its future was cancelled by the queue), it stops renewing, so
/// the lease runs out and another worker takes the work over. A renewal that outlived its
/// work would hold the lease forever.
struct Renewal(tokio::task::JoinHandle<()>);

impl Renewal {
    fn spawn(renew: impl std::future::Future<Output = ()> + Send + 'static) -> Renewal {
        Renewal(tokio::spawn(renew))
    }

    fn abort(&self) {
        self.0.abort();
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews a lease every third of its length until `renew` reports it lost (or the caller
/// aborts this when the work is done).
async fn keep_renewing<F, Fut>(lease: Duration, what: &'static str, renew: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, crate::LedgerError>>,
{
    let every = (lease / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        match renew().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(error = %e, "could not renew a {what} lease"),
        }
    }
}

fn classify_failure(engine: &Engine, request: &Request, claim: Claim, error: ConnectorError) -> TaskResult {
    let retries = Retries::for_request(engine.settings(), request);
    crate::failure::classify(retries, engine.now(), claim, error)
}

fn retry_or_fail(
    engine: &Engine,
    request: &Request,
    claim: Claim,
    error: TaskError,
    after: Option<Duration>,
) -> TaskResult {
    let retries = Retries::for_request(engine.settings(), request);
    crate::failure::retry_later(retries, engine.now(), claim, error, after)
}

/// Queues `finalize` once every task has ended; stops the request for approval once every
/// task has ended or made its plan and some plan waits.
pub async fn maybe_finalize(engine: &Engine, request_id: &str) -> Result<(), EngineError> {
    let tasks = engine.ledger().tasks(request_id).await?;
    if tasks.iter().any(|t| t.status == TaskStatus::Planned) {
        if let Some(plan) = engine.ledger().await_approval(request_id).await? {
            tracing::info!(request = %request_id, %plan, "plans wait for approval: `dsr plan` shows them, `dsr approve` executes them");
        }
        return Ok(());
    }
    if tasks.iter().all(|t| t.status.is_terminal()) {
        engine
            .queue()
            .push(Job::Finalize {
                request_id: request_id.to_string(),
            })
            .await?;
    }
    Ok(())
}

/// Ends the request: writes the bundle (access, portability) or the confirmation (the
/// rest) and records the final status. Does nothing while a task is still open.
pub async fn finalize(engine: &Engine, request_id: &str) -> Result<(), EngineError> {
    let ledger = engine.ledger();
    let request = ledger.get_request(request_id).await?;
    if request.status != RequestStatus::InProgress {
        return Ok(());
    }
    let tasks = ledger.tasks(request_id).await?;
    if tasks.iter().any(|t| t.status == TaskStatus::Planned) {
        // A worker died between storing the last plan and stopping for approval.
        ledger.await_approval(request_id).await?;
        return Ok(());
    }
    if !tasks.iter().all(|t| t.status.is_terminal()) {
        return Ok(());
    }
    // One writer per request: two finalizations at once would store two different bundles
    // under one name, and the ledger could record the hash of the one overwritten. The
    // owner names this attempt, not just the worker: one worker can run two `finalize`
    // jobs for a request at once (its last two tasks each queue one).
    let owner = format!("{}/{}", engine.worker_name(), uuid::Uuid::new_v4());
    let lease = engine.settings().task_lease;
    if !ledger.claim_finalize(request_id, &owner, lease).await? {
        return Ok(());
    }
    let keep_lease = {
        let (engine, id, owner) = (engine.clone(), request_id.to_string(), owner.clone());
        Renewal::spawn(async move {
            keep_renewing(lease, "finalize", || engine.ledger().renew_finalize(&id, &owner, lease)).await
        })
    };
    let status = final_status(&tasks);
    let written = write_result(engine, &request, &tasks, status).await;
    keep_lease.abort();
    let written = match written {
        Ok(written) => written,
        Err(e @ EngineError::Storage(_)) => {
            // Our storage, not the request: say why in the ledger (without the subject's
            // identifiers a path or a store's message might carry); the sweep tries again.
            let why = crate::redact::scrub(&e.to_string(), &request.identities);
            ledger.note_finalize_failure(request_id, &why, Some(&owner)).await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let signer = engine.settings().signer.as_ref();
    if ledger
        .complete_request(
            request_id,
            status,
            &written,
            signer.is_some(),
            &owner,
            // A preview changed nothing: there is nothing to tell the subject.
            engine.settings().deliver && !request.dry_run,
        )
        .await?
    {
        tracing::info!(request = %request_id, %status, "request finished");
    } else {
        tracing::warn!(request = %request_id, "lost the finalize lease while writing; another worker finishes the request");
        return Ok(());
    }
    // The bundle holds everything now: the spool is a second copy of personal data.
    if let Err(e) = engine
        .settings()
        .export
        .delete_prefix(&request_prefix(request_id))
        .await
    {
        tracing::warn!(error = %e.kind(), "could not remove a finished request's spool");
    }
    Ok(())
}

/// Writes the bundle (access, portability) or the confirmation (the rest).
async fn write_result(
    engine: &Engine,
    request: &crate::model::Request,
    tasks: &[crate::model::Task],
    status: RequestStatus,
) -> Result<Written, EngineError> {
    let settings = engine.settings();
    let store = &settings.export;
    let signer = settings.signer.as_ref();
    Ok(if request.kind.exports() {
        let bundle =
            crate::bundle::write_bundle(store, request, tasks, &settings.processing_info, signer.cloned()).await?;
        Written::Bundle {
            location: bundle.location,
            sha256: bundle.manifest_sha256,
        }
    } else {
        let head = engine.ledger().audit_head().await?;
        let confirmation =
            crate::confirmation::write_confirmation(store, request, tasks, status, &head, signer).await?;
        Written::Confirmation {
            location: confirmation.location,
            sha256: confirmation.sha256,
        }
    })
}

/// completed when every task succeeded or could not apply; failed when none succeeded
/// and some failed; partially_completed otherwise.
pub fn final_status(tasks: &[crate::model::Task]) -> RequestStatus {
    let failed = tasks.iter().filter(|t| t.status == TaskStatus::Failed).count();
    let succeeded = tasks.iter().filter(|t| t.status == TaskStatus::Succeeded).count();
    match (failed, succeeded) {
        (0, _) => RequestStatus::Completed,
        (_, 0) => RequestStatus::Failed,
        _ => RequestStatus::PartiallyCompleted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Task;

    fn task(processor: Processor, status: TaskStatus) -> Task {
        Task::attempted("r", processor, status)
    }

    #[tokio::test]
    async fn a_renewal_stops_when_the_work_it_covers_is_dropped() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let renewed = std::sync::Arc::new(AtomicU32::new(0));
        let counter = renewed.clone();
        let renewal = Renewal::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(renewed.load(Ordering::SeqCst) > 0, "it renews while the work runs");
        // The queue cancels the work's future: the renewal goes with it.
        drop(renewal);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let after_drop = renewed.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            renewed.load(Ordering::SeqCst),
            after_drop,
            "an orphaned renewal would hold the lease forever"
        );
    }

    #[test]
    fn the_final_status_follows_the_tasks() {
        use TaskStatus::*;
        let of = |statuses: &[TaskStatus]| {
            let tasks: Vec<Task> = statuses.iter().zip(Processor::ALL).map(|(s, p)| task(p, *s)).collect();
            final_status(&tasks)
        };
        assert_eq!(of(&[Succeeded, NotApplicable]), RequestStatus::Completed);
        assert_eq!(of(&[Succeeded, Failed]), RequestStatus::PartiallyCompleted);
        assert_eq!(of(&[Failed, NotApplicable]), RequestStatus::Failed);
        assert_eq!(of(&[NotApplicable]), RequestStatus::Completed, "nothing to do is done");
        assert_eq!(of(&[Cancelled, Succeeded]), RequestStatus::Completed);
    }
}
