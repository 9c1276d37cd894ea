//! Task attempts: claimed under a lease, renewed, finished exactly once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use serde_json::{Value, json};
use sqlx::Row;

use super::rows::ts;
use super::{Event, Ledger, LedgerError, Result};
use crate::model::{Outcome, TaskStatus};

/// Why an attempt did not succeed, in three parts kept apart: `code` (`permanent:403:Forbidden`,
/// chained in the audit log), `text` (dsr's own words with what to do next, stored with the
/// task and shown in `dsr status`, confirmations and bundles: never a vendor's words, a URL's
/// query or an identity) and `said` (what the vendor's answer said, kept only in the audit
/// log's scrubbable note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    pub code: String,
    pub text: String,
    pub said: Option<String>,
}

impl TaskError {
    pub fn new(code: impl Into<String>, text: impl Into<String>) -> TaskError {
        TaskError {
            code: code.into(),
            text: text.into(),
            said: None,
        }
    }

    /// A connector's error, with `text` as dsr says it (its `Display`, perhaps with advice).
    pub fn from_connector(error: &dsr_connector::ConnectorError, text: String) -> TaskError {
        TaskError {
            code: error.code(),
            text,
            said: error.said().map(str::to_string),
        }
    }

    /// The same error with its text and the vendor's words passed through `scrub`.
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> TaskError {
        TaskError {
            code: self.code,
            text: scrub(&self.text),
            said: self.said.as_deref().map(&scrub),
        }
    }

