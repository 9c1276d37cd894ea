//! Reading the audit log and its chain.

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use serde_json::Value;
use sqlx::Row;

use super::rows::parse_ts;
use super::{ChainVerdict, Head, Ledger, LedgerError, Result, chain};

/// One audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub processor: Option<String>,
    pub event: String,
    /// Codes, actors and hashes: what the chain covers. Free text is in `note`.
    pub detail: Value,
    /// The event's free text (kept beside the chain, its hash under `detail.note`), unless
    /// it was scrubbed.
    pub note: Option<String>,
}

impl Ledger {
    pub async fn audit(
        &self,
        request_id: Option<&str>,
        processor: Option<Processor>,
        event: &str,
        detail: Value,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.insert_audit(&mut tx, request_id, processor, event, detail, None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The audit chain's last link.
    pub async fn audit_head(&self) -> Result<Head> {
        chain::head(&self.pool).await
    }

    /// The hash recorded for event `seq`, if that event exists.
    pub async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get(0)?,
            None => None,
        })
    }

    /// Walks the whole audit chain and names the first event altered or removed.
    pub async fn verify_audit_chain(&self) -> Result<ChainVerdict> {
        chain::verify(&self.pool).await
    }

    /// The number of request `request_id`'s latest audit event (0 when it has none): it
    /// changes whenever anything about the request does, so a page polling it knows whether
    /// to look again.
    pub async fn last_event_seq(&self, request_id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM audit_log WHERE request_id = $1")
            .bind(request_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("seq")?)
    }

    pub async fn audit_events(&self, request_id: &str) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT seq, at, request_id, processor, event, detail FROM audit_log \
             WHERE request_id = $1 ORDER BY seq",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        let notes = super::notes::of_request(&self.pool, request_id).await?;
        rows.iter()
            .map(|r| {
                let detail: Value = serde_json::from_str(&r.try_get::<String, _>(5)?)
                    .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
                let note = detail[super::notes::NOTE]
                    .as_str()
                    .and_then(|hash| notes.get(hash).cloned().flatten());
                Ok(AuditEvent {
                    seq: r.try_get(0)?,
                    at: parse_ts(&r.try_get::<String, _>(1)?)?,
                    request_id: r.try_get(2)?,
                    processor: r.try_get(3)?,
                    event: r.try_get(4)?,
                    detail,
                    note,
                })
            })
            .collect()
    }
}
