//! The ledger's counts for `/metrics`: requests by status and kind, tasks by processor, status
//! and outcome, requests past or near their deadline, and the last scheduled sweep claimed.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};

use super::rows::{parse_opt_ts, parse_ts, ts};
use super::{Ledger, Result};
use crate::model::RequestStatus;

/// A processor's most recently finished task attempt (the dashboard's "last calls").
#[derive(Debug, Clone, PartialEq)]
pub struct LastCall {
    pub processor: String,
    pub request_id: String,
    /// The task's status after it: succeeded, failed, retrying, planned, not_applicable.
    pub status: String,
    /// The error it ended with, when it failed or will be retried.
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

impl LastCall {
    pub fn failed(&self) -> bool {
        matches!(self.status.as_str(), "failed" | "retrying")
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// (status, kind) → requests.
    pub requests: Vec<(String, String, i64)>,
    /// (processor, status, outcome or "") → tasks.
    pub tasks: Vec<(String, String, String, i64)>,
    /// Not ended and past their deadline.
    pub overdue: i64,
    /// Not ended, deadline within the horizon asked for, not yet past.
    pub due_soon: i64,
    pub needing_attention: i64,
    /// When the last scheduled sweep was claimed by a worker.
    pub last_sweep_at: Option<DateTime<Utc>>,
}

impl Ledger {
    /// The counts at `now`; "due soon" means within `horizon` of it.
    pub async fn counts(&self, now: DateTime<Utc>, horizon: chrono::Duration) -> Result<Counts> {
        let mut counts = Counts::default();
        for row in
            sqlx::query("SELECT status, kind, COUNT(*) AS n FROM requests GROUP BY status, kind ORDER BY status, kind")
                .fetch_all(&self.pool)
                .await?
        {
            counts
                .requests
                .push((row.try_get("status")?, row.try_get("kind")?, row.try_get("n")?));
        }
        for row in sqlx::query(
            "SELECT processor, status, COALESCE(outcome, '') AS outcome, COUNT(*) AS n FROM tasks \
             GROUP BY processor, status, COALESCE(outcome, '') ORDER BY processor, status, outcome",
        )
        .fetch_all(&self.pool)
        .await?
        {
            counts.tasks.push((
                row.try_get("processor")?,
                row.try_get("status")?,
                row.try_get("outcome")?,
                row.try_get("n")?,
            ));
        }
        // Our own status names, quoted: nothing from outside reaches this statement.
        let open: Vec<String> = RequestStatus::ALL
            .iter()
            .filter(|s| !s.is_terminal())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT COALESCE(SUM(CASE WHEN due_at < $1 THEN 1 ELSE 0 END), 0) AS overdue, \
             COALESCE(SUM(CASE WHEN due_at >= $1 AND due_at < $2 THEN 1 ELSE 0 END), 0) AS due_soon, \
             COALESCE(SUM(CASE WHEN attention_since IS NOT NULL THEN 1 ELSE 0 END), 0) AS attention \
             FROM requests WHERE status IN ({})",
            open.join(", ")
        )))
        .bind(ts(now))
        .bind(ts(now + horizon))
        .fetch_one(&self.pool)
        .await?;
        counts.overdue = row.try_get("overdue")?;
        counts.due_soon = row.try_get("due_soon")?;
        counts.needing_attention = row.try_get("attention")?;
        let last: Option<String> = sqlx::query("SELECT MAX(at) AS at FROM ticks")
            .fetch_one(&self.pool)
            .await?
            .try_get("at")?;
        counts.last_sweep_at = parse_opt_ts(last)?;
        Ok(counts)
    }

    /// Each processor's most recently finished task attempt (tasks in flight or never tried
    /// left out), by processor.
    pub async fn last_calls(&self) -> Result<Vec<LastCall>> {
        let rows = sqlx::query(
            "SELECT processor, request_id, status, error, updated_at FROM ( \
               SELECT processor, request_id, status, error, updated_at, ROW_NUMBER() OVER \
                 (PARTITION BY processor ORDER BY updated_at DESC, request_id) AS n \
               FROM tasks WHERE attempts > 0 AND status NOT IN ('pending', 'running', 'cancelled') \
             ) latest WHERE n = 1 ORDER BY processor",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LastCall {
                    processor: r.try_get("processor")?,
                    request_id: r.try_get("request_id")?,
                    status: r.try_get("status")?,
                    error: r.try_get("error")?,
                    at: parse_ts(&r.try_get::<String, _>("updated_at")?)?,
                })
            })
            .collect()
    }
}
