//! What the scheduled sweeps ask: work to re-queue, deadlines to warn about, ticks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};

use super::rows::{REQUEST_COLUMNS, parse, request_from_row, ts};
use super::{Ledger, Result};
use crate::model::Request;

/// Work the recovery sweep should put back on the queue.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recoverable {
    pub fan_outs: Vec<String>,
    pub tasks: Vec<(String, Processor)>,
    pub finalizes: Vec<String>,
}

impl Ledger {
    /// What the recovery sweep must re-enqueue at `now`: requests never fanned out, tasks
    /// due (pending and idle for `idle`, retrying with backoff elapsed, running with an
    /// expired lease), and in-progress requests whose tasks have all ended.
    pub async fn recoverable(&self, now: DateTime<Utc>, idle: Duration) -> Result<Recoverable> {
        let idle_since = ts(now - chrono::Duration::from_std(idle).unwrap_or_default());
        let now = ts(now);
        let fan_outs =
            sqlx::query("SELECT id FROM requests WHERE status = 'received' AND updated_at <= $1 ORDER BY received_at")
                .bind(&idle_since)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?;
        let task_rows = sqlx::query(
            "SELECT t.request_id, t.processor FROM tasks t JOIN requests r ON r.id = t.request_id \
             WHERE r.status = 'in_progress' AND ( \
                (t.status = 'pending' AND t.updated_at <= $1) \
                OR (t.status = 'retrying' AND (t.next_retry_at IS NULL OR t.next_retry_at <= $2)) \
                OR (t.status = 'running' AND t.lease_until < $2)) \
             ORDER BY r.received_at, t.processor",
        )
        .bind(&idle_since)
        .bind(&now)
        .fetch_all(&self.pool)
        .await?;
        let mut tasks = Vec::new();
        for r in &task_rows {
            tasks.push((r.try_get::<String, _>(0)?, parse(&r.try_get::<String, _>(1)?)?));
        }
        let finalizes = sqlx::query(
            "SELECT r.id FROM requests r WHERE r.status = 'in_progress' AND r.updated_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.request_id = r.id \
                AND t.status IN ('pending', 'running', 'retrying')) ORDER BY r.received_at",
        )
        .bind(&idle_since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
        Ok(Recoverable {
            fan_outs,
            tasks,
            finalizes,
        })
    }

    /// Requests not ended whose deadline falls before `horizon` and that were not yet
    /// warned about (the deadline watch warns once per deadline).
    pub async fn deadline_warnings(&self, horizon: DateTime<Utc>) -> Result<Vec<Request>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE due_at < $1 AND warned_at IS NULL \
             AND status IN ('received', 'in_progress', 'awaiting_approval') ORDER BY due_at"
        )))
        .bind(ts(horizon))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from_row).collect()
    }

    pub async fn mark_warned(&self, id: &str, event: &str, detail: Value) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE requests SET warned_at = $2 WHERE id = $1")
            .bind(id)
            .bind(ts(self.now()))
            .execute(&mut *tx)
            .await?;
        self.insert_audit(&mut tx, Some(id), None, event, detail, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims one scheduled tick for this process; false when another process ran it.
    pub async fn claim_tick(&self, name: &str, owner: &str) -> Result<bool> {
        Ok(
            sqlx::query("INSERT INTO ticks (name, owner, at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(owner)
                .bind(ts(self.now()))
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// Forgets tick claims older than `before` (they only guard against a double run).
    pub async fn prune_ticks(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM ticks WHERE at < $1")
            .bind(ts(before))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
