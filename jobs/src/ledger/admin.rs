//! What an operator does by hand: cancel, retry, extend.

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use serde_json::json;

use super::rows::ts;
use super::{Ledger, LedgerError, Result};
use crate::model::{RequestStatus, TaskStatus};

impl Ledger {
    /// Cancels a request and every task that has not ended; `by` (an operator, an API
    /// token) is recorded in the audit event.
    pub async fn cancel(&self, id: &str, by: &str) -> Result<()> {
        let request = self.get_request(id).await?;
        if request.status.is_terminal() {
            return Err(LedgerError::Refused(format!(
                "request {id} is already {}; nothing to cancel",
                request.status
            )));
        }
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', lease_owner = NULL, lease_until = NULL, \
             updated_at = $2 WHERE request_id = $1 AND status IN ('pending', 'running', 'retrying', 'planned')",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE requests SET status = 'cancelled', finished_at = $2, updated_at = $2 \
             WHERE id = $1 AND status IN ('received', 'in_progress', 'awaiting_approval')",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        self.insert_audit(&mut tx, Some(id), None, "request.cancelled", json!({"by": by}), None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records what a cancellation withdrew at `processor` (`Ok`), or why it could not.
    pub async fn record_withdrawal(
        &self,
        id: &str,
        processor: Processor,
        outcome: std::result::Result<&str, &str>,
    ) -> Result<()> {
        let (event, detail) = match outcome {
            Ok(done) => ("task.withdrawn", json!({"done": done})),
            Err(why) => ("task.withdraw_failed", json!({"error": why})),
        };
        let mut tx = self.pool.begin().await?;
        self.insert_audit(&mut tx, Some(id), Some(processor), event, detail, None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sends failed tasks (all, or one processor's) back to pending, and a finished request
    /// back to in_progress so it is finalized again. Returns the tasks reset.
    pub async fn retry(&self, id: &str, processor: Option<Processor>, by: &str) -> Result<Vec<Processor>> {
        let request = self.get_request(id).await?;
        if request.status == RequestStatus::Cancelled {
            return Err(LedgerError::Refused(format!(
                "request {id} was cancelled; enqueue a new one"
            )));
        }
        if let Some(at) = request.pseudonymised_at {
            return Err(LedgerError::Refused(format!(
                "request {id} no longer names its subject (pseudonymised at {}); enqueue a new request",
                ts(at)
            )));
        }
        // A request awaiting approval is planned again (its plans may be stale): the
        // approval then needs the new plan's hash.
        let awaiting = request.status == RequestStatus::AwaitingApproval;
        let failed: Vec<Processor> = self
            .tasks(id)
            .await?
            .into_iter()
            .filter(|t| t.status == TaskStatus::Failed || (awaiting && t.status == TaskStatus::Planned))
            .map(|t| t.processor)
            .filter(|p| processor.is_none_or(|want| want == *p))
            .collect();
        if failed.is_empty() {
            let which = processor.map(|p| format!(" at {p}")).unwrap_or_default();
            return Err(LedgerError::Refused(format!(
                "request {id} has no failed task{which} to retry"
            )));
        }
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        for p in &failed {
            let reset = sqlx::query(
                "UPDATE tasks SET status = 'pending', attempt_base = attempts, retries = retries + 1, error = NULL, \
                 next_retry_at = NULL, \
                 updated_at = $3 WHERE request_id = $1 AND processor = $2 AND status IN ('failed', 'planned')",
            )
            .bind(id)
            .bind(p.as_str())
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !reset {
                continue; // moved on meanwhile (an approval): its plan stays current
            }
            // Retried work is planned again: what was done stays recorded in the old plan.
            sqlx::query("UPDATE plans SET is_current = 0 WHERE request_id = $1 AND processor = $2")
                .bind(id)
                .bind(p.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE requests SET status = 'in_progress', finished_at = NULL, updated_at = $2 \
             WHERE id = $1 AND status IN ('partially_completed', 'failed', 'awaiting_approval')",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let names: Vec<_> = failed.iter().map(|p| p.as_str()).collect();
        self.insert_audit(
            &mut tx,
            Some(id),
            None,
            "request.retried",
            json!({"processors": names, "by": by}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(failed)
    }

    /// Extends the deadline (Art. 12(3)): at most two further months in all, with a reason,
    /// and only before the deadline has passed.
    pub async fn extend(
        &self,
        id: &str,
        months: u32,
        reason: &str,
        zone: chrono_tz::Tz,
        now: DateTime<Utc>,
        by: &str,
    ) -> Result<DateTime<Utc>> {
        let request = self.get_request(id).await?;
        if request.status.is_terminal() {
            return Err(LedgerError::Refused(format!(
                "request {id} is already {}",
                request.status
            )));
        }
        if now > request.due_at {
            return Err(LedgerError::Refused(format!(
                "the deadline of request {id} passed at {}; Art. 12(3) allows an extension only before it",
                ts(request.due_at)
            )));
        }
        let total = request.extended_months + months;
        if months == 0 || total > 2 {
            return Err(LedgerError::Refused(format!(
                "a deadline may be extended by at most two further months in all (already {})",
                request.extended_months
            )));
        }
        if reason.trim().is_empty() {
            return Err(LedgerError::Refused("an extension needs a reason".into()));
        }
        let due = crate::deadline::due_at(request.received_at, 1 + total, zone);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE requests SET due_at = $2, extended_months = $3, extension_reason = $4, \
             warned_at = NULL, updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(ts(due))
        .bind(total as i64)
        .bind(reason)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        self.insert_audit(
            &mut tx,
            Some(id),
            None,
            "request.extended",
            json!({"months": months, "note": reason, "due_at": ts(due), "by": by}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(due)
    }
}
