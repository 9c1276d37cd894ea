//! Ending a request: one writer at a time (the finalize lease), the result recorded once.

use std::time::Duration;

use serde_json::json;

use super::rows::ts;
use super::{Event, Ledger, Result};
use crate::model::RequestStatus;

/// What `finalize` wrote: where, and the SHA-256 that proves it (of the bundle's manifest,
/// or of the confirmation's JSON).
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    Bundle { location: String, sha256: String },
    Confirmation { location: String, sha256: String },
}

impl Ledger {
    /// Ends an in-progress request whose tasks are all terminal, once; records where its
    /// bundle or confirmation is and its hash, which the audit chain then covers. Returns
    /// false when the request was already ended or `owner` does not hold the finalize lease.
    /// With `deliver`, a completed request is queued for its e-mail to the subject.
    pub async fn complete_request(
        &self,
        id: &str,
        status: RequestStatus,
        written: &Written,
        signed: bool,
        owner: &str,
        deliver: bool,
    ) -> Result<bool> {
        let now = ts(self.now());
        let (bundle, bundle_sha256, confirmation, confirmation_sha256) = match written {
            Written::Bundle { location, sha256 } => (Some(location), Some(sha256), None, None),
            Written::Confirmation { location, sha256 } => (None, None, Some(location), Some(sha256)),
        };
        let update = sqlx::query(
            "UPDATE requests SET status = $2, bundle = $3, confirmation = $4, finished_at = $5, \
             updated_at = $5, bundle_sha256 = $6, confirmation_sha256 = $7, finalize_error = NULL, \
             finalize_owner = NULL, finalize_until = NULL \
             WHERE id = $1 AND status = 'in_progress' AND finalize_owner = $8",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(bundle)
        .bind(confirmation)
        .bind(&now)
        .bind(bundle_sha256)
        .bind(confirmation_sha256)
        .bind(owner);
        let event = Event {
            request: Some(id),
            processor: None,
            name: &format!("request.{status}"),
            detail: json!({"bundle": bundle, "manifest_sha256": bundle_sha256, "confirmation": confirmation,
                   "confirmation_sha256": confirmation_sha256, "signed": signed}),
            dedup: Some(format!("finished:{id}")),
        };
        if !deliver || status != RequestStatus::Completed {
            return self.transition(update, event).await;
        }
        // The e-mail to the subject is queued with the result, so a crash between the two
        // cannot lose it (the worker's delivery loop sends it).
        let mut tx = self.pool.begin().await?;
        let moved = update.execute(&mut *tx).await?.rows_affected() == 1;
        if moved {
            self.insert_audit(
                &mut tx,
                event.request,
                None,
                event.name,
                event.detail,
                event.dedup.as_deref(),
            )
            .await?;
            self.queue_delivery(&mut tx, id, &now).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Takes the right to write a request's bundle or confirmation, for `lease`; false when
    /// the request has ended or a live worker holds it.
    pub async fn claim_finalize(&self, id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let now = self.now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        Ok(sqlx::query(
            "UPDATE requests SET finalize_owner = $2, finalize_until = $3 WHERE id = $1 AND status = 'in_progress' \
             AND (finalize_until IS NULL OR finalize_until < $4 OR finalize_owner = $2)",
        )
        .bind(id)
        .bind(owner)
        .bind(ts(until))
        .bind(ts(now))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Extends this worker's finalize lease; false when it lost it.
    pub async fn renew_finalize(&self, id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let until = self.now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        Ok(sqlx::query(
            "UPDATE requests SET finalize_until = $3 WHERE id = $1 AND status = 'in_progress' AND finalize_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(ts(until))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Records why writing the bundle or confirmation failed; an audit event only when the
    /// reason changes, so a failure retried every sweep does not flood the log. `owner`, the
    /// attempt that failed, gives its lease up so the next sweep tries at once; a lease
    /// another attempt took meanwhile is left alone.
    pub async fn note_finalize_failure(&self, id: &str, error: &str, owner: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE requests SET finalize_error = $2, updated_at = $3 WHERE id = $1 AND status = 'in_progress' \
             AND (finalize_error IS NULL OR finalize_error <> $2)",
        )
        .bind(id)
        .bind(error)
        .bind(ts(self.now()))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // Let the next sweep try at once rather than after the lease.
        if let Some(owner) = owner {
            sqlx::query(
                "UPDATE requests SET finalize_owner = NULL, finalize_until = NULL WHERE id = $1 AND finalize_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        if changed {
            self.insert_audit(
                &mut tx,
                Some(id),
                None,
                "finalize.failed",
                json!({"code": "finalize_failed", "note": error}),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
