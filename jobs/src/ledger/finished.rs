//! What the retention job asks of the ledger: finished requests whose exports are due to
//! expire or whose identities are due to be pseudonymised, and recording that it happened.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Row};

use super::rows::{REQUEST_COLUMNS, request_from_row, ts};
use super::{Event, Ledger, Result};
use crate::model::Request;

/// A task's free-text columns, for pseudonymisation.
#[derive(Debug, Clone)]
pub struct TaskText {
    pub processor: String,
    pub evidence: Value,
    pub reason: Option<String>,
    pub error: Option<String>,
}

impl Ledger {
    /// Requests that ended (completed, failed or cancelled) before `cutoff` and whose
    /// exports, or a cancelled request's leftover spools, were not expired yet.
    pub async fn exports_due(&self, cutoff: DateTime<Utc>) -> Result<Vec<Request>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE finished_at IS NOT NULL AND finished_at < $1 \
             AND exports_expired_at IS NULL ORDER BY finished_at"
        )))
        .bind(ts(cutoff))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from_row).collect()
    }

    /// Records that a request's exports were deleted; once.
    pub async fn mark_exports_expired(&self, id: &str, objects_deleted: u64) -> Result<bool> {
        let update =
            sqlx::query("UPDATE requests SET exports_expired_at = $2 WHERE id = $1 AND exports_expired_at IS NULL")
                .bind(id)
                .bind(ts(self.now()));
        self.transition(
            update,
            Event {
                request: Some(id),
                processor: None,
                name: "exports.expired",
                detail: json!({"objects_deleted": objects_deleted}),
                dedup: Some(format!("expired:{id}")),
            },
        )
        .await
    }

    /// Ids of finished requests, finished before `cutoff`, whose identities are still clear.
    pub async fn pseudonymisation_due(&self, cutoff: DateTime<Utc>) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM requests WHERE finished_at IS NOT NULL AND finished_at < $1 \
             AND pseudonymised_at IS NULL ORDER BY finished_at",
        )
        .bind(ts(cutoff))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The tasks' evidence, reasons and errors, as stored.
    pub async fn task_texts(&self, id: &str) -> Result<Vec<TaskText>> {
        let rows = sqlx::query("SELECT processor, evidence, reason, error FROM tasks WHERE request_id = $1")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TaskText {
                    processor: r.try_get(0)?,
                    evidence: serde_json::from_str(&r.try_get::<String, _>(1)?)
                        .map_err(|e| super::LedgerError::Corrupt(e.to_string()))?,
                    reason: r.try_get(2)?,
                    error: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Replaces a finished request's identities, changes and task texts and removes the words
    /// of its audit notes, in one transaction, and records it in the audit chain (which holds
    /// only the notes' hashes, so it still verifies).
    pub async fn pseudonymise(
        &self,
        id: &str,
        identities: &Value,
        changes: &Value,
        tasks: &[TaskText],
        plans: &[super::PlanText],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            // How identity was checked is free text too ("passport no. …"): its words go.
            "UPDATE requests SET identities = $2, changes = $3, pseudonymised_at = $4, \
             verified_by = CASE WHEN verified_by IS NULL THEN NULL ELSE '[pseudonymised]' END \
             WHERE id = $1 AND pseudonymised_at IS NULL AND finished_at IS NOT NULL",
        )
        .bind(id)
        .bind(identities.to_string())
        .bind(changes.to_string())
        .bind(ts(self.now()))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if updated {
            for task in tasks {
                sqlx::query(
                    "UPDATE tasks SET evidence = $3, reason = $4, error = $5 WHERE request_id = $1 AND processor = $2",
                )
                .bind(id)
                .bind(&task.processor)
                .bind(task.evidence.to_string())
                .bind(task.reason.as_deref())
                .bind(task.error.as_deref())
                .execute(&mut *tx)
                .await?;
            }
            super::plans::rewrite_plans(&mut tx, plans).await?;
            // A link to the subject no longer has an address to send codes to.
            sqlx::query("UPDATE deliveries SET revoked_at = $2 WHERE request_id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(ts(self.now()))
                .execute(&mut *tx)
                .await?;
            let notes = super::notes::scrub(&mut tx, id, self.now()).await?;
            // An API caller's Idempotency-Key is its own text, and may name the subject.
            let keys = sqlx::query("DELETE FROM api_idempotency WHERE request_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            self.insert_audit(
                &mut tx,
                Some(id),
                None,
                "request.pseudonymised",
                json!({"tasks": tasks.len(), "notes_scrubbed": notes, "idempotency_keys_removed": keys}),
                Some(&format!("pseudonymised:{id}")),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(updated)
    }
}
