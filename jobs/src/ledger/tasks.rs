//! Task attempts: claimed under a lease, renewed, finished exactly once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use serde_json::{Value, json};
use sqlx::Row;

use super::rows::ts;
use super::{Event, Ledger, LedgerError, Result};
use crate::model::{Outcome, TaskStatus};

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
        error: String,
        next_retry_at: DateTime<Utc>,
    },
    Failed {
        error: String,
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
    fn status(&self) -> TaskStatus {
        match self {
            TaskResult::Planned { .. } => TaskStatus::Planned,
            TaskResult::Succeeded { .. } => TaskStatus::Succeeded,
            TaskResult::Retrying { .. } => TaskStatus::Retrying,
            TaskResult::Failed { .. } => TaskStatus::Failed,
            TaskResult::NotApplicable { .. } => TaskStatus::NotApplicable,
        }
    }
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
    pub async fn claim_task(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>> {
        let now = self.now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE tasks SET status = 'running', attempts = attempts + 1, lease_owner = $3, \
             lease_until = $4, updated_at = $5 \
             WHERE request_id = $1 AND processor = $2 AND ( \
                status = 'pending' \
                OR (status = 'retrying' AND (next_retry_at IS NULL OR next_retry_at <= $5)) \
                OR (status = 'running' AND lease_until < $5)) \
             RETURNING attempts, attempt_base",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(owner)
        .bind(ts(until))
        .bind(ts(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let attempt = row.try_get::<i64, _>(0)? as u32;
        let budget_used = attempt.saturating_sub(row.try_get::<i64, _>(1)? as u32);
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
        Ok(Some(Claim { attempt, budget_used }))
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
            TaskResult::Retrying { error, next_retry_at } => (
                None,
                0,
                0,
                None,
                Some(error.clone()),
                "null".into(),
                None,
                Some(ts(*next_retry_at)),
            ),
            TaskResult::Failed { error } => (None, 0, 0, None, Some(error.clone()), "null".into(), None, None),
            TaskResult::NotApplicable { reason } => (None, 0, 0, Some(reason.clone()), None, "null".into(), None, None),
            TaskResult::Planned { found } => (None, *found as i64, 0, None, None, "null".into(), None, None),
        };
        let status = result.status();
        let update = sqlx::query(
            "UPDATE tasks SET status = $5, outcome = $6, found = $7, changed = $8, reason = $9, \
             error = $10, evidence = $11, spool = $12, next_retry_at = $13, lease_owner = NULL, \
             lease_until = NULL, updated_at = $14 \
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
        .bind(&now);
        self.transition(
            update,
            Event {
                request: Some(id),
                processor: Some(processor),
                name: &format!("task.{status}"),
                detail: json!({"attempt": claim.attempt, "outcome": outcome, "found": found,
                       "changed": changed, "reason": reason, "error": error,
                       "next_retry_at": next_retry}),
                dedup: Some(format!("finished:{id}:{processor}:{}", claim.attempt)),
            },
        )
        .await
    }

    /// Settles a task that never ran (e.g. the connector cannot serve the right).
    pub async fn settle_unstarted(&self, id: &str, processor: Processor, result: &TaskResult) -> Result<bool> {
        let (reason, error) = match result {
            TaskResult::NotApplicable { reason } => (Some(reason.clone()), None),
            TaskResult::Failed { error } => (None, Some(error.clone())),
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
                detail: json!({"reason": reason, "error": error}),
                dedup: None,
            },
        )
        .await
    }
}