    /// The audit note: dsr's text and, on its own line, what the vendor said.
    fn note(&self) -> String {
        match &self.said {
            Some(said) => format!("{}\nthe vendor said: {said}", self.text),
            None => self.text.clone(),
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a task attempt ended with.
#[derive(Debug, Clone)]
pub enum TaskResult {
    Succeeded {
        outcome: Outcome,
        found: u64,
        changed: u64,
        reason: Option<String>,
        evidence: Value,
        spool: Option<String>,
    },
    Retrying {
        error: TaskError,
        next_retry_at: DateTime<Utc>,
    },
    /// The vendor throttled the attempt (a 429, a quota): the task waits as `Retrying` does,
    /// but this attempt is not counted against the retry budget.
    Throttled {
        error: TaskError,
        next_retry_at: DateTime<Utc>,
    },
    Failed {
        error: TaskError,
    },
    NotApplicable {
        reason: String,
    },
    /// The plan is made and stored; the task waits for an operator's approval.
    Planned {
        found: u64,
    },
}

impl TaskResult {
    /// The same result with every free text (errors, reasons) passed through `scrub`.
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> TaskResult {
        match self {
            TaskResult::Retrying { error, next_retry_at } => TaskResult::Retrying {
                error: error.scrubbed(scrub),
                next_retry_at,
            },
            TaskResult::Throttled { error, next_retry_at } => TaskResult::Throttled {
                error: error.scrubbed(scrub),
                next_retry_at,
            },
            TaskResult::Failed { error } => TaskResult::Failed {
                error: error.scrubbed(scrub),
            },
            TaskResult::NotApplicable { reason } => TaskResult::NotApplicable { reason: scrub(&reason) },
            TaskResult::Succeeded {
                outcome,
                found,
                changed,
                reason,
                evidence,
                spool,
            } => TaskResult::Succeeded {
                outcome,
                found,
                changed,
                reason: reason.as_deref().map(&scrub),
                evidence,
                spool,
            },
            planned @ TaskResult::Planned { .. } => planned,
        }
    }

    /// The error, if the attempt ended in one.
    pub fn error(&self) -> Option<&TaskError> {
        match self {
            TaskResult::Retrying { error, .. } | TaskResult::Throttled { error, .. } | TaskResult::Failed { error } => {
                Some(error)
            }
            _ => None,
        }
    }

    /// The event's free text: the error's note or the reason.
    fn note(&self) -> Option<String> {
        match self {
            TaskResult::NotApplicable { reason } => Some(reason.clone()),
            TaskResult::Succeeded { reason, .. } => reason.clone(),
            other => other.error().map(TaskError::note),
        }
    }

    fn status(&self) -> TaskStatus {
        match self {
            TaskResult::Planned { .. } => TaskStatus::Planned,
            TaskResult::Succeeded { .. } => TaskStatus::Succeeded,
            TaskResult::Retrying { .. } | TaskResult::Throttled { .. } => TaskStatus::Retrying,
            TaskResult::Failed { .. } => TaskStatus::Failed,
            TaskResult::NotApplicable { .. } => TaskStatus::NotApplicable,
        }
    }
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// This worker now holds the task for one attempt.
    Taken(Claim),
    /// The worker holding the task stopped (its lease ran out) and the task's attempts are
    /// spent: it is failed now instead of being run again (it may be what stops workers).
    Abandoned,
    /// Nothing to do: done already, held by a live worker, or not yet due.
    NotDue,
}

/// A claimed task: the attempt number this worker now owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Numbers attempts over the task's whole life (spool files and audit events use it).
    pub attempt: u32,
    /// Attempts since the last manual retry: what the retry budget counts.
    pub budget_used: u32,
}

impl Ledger {
    /// Takes a task for one attempt, if it is due: pending, retrying with its backoff
    /// elapsed, or running under a lease that expired (its worker died). A task that is
    /// terminal or held by a live worker is not taken, so a re-delivered job does nothing.
    /// No retry budget applies: see [`Ledger::claim_task_within`].
    pub async fn claim_task(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>> {
        Ok(
            match self.claim_task_within(id, processor, owner, lease, u32::MAX).await? {
                Claimed::Taken(claim) => Some(claim),
                Claimed::Abandoned | Claimed::NotDue => None,
            },
        )
    }

    /// As [`Ledger::claim_task`], within a retry budget of `max_attempts`. Taking over a
    /// task whose worker stopped while holding it counts that attempt (`task.abandoned` in
    /// the audit log); once the attempts since the last `dsr retry` are spent, the task is
    /// failed instead of taken, so a task that crashes its worker ends instead of crashing
    /// every worker in turn.
    pub async fn claim_task_within(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Claimed> {
        let now = self.now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        let (now, until) = (ts(now), ts(until));
        // Every statement here writes, so the transaction holds the write lock from its
        // first statement (SQLite cannot upgrade a read snapshot another writer moved past).
        let mut tx = self.pool.begin().await?;
        let spent = sqlx::query(
            "UPDATE tasks SET status = 'failed', lease_owner = NULL, lease_until = NULL, next_retry_at = NULL, \
             updated_at = $3 WHERE request_id = $1 AND processor = $2 AND status = 'running' \
             AND lease_until < $3 AND attempts - attempt_base >= $4 RETURNING attempts",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(&now)
        .bind(i64::from(max_attempts))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = spent {
            let attempt = row.try_get::<i64, _>(0)?;
            let stops = self.abandoned_count(&mut tx, id, processor).await? + 1;
            let abandoned = abandoned_error(id, processor, stops, max_attempts);
            let error = abandoned.to_string();
            sqlx::query("UPDATE tasks SET error = $3 WHERE request_id = $1 AND processor = $2")
                .bind(id)
                .bind(processor.as_str())
                .bind(&error)
                .execute(&mut *tx)
                .await?;
            self.record_abandoned(&mut tx, id, processor, attempt).await?;
            self.insert_audit(
                &mut tx,
                Some(id),
                Some(processor),
                "task.failed",
                json!({"attempt": attempt, "code": abandoned.code(), "note": error, "abandoned": stops}),
                Some(&format!("finished:{id}:{processor}:{attempt}")),
            )
            .await?;
            tx.commit().await?;
            return Ok(Claimed::Abandoned);
        }
        let claim = |due: &'static str| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tasks SET status = 'running', attempts = attempts + 1, lease_owner = $3, \
                 lease_until = $4, updated_at = $5 WHERE request_id = $1 AND processor = $2 AND ({due}) \
                 RETURNING attempts, attempt_base"
            )))
            .bind(id)
            .bind(processor.as_str())
            .bind(owner)
            .bind(&until)
            .bind(&now)
        };
        // A take-over first, so that the attempt its worker left is put on record.
        let taken_over = claim("status = 'running' AND lease_until < $5")
            .fetch_optional(&mut *tx)
            .await?;
        let row = match taken_over {
            Some(row) => Some((row, true)),
            None => {
                claim("status = 'pending' OR (status = 'retrying' AND (next_retry_at IS NULL OR next_retry_at <= $5))")
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| (row, false))
            }
        };
        let Some((row, taken_over)) = row else {
            return Ok(Claimed::NotDue);
        };
        let attempt = row.try_get::<i64, _>(0)? as u32;
        let budget_used = attempt.saturating_sub(row.try_get::<i64, _>(1)? as u32);
        if taken_over {
            self.record_abandoned(&mut tx, id, processor, i64::from(attempt) - 1)
                .await?;
        }
        self.insert_audit(
            &mut tx,
            Some(id),
            Some(processor),
            "task.started",
            json!({"attempt": attempt, "worker": owner}),
            Some(&format!("started:{id}:{processor}:{attempt}")),
        )
        .await?;
        tx.commit().await?;
        Ok(Claimed::Taken(Claim { attempt, budget_used }))
    }

