//! Requests: created, read, listed, started.

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use serde_json::json;
use sqlx::{AssertSqlSafe, Row};

use super::rows::{
    REQUEST_COLUMNS, TASK_COLUMNS, json_text, parse_opt_ts, parse_ts, request_from_row, task_from_row, ts,
};
use super::{Event, Ledger, LedgerError, Result};
use crate::model::{NewRequest, Request, RequestStatus, Task, TaskStatus};

/// Filters for `dsr list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<RequestStatus>,
    /// Not terminal and past its deadline at this instant.
    pub overdue_at: Option<DateTime<Utc>>,
}

/// Who made a request (an API token's name, for its audit event), and the key that makes a
/// retried API call return the request the first one made.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub actor: Option<String>,
    pub idempotency: Option<Idempotency>,
    /// Came through OpenDSR: the controller's id for it, stored in the same transaction.
    pub opendsr: Option<super::opendsr::OpenDsrOrigin>,
    /// Came from the subject's form: the submission it verifies, in the same transaction.
    pub submission: Option<super::subject::SubmissionOrigin>,
}

/// The dashboard's request list: filters, newest first, a page at a time.
#[derive(Debug, Clone, Default)]
pub struct RequestQuery {
    pub status: Option<RequestStatus>,
    pub kind: Option<crate::model::RequestKind>,
    pub processor: Option<Processor>,
    /// Not ended and past its deadline at this instant.
    pub overdue_at: Option<DateTime<Utc>>,
    /// Flagged as needing attention and not ended.
    pub attention: bool,
    pub received_from: Option<DateTime<Utc>>,
    pub received_before: Option<DateTime<Utc>>,
    /// The page after this request (its received_at and id): the cursor.
    pub after: Option<(DateTime<Utc>, String)>,
    pub limit: u32,
}

/// An `Idempotency-Key`, per token, with the hash of the body it first came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub token_id: String,
    pub key: String,
    pub body_sha256: String,
}

impl Ledger {
    /// Stores a new request with one pending task per processor, and its audit event.
    pub async fn create_request(&self, id: &str, new: &NewRequest, due_at: DateTime<Utc>) -> Result<()> {
        self.create_request_from(id, new, due_at, &Origin::default())
            .await
            .map(|_| ())
    }

