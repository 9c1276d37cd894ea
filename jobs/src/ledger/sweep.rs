//! What the scheduled sweeps ask: work to re-queue, deadlines to warn about, requests that
//! need an operator before their deadline, ticks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Row};

use super::rows::{REQUEST_COLUMNS, parse, parse_ts, request_from_row, ts};
use super::{Event, Ledger, Result};
use crate::model::{Request, RequestStatus};

/// The statuses of a request that has not ended, as an SQL list.
const OPEN: &str = "('received', 'in_progress', 'awaiting_approval')";

/// A task of request `r` still failing or retrying: retrying, failed while the request is
/// open, or running again after an attempt of this retry budget failed.
const FAILING_TASK: &str = "EXISTS (SELECT 1 FROM tasks t WHERE t.request_id = r.id AND (t.status IN ('retrying', 'failed') \
     OR (t.status = 'running' AND t.attempts - t.attempt_base > 1)))";

/// Why a request no longer needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionCleared {
    /// It ended (completed, failed, cancelled…): nothing is retried any more.
    Ended,
    /// No task of it is failing or retrying any more.
    Recovered,
    /// Its deadline was extended past the warning window.
    Extended,
}

impl AttentionCleared {
    pub fn as_str(self) -> &'static str {
        match self {
            AttentionCleared::Ended => "ended",
            AttentionCleared::Recovered => "recovered",
            AttentionCleared::Extended => "deadline_extended",
        }
    }
}

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

    /// Open requests due before `horizon`, not yet flagged, with a task still failing or
    /// retrying: they need an operator before the legal deadline, not more quiet retries.
    pub async fn attention_due(&self, horizon: DateTime<Utc>) -> Result<Vec<Request>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM requests r WHERE r.attention_since IS NULL AND r.due_at < $1 \
             AND r.status IN {OPEN} AND {FAILING_TASK} ORDER BY r.due_at, r.id"
        )))
        .bind(ts(horizon))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from_row).collect()
    }

    /// Flags request `id` as needing attention (now, by this ledger's clock), with a
    /// `request.needs_attention` event holding `detail`. False when it was flagged already.
    pub async fn mark_attention(&self, id: &str, detail: Value) -> Result<bool> {
        let update = sqlx::query("UPDATE requests SET attention_since = $2 WHERE id = $1 AND attention_since IS NULL")
            .bind(id)
            .bind(ts(self.now()));
        self.transition(update, Event::new(id, "request.needs_attention", detail))
            .await
    }

    /// Flagged requests that no longer need attention at `horizon`, and why: the request
    /// ended, its tasks recovered, or its deadline moved past the warning window.
    pub async fn attention_resolved(&self, horizon: DateTime<Utc>) -> Result<Vec<(String, AttentionCleared)>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT r.id, r.status, r.due_at, CAST(CASE WHEN {FAILING_TASK} THEN 1 ELSE 0 END AS BIGINT) AS failing \
             FROM requests r WHERE r.attention_since IS NOT NULL ORDER BY r.id"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut resolved = Vec::new();
        for r in &rows {
            let status: RequestStatus = parse(&r.try_get::<String, _>("status")?)?;
            let due_at = parse_ts(&r.try_get::<String, _>("due_at")?)?;
            let why = if status.is_terminal() {
                AttentionCleared::Ended
            } else if r.try_get::<i64, _>("failing")? == 0 {
                AttentionCleared::Recovered
            } else if due_at >= horizon {
                AttentionCleared::Extended
            } else {
                continue;
            };
            resolved.push((r.try_get("id")?, why));
        }
        Ok(resolved)
    }

    /// Clears request `id`'s flag, with a `request.attention_cleared` event saying why.
    pub async fn clear_attention(&self, id: &str, why: AttentionCleared) -> Result<bool> {
        let update =
            sqlx::query("UPDATE requests SET attention_since = NULL WHERE id = $1 AND attention_since IS NOT NULL")
                .bind(id);
        self.transition(
            update,
            Event::new(id, "request.attention_cleared", json!({"reason": why.as_str()})),
        )
        .await
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