    /// The attempts since the last `dsr retry` that count against `[worker] max_attempts`
    /// (a throttled attempt does not), or `None` for a task the ledger does not hold.
    pub async fn budget_used(&self, id: &str, processor: Processor) -> Result<Option<u32>> {
        let row = sqlx::query("SELECT attempts - attempt_base FROM tasks WHERE request_id = $1 AND processor = $2")
            .bind(id)
            .bind(processor.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0)),
            None => None,
        })
    }

    /// Puts on record that the worker holding `attempt` stopped without recording a result.
    async fn record_abandoned(
        &self,
        tx: &mut sqlx::AnyConnection,
        id: &str,
        processor: Processor,
        attempt: i64,
    ) -> Result<()> {
        self.insert_audit(
            tx,
            Some(id),
            Some(processor),
            "task.abandoned",
            json!({"attempt": attempt}),
            Some(&format!("abandoned:{id}:{processor}:{attempt}")),
        )
        .await
        .map(|_| ())
    }

    /// How often a worker stopped while holding this task, as the audit log holds it.
    async fn abandoned_count(&self, tx: &mut sqlx::AnyConnection, id: &str, processor: Processor) -> Result<u32> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) FROM audit_log WHERE request_id = $1 AND processor = $2 AND event = 'task.abandoned'",
        )
        .bind(id)
        .bind(processor.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Extends this worker's lease on a running task; false when it lost the task.
    pub async fn renew_lease(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        claim: Claim,
        lease: Duration,
    ) -> Result<bool> {
        let until = self.now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        Ok(sqlx::query(
            "UPDATE tasks SET lease_until = $5 WHERE request_id = $1 AND processor = $2 \
             AND status = 'running' AND lease_owner = $3 AND attempts = $4",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(owner)
        .bind(claim.attempt as i64)
        .bind(ts(until))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Records how an attempt ended, exactly once: only the worker holding the claim can
    /// record it, and the audit event is keyed by attempt, so a re-delivered job records
    /// nothing twice. Returns false when the claim was lost (another worker took over).
    pub async fn finish_task(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        claim: Claim,
        result: &TaskResult,
    ) -> Result<bool> {
        let now = ts(self.now());
        let (outcome, found, changed, reason, error, evidence, spool, next_retry) = match result {
            TaskResult::Succeeded {
                outcome,
                found,
                changed,
                reason,
                evidence,
                spool,
            } => (
                Some(outcome.as_str()),
                *found as i64,
                *changed as i64,
                reason.clone(),
                None,
                evidence.to_string(),
                spool.clone(),
                None,
            ),
            TaskResult::Retrying { error, next_retry_at } | TaskResult::Throttled { error, next_retry_at } => (
                None,
                0,
                0,
                None,
                Some(error.text.clone()),
                "null".into(),
                None,
                Some(ts(*next_retry_at)),
            ),
            TaskResult::Failed { error } => (None, 0, 0, None, Some(error.text.clone()), "null".into(), None, None),
            TaskResult::NotApplicable { reason } => (None, 0, 0, Some(reason.clone()), None, "null".into(), None, None),
            TaskResult::Planned { found } => (None, *found as i64, 0, None, None, "null".into(), None, None),
        };
        let status = result.status();
        // A throttled attempt moves the budget's base with it: it is not counted.
        let throttled = matches!(result, TaskResult::Throttled { .. });
        let update = sqlx::query(
            "UPDATE tasks SET status = $5, outcome = $6, found = $7, changed = $8, reason = $9, \
             error = $10, evidence = $11, spool = $12, next_retry_at = $13, lease_owner = NULL, \
             lease_until = NULL, updated_at = $14, attempt_base = attempt_base + $15 \
             WHERE request_id = $1 AND processor = $2 AND status = 'running' \
             AND lease_owner = $3 AND attempts = $4",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(owner)
        .bind(claim.attempt as i64)
        .bind(status.as_str())
        .bind(outcome)
        .bind(found)
        .bind(changed)
        .bind(reason.clone())
        .bind(error.clone())
        .bind(evidence)
        .bind(spool)
        .bind(next_retry.clone())
        .bind(&now)
        .bind(i64::from(throttled));
        // Codes and counts are chained; the words go in the event's note.
        let mut detail = json!({"attempt": claim.attempt, "outcome": outcome, "found": found,
               "changed": changed, "code": result.error().map(|e| &e.code),
               "next_retry_at": next_retry, "note": result.note()});
        if throttled {
            detail["throttled"] = json!(true);
        }
        self.transition(
            update,
            Event {
                request: Some(id),
                processor: Some(processor),
                name: &format!("task.{status}"),
                detail,
                dedup: Some(format!("finished:{id}:{processor}:{}", claim.attempt)),
            },
        )
        .await
    }

    /// Settles a task that never ran (e.g. the connector cannot serve the right).
    pub async fn settle_unstarted(&self, id: &str, processor: Processor, result: &TaskResult) -> Result<bool> {
        let (reason, error) = match result {
            TaskResult::NotApplicable { reason } => (Some(reason.clone()), None),
            TaskResult::Failed { error } => (None, Some(error.text.clone())),
            _ => {
                return Err(LedgerError::Refused(
                    "only not_applicable or failed settle an unstarted task".into(),
                ));
            }
        };
        let status = result.status();
        let update = sqlx::query(
            "UPDATE tasks SET status = $3, reason = $4, error = $5, updated_at = $6 \
             WHERE request_id = $1 AND processor = $2 AND status IN ('pending', 'retrying')",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(status.as_str())
        .bind(reason.clone())
        .bind(error.clone())
        .bind(ts(self.now()));
        self.transition(
            update,
            Event {
                request: Some(id),
                processor: Some(processor),
                name: &format!("task.{status}"),
                detail: json!({"code": result.error().map(|e| &e.code), "note": result.note()}),
                dedup: None,
            },
        )
        .await
    }
}

/// Why a task whose worker kept stopping was failed, and what the operator does
/// (`permanent:abandoned`, as `dsr status` shows it).
fn abandoned_error(id: &str, processor: Processor, stops: u32, max_attempts: u32) -> dsr_connector::ConnectorError {
    dsr_connector::ConnectorError::permanent(
        processor,
        "abandoned",
        format!(
            "the worker holding this task stopped {stops} time(s) while running it (crashed, killed or \
             restarted) and its {max_attempts} attempts are spent; it may crash workers: report it with the \
             workers' logs. `dsr retry {id} --processor {processor}` runs it again"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::model::{Lang, NewRequest, RequestKind};

    const LEASE: Duration = Duration::from_secs(60);

    async fn ledger_with_task(dir: &std::path::Path, id: &str) -> (Ledger, Clock) {
        let clock = Clock::manual(Utc::now());
        let ledger = Ledger::open(&format!("sqlite://{}/ledger.db", dir.display()))
            .await
            .unwrap()
            .with_clock(clock.clone());
        let new = NewRequest {
            kind: RequestKind::Erasure,
            identities: Default::default(),
            changes: vec![],
            lang: Lang::En,
            dry_run: false,
            processors: vec![Processor::Wix],
            received_at: clock.now(),
            verified_by: None,
            verified_at: None,
        };
        ledger
            .create_request(id, &new, clock.now() + chrono::Duration::days(30))
            .await
            .unwrap();
        (ledger, clock)
    }

    #[tokio::test]
    async fn a_task_whose_worker_keeps_stopping_ends_failed_when_its_attempts_are_spent() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, clock) = ledger_with_task(dir.path(), "r1").await;
        let wix = Processor::Wix;
        let past_the_lease = || clock.advance(chrono::Duration::seconds(61));
        let first = ledger.claim_task_within("r1", wix, "w1", LEASE, 2).await.unwrap();
        assert_eq!(
            first,
            Claimed::Taken(Claim {
                attempt: 1,
                budget_used: 1
            })
        );
        assert_eq!(
            ledger.claim_task_within("r1", wix, "w2", LEASE, 2).await.unwrap(),
            Claimed::NotDue,
            "a live worker holds it"
        );
        // w1 dies holding it; w2 takes it over, and the dead attempt counted.
        past_the_lease();
        assert_eq!(
            ledger.claim_task_within("r1", wix, "w2", LEASE, 2).await.unwrap(),
            Claimed::Taken(Claim {
                attempt: 2,
                budget_used: 2
            })
        );
        // w2 dies too: both attempts are spent, and the task is failed instead of taken.
        past_the_lease();
        assert_eq!(
            ledger.claim_task_within("r1", wix, "w3", LEASE, 2).await.unwrap(),
            Claimed::Abandoned
        );
        let task = ledger.task("r1", wix).await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Failed);
        assert_eq!(task.attempts, 2, "no third attempt was started");
        let error = task.error.unwrap();
        assert!(
            error.contains("(abandoned)") && error.contains("stopped 2 time(s)") && error.contains("report it"),
            "{error}"
        );
        let events = ledger.audit_events("r1").await.unwrap();
        let named = |name: &str| events.iter().filter(|e| e.event == name).count();
        assert_eq!(named("task.abandoned"), 2);
        assert_eq!(named("task.started"), 2);
        assert_eq!(named("task.failed"), 1);
        assert_eq!(
            ledger.claim_task_within("r1", wix, "w4", LEASE, 2).await.unwrap(),
            Claimed::NotDue,
            "a failed task is not taken again"
        );
        assert_eq!(abandoned_error("r1", wix, 2, 2).code(), "permanent:abandoned");
    }

    #[tokio::test]
    async fn a_throttled_attempt_spends_none_of_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, clock) = ledger_with_task(dir.path(), "r1").await;
        let wix = Processor::Wix;
        for attempt in 1..=3 {
            let Claimed::Taken(claim) = ledger.claim_task_within("r1", wix, "w", LEASE, 2).await.unwrap() else {
                panic!("attempt {attempt} not taken");
            };
            assert_eq!(claim.attempt, attempt);
            assert_eq!(
                claim.budget_used, 1,
                "throttled attempts before this one are not counted"
            );
            let throttled = TaskResult::Throttled {
                error: TaskError::new("retry_later:429", "throttled"),
                next_retry_at: clock.now(),
            };
            assert!(ledger.finish_task("r1", wix, "w", claim, &throttled).await.unwrap());
            assert_eq!(ledger.budget_used("r1", wix).await.unwrap(), Some(0));
        }
        let task = ledger.task("r1", wix).await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Retrying);
        let events = ledger.audit_events("r1").await.unwrap();
        assert_eq!(
            events
                .iter()
                .filter(|e| e.event == "task.retrying" && e.detail["throttled"] == true)
                .count(),
            3
        );
        // A counted failure moves the budget.
        let Claimed::Taken(claim) = ledger.claim_task_within("r1", wix, "w", LEASE, 2).await.unwrap() else {
            panic!("not taken");
        };
        let failed = TaskResult::Retrying {
            error: TaskError::new("retry_later:503", "unavailable"),
            next_retry_at: clock.now(),
        };
        assert!(ledger.finish_task("r1", wix, "w", claim, &failed).await.unwrap());
        assert_eq!(ledger.budget_used("r1", wix).await.unwrap(), Some(1));
    }
}