    /// As [`Ledger::create_request`], from `origin`: when its idempotency key was used
    /// before by the same token, nothing is stored and the first request's id is returned
    /// (refused if the body differed).
    pub async fn create_request_from(
        &self,
        id: &str,
        new: &NewRequest,
        due_at: DateTime<Utc>,
        origin: &Origin,
    ) -> Result<Option<String>> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        if let Some(key) = &origin.idempotency {
            // The write first: it takes SQLite's write lock under the busy timeout, and a
            // concurrent POST with the same key waits for this one and then finds its row.
            let claimed = sqlx::query(
                "INSERT INTO api_idempotency (token_id, idempotency_key, request_id, body_sha256, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_id, idempotency_key) DO NOTHING",
            )
            .bind(&key.token_id)
            .bind(&key.key)
            .bind(id)
            .bind(&key.body_sha256)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !claimed {
                let row = sqlx::query(
                    "SELECT request_id, body_sha256 FROM api_idempotency WHERE token_id = $1 AND idempotency_key = $2",
                )
                .bind(&key.token_id)
                .bind(&key.key)
                .fetch_one(&mut *tx)
                .await?;
                let (request_id, body): (String, String) = (row.try_get("request_id")?, row.try_get("body_sha256")?);
                if body != key.body_sha256 {
                    return Err(LedgerError::Refused(format!(
                        "Idempotency-Key `{}` was used for another request body; use a new key for a new request",
                        key.key
                    )));
                }
                return Ok(Some(request_id));
            }
        }
        if let Some(opendsr) = &origin.opendsr
            && let Some(first) = self.claim_opendsr(&mut tx, id, opendsr).await?
        {
            return Ok(Some(first));
        }
        if let Some(submission) = &origin.submission
            && let Some(first) = self.claim_submission(&mut tx, id, submission).await?
        {
            return Ok(Some(first));
        }
        sqlx::query(
            "INSERT INTO requests (id, kind, status, identities, changes, lang, dry_run, \
             received_at, due_at, updated_at, verified_by, verified_at, approval_required) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(id)
        .bind(new.kind.as_str())
        .bind(RequestStatus::Received.as_str())
        .bind(json_text(&new.identities))
        .bind(json_text(&new.changes))
        .bind(new.lang.as_str())
        .bind(new.dry_run as i64)
        .bind(ts(new.received_at))
        .bind(ts(due_at))
        .bind(&now)
        .bind(new.verified_by.as_deref())
        .bind(new.verified_at.map(ts))
        .bind(origin.submission.as_ref().is_some_and(|s| s.approval_required) as i64)
        .execute(&mut *tx)
        .await?;
        for p in &new.processors {
            sqlx::query("INSERT INTO tasks (request_id, processor, status, updated_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(p.as_str())
                .bind(TaskStatus::Pending.as_str())
                .bind(&now)
                .execute(&mut *tx)
                .await?;
        }
        let processors: Vec<_> = new.processors.iter().map(|p| p.as_str()).collect();
        let mut detail =
            json!({"kind": new.kind, "processors": processors, "dry_run": new.dry_run, "due_at": ts(due_at)});
        if let Some(actor) = &origin.actor {
            detail["by"] = json!(actor);
        }
        // How identity was checked: the text beside the chain, its hash in it.
        if let Some(verified_by) = &new.verified_by {
            detail[super::notes::NOTE] = json!(format!("identity verified: {verified_by}"));
        }
        if let Some(at) = new.verified_at {
            detail["verified_at"] = json!(ts(at));
        }
        if let Some(submission) = &origin.submission {
            // The form's own audit events (`subject.code_sent`, …) name this submission.
            detail["submission"] = json!(submission.id);
            detail["submitted_at"] = json!(ts(submission.submitted_at));
            if submission.approval_required {
                detail["approval_required"] = json!("unproven identifier");
            }
        }
        self.insert_audit(
            &mut tx,
            Some(id),
            None,
            "request.received",
            detail,
            Some(&format!("received:{id}")),
        )
        .await?;
        tx.commit().await?;
        Ok(None)
    }

    pub async fn request(&self, id: &str) -> Result<Option<Request>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| request_from_row(&r)).transpose()
    }

    pub async fn get_request(&self, id: &str) -> Result<Request> {
        self.request(id)
            .await?
            .ok_or_else(|| LedgerError::NotFound(id.to_string()))
    }

    pub async fn tasks(&self, id: &str) -> Result<Vec<Task>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE request_id = $1 ORDER BY processor"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    pub async fn task(&self, id: &str, processor: Processor) -> Result<Option<Task>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE request_id = $1 AND processor = $2"
        )))
        .bind(id)
        .bind(processor.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Request>> {
        let mut sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE 1 = 1");
        if filter.status.is_some() {
            sql.push_str(" AND status = $1");
        }
        if filter.overdue_at.is_some() {
            let n = if filter.status.is_some() { 2 } else { 1 };
            sql.push_str(&format!(
                " AND due_at < ${n} AND status NOT IN {}",
                RequestStatus::TERMINAL_SQL
            ));
        }
        sql.push_str(" ORDER BY received_at, id");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        if let Some(at) = filter.overdue_at {
            query = query.bind(ts(at));
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(request_from_row).collect()
    }

    /// A page of requests for the dashboard, newest first.
    pub async fn query_requests(&self, q: &RequestQuery) -> Result<Vec<Request>> {
        let mut sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let param = |value: String, binds: &mut Vec<String>| {
            binds.push(value);
            format!("${}", binds.len())
        };
        if let Some(status) = q.status {
            let p = param(status.as_str().into(), &mut binds);
            sql.push_str(&format!(" AND status = {p}"));
        }
        if let Some(kind) = q.kind {
            let p = param(kind.as_str().into(), &mut binds);
            sql.push_str(&format!(" AND kind = {p}"));
        }
        if let Some(processor) = q.processor {
            let p = param(processor.as_str().into(), &mut binds);
            sql.push_str(&format!(
                " AND id IN (SELECT request_id FROM tasks WHERE processor = {p})"
            ));
        }
        if let Some(at) = q.overdue_at {
            let p = param(ts(at), &mut binds);
            sql.push_str(&format!(
                " AND due_at < {p} AND status NOT IN {}",
                RequestStatus::TERMINAL_SQL
            ));
        }
        if q.attention {
            sql.push_str(&format!(
                " AND attention_since IS NOT NULL AND status NOT IN {}",
                RequestStatus::TERMINAL_SQL
            ));
        }
        if let Some(from) = q.received_from {
            let p = param(ts(from), &mut binds);
            sql.push_str(&format!(" AND received_at >= {p}"));
        }
        if let Some(before) = q.received_before {
            let p = param(ts(before), &mut binds);
            sql.push_str(&format!(" AND received_at < {p}"));
        }
        if let Some((at, id)) = &q.after {
            let (a, b) = (param(ts(*at), &mut binds), param(id.clone(), &mut binds));
            sql.push_str(&format!(" AND (received_at < {a} OR (received_at = {a} AND id < {b}))"));
        }
        sql.push_str(&format!(
            " ORDER BY received_at DESC, id DESC LIMIT {}",
            q.limit.clamp(1, 500)
        ));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(request_from_row).collect()
    }

    /// Requests not ended whose deadline is before `at`, soonest first (the dashboard's
    /// deadline list).
    pub async fn open_due_before(&self, at: DateTime<Utc>, limit: u32) -> Result<Vec<Request>> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE due_at < $1 AND status NOT IN {} \
             ORDER BY due_at, id LIMIT $2",
            RequestStatus::TERMINAL_SQL
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(ts(at))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(request_from_row).collect()
    }

    /// Open requests flagged as needing attention (a task still failing or retrying near
    /// the deadline), with when each was flagged, oldest flag first.
    pub async fn needing_attention(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, attention_since FROM requests WHERE attention_since IS NOT NULL \
             AND status NOT IN {} ORDER BY attention_since, id",
            RequestStatus::TERMINAL_SQL
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut flagged = Vec::with_capacity(rows.len());
        for r in &rows {
            flagged.push((r.try_get("id")?, parse_ts(&r.try_get::<String, _>("attention_since")?)?));
        }
        Ok(flagged)
    }

    /// Since when request `id` needs attention, if it is open and flagged.
    pub async fn attention_since(&self, id: &str) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT attention_since FROM requests WHERE id = $1 AND status NOT IN {}",
            RequestStatus::TERMINAL_SQL
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => parse_opt_ts(r.try_get("attention_since")?),
            None => Ok(None),
        }
    }

    /// received → in_progress, once. Returns whether this call made the move.
    pub async fn start_request(&self, id: &str) -> Result<bool> {
        let update = sqlx::query(
            "UPDATE requests SET status = 'in_progress', fanned_out = 1, updated_at = $2 \
             WHERE id = $1 AND status = 'received'",
        )
        .bind(id)
        .bind(ts(self.now()));
        self.transition(update, Event::new(id, "request.in_progress", json!({})))
            .await
    }
}
