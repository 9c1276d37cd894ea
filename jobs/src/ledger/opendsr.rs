//! Requests that arrived in OpenDSR's format (`dsr serve`'s OpenDSR routes): the controller's
//! `subject_request_id` beside dsr's own id, and the outbox of status callbacks, one per status
//! change per callback URL, sent by the worker until the URL takes it or dsr gives up.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::Row;

use super::rows::{json_text, parse, parse_opt_ts, parse_ts, ts};
use super::{Ledger, LedgerError, Result};
use crate::model::RequestStatus;

/// What the OpenDSR create route stores beside a new request (in the same transaction).
#[derive(Debug, Clone)]
pub struct OpenDsrOrigin {
    pub subject_request_id: String,
    pub token_id: String,
    pub controller_id: String,
    pub request_type: String,
    pub regulation: String,
    pub callback_urls: Vec<String>,
    pub body_sha256: String,
    /// The status the controller knows from the creation answer.
    pub status: String,
}

/// A request that came through OpenDSR, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDsrRequest {
    pub subject_request_id: String,
    pub request_id: String,
    pub token_id: String,
    pub controller_id: String,
    pub request_type: String,
    pub regulation: String,
    pub callback_urls: Vec<String>,
    pub received_at: DateTime<Utc>,
    /// The OpenDSR status its callback URLs were last told of.
    pub status_notified: String,
}

/// One callback to send (or sent, or given up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDsrCallback {
    pub subject_request_id: String,
    pub url: String,
    pub request_status: String,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub given_up_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

const REQUEST_COLUMNS: &str = "subject_request_id, request_id, token_id, controller_id, request_type, regulation, \
     callback_urls, received_at, status_notified";
const CALLBACK_COLUMNS: &str =
    "subject_request_id, url, request_status, attempts, next_attempt_at, sent_at, given_up_at, last_error";

fn request_row(row: &sqlx::any::AnyRow) -> Result<OpenDsrRequest> {
    let urls: String = row.try_get("callback_urls")?;
    Ok(OpenDsrRequest {
        subject_request_id: row.try_get("subject_request_id")?,
        request_id: row.try_get("request_id")?,
        token_id: row.try_get("token_id")?,
        controller_id: row.try_get("controller_id")?,
        request_type: row.try_get("request_type")?,
        regulation: row.try_get("regulation")?,
        callback_urls: serde_json::from_str(&urls)
            .map_err(|_| LedgerError::Corrupt(format!("opendsr callback_urls `{urls}`")))?,
        received_at: parse_ts(&row.try_get::<String, _>("received_at")?)?,
        status_notified: row.try_get("status_notified")?,
    })
}

fn callback_row(row: &sqlx::any::AnyRow) -> Result<OpenDsrCallback> {
    Ok(OpenDsrCallback {
        subject_request_id: row.try_get("subject_request_id")?,
        url: row.try_get("url")?,
        request_status: row.try_get("request_status")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: parse_ts(&row.try_get::<String, _>("next_attempt_at")?)?,
        sent_at: parse_opt_ts(row.try_get("sent_at")?)?,
        given_up_at: parse_opt_ts(row.try_get("given_up_at")?)?,
        last_error: row.try_get("last_error")?,
    })
}

impl Ledger {
    /// Claims `origin.subject_request_id` for request `id` inside the transaction that stores
    /// the request. When the same token sent the same body before, nothing is claimed and the
    /// first request's id is returned (a retried POST); another body or another token is
    /// refused, naming the id.
    pub(super) async fn claim_opendsr(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: &str,
        origin: &OpenDsrOrigin,
    ) -> Result<Option<String>> {
        let claimed = sqlx::query(
            "INSERT INTO opendsr_requests (subject_request_id, request_id, token_id, controller_id, request_type, \
             regulation, callback_urls, body_sha256, received_at, status_notified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (subject_request_id) DO NOTHING",
        )
        .bind(&origin.subject_request_id)
        .bind(id)
        .bind(&origin.token_id)
        .bind(&origin.controller_id)
        .bind(&origin.request_type)
        .bind(&origin.regulation)
        .bind(json_text(&origin.callback_urls))
        .bind(&origin.body_sha256)
        .bind(ts(self.now()))
        .bind(&origin.status)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if claimed {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT request_id, token_id, body_sha256 FROM opendsr_requests WHERE subject_request_id = $1")
                .bind(&origin.subject_request_id)
                .fetch_one(&mut *conn)
                .await?;
        let (request_id, token_id, body): (String, String, String) = (
            row.try_get("request_id")?,
            row.try_get("token_id")?,
            row.try_get("body_sha256")?,
        );
        if token_id != origin.token_id || body != origin.body_sha256 {
            return Err(LedgerError::Refused(format!(
                "subject_request_id {} was used before for another request: make a new UUID v4 for a new request",
                origin.subject_request_id
            )));
        }
        Ok(Some(request_id))
    }

    /// The OpenDSR request with the controller's id `subject_request_id`.
    pub async fn opendsr_request(&self, subject_request_id: &str) -> Result<Option<OpenDsrRequest>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM opendsr_requests WHERE subject_request_id = $1"
        )))
        .bind(subject_request_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(request_row).transpose()
    }

    /// OpenDSR requests whose callback URLs were not yet told of a final status, each with
    /// its request's status now.
    pub async fn opendsr_unsettled(&self) -> Result<Vec<(OpenDsrRequest, RequestStatus)>> {
        let columns: Vec<String> = REQUEST_COLUMNS.split(", ").map(|c| format!("o.{c}")).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, r.status AS request_status FROM opendsr_requests o JOIN requests r ON r.id = o.request_id \
             WHERE o.status_notified NOT IN ('completed', 'cancelled') AND o.callback_urls <> '[]' \
             ORDER BY o.received_at",
            columns.join(", ")
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((request_row(row)?, parse(&row.try_get::<String, _>("request_status")?)?)))
            .collect()
    }

    /// Records that `request` moved from the status its URLs were told of to `status`, and
    /// queues one callback per URL, due now. Returns false (and changes nothing) when another
    /// process recorded a change first.
    pub async fn opendsr_status_changed(&self, request: &OpenDsrRequest, status: &str) -> Result<bool> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE opendsr_requests SET status_notified = $3 WHERE subject_request_id = $1 AND status_notified = $2",
        )
        .bind(&request.subject_request_id)
        .bind(&request.status_notified)
        .bind(status)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            return Ok(false);
        }
        // A status not yet delivered is superseded: a late retry must not follow the news.
        sqlx::query(
            "UPDATE opendsr_callbacks SET given_up_at = $2, last_error = 'superseded by a later status' \
             WHERE subject_request_id = $1 AND sent_at IS NULL AND given_up_at IS NULL",
        )
        .bind(&request.subject_request_id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        for url in &request.callback_urls {
            sqlx::query(
                "INSERT INTO opendsr_callbacks (subject_request_id, url, request_status, created_at, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&request.subject_request_id)
            .bind(url)
            .bind(status)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        self.insert_audit(
            &mut tx,
            Some(&request.request_id),
            None,
            "opendsr.status",
            json!({"subject_request_id": request.subject_request_id, "status": status,
                   "callbacks": request.callback_urls.len()}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Callbacks due at `now`, oldest first, at most `limit`.
    pub async fn opendsr_due_callbacks(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<OpenDsrCallback>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CALLBACK_COLUMNS} FROM opendsr_callbacks WHERE sent_at IS NULL AND given_up_at IS NULL \
             AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2"
        )))
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(callback_row).collect()
    }

    /// Takes `callback` for one attempt: its next attempt moves to `lease_until`, so another
    /// process finds it not due meanwhile (and a sender that dies mid-call leaves it to be
    /// tried again then). False when another process took it first.
    pub async fn opendsr_take_callback(&self, callback: &OpenDsrCallback, lease_until: DateTime<Utc>) -> Result<bool> {
        let taken = sqlx::query(
            "UPDATE opendsr_callbacks SET next_attempt_at = $4, attempts = attempts + 1 \
             WHERE subject_request_id = $1 AND url = $2 AND request_status = $3 AND next_attempt_at = $5 \
             AND sent_at IS NULL AND given_up_at IS NULL",
        )
        .bind(&callback.subject_request_id)
        .bind(&callback.url)
        .bind(&callback.request_status)
        .bind(ts(lease_until))
        .bind(ts(callback.next_attempt_at))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Records the outcome of an attempt taken with `lease_until`: taken (`Ok`), to be tried
    /// again at `retry_at`, or given up (`retry_at` none) with `error`, dsr's own text (never
    /// the receiver's body). False, and nothing recorded, when the lease ran out and another
    /// process took the callback meanwhile.
    pub async fn opendsr_callback_done(
        &self,
        request_id: &str,
        callback: &OpenDsrCallback,
        lease_until: DateTime<Utc>,
        outcome: std::result::Result<(), (String, Option<DateTime<Utc>>)>,
    ) -> Result<bool> {
        let now = self.now();
        let keyed = |sql: &'static str| {
            sqlx::query(sql)
                .bind(callback.subject_request_id.clone())
                .bind(callback.url.clone())
                .bind(callback.request_status.clone())
                .bind(ts(lease_until))
        };
        let (query, error, event) = match &outcome {
            Ok(()) => (
                keyed(
                    "UPDATE opendsr_callbacks SET sent_at = $5, last_error = NULL \
                       WHERE subject_request_id = $1 AND url = $2 AND request_status = $3 AND next_attempt_at = $4",
                )
                .bind(ts(now)),
                None,
                Some("opendsr.callback_sent"),
            ),
            Err((error, Some(at))) => (
                keyed(
                    "UPDATE opendsr_callbacks SET last_error = $5, next_attempt_at = $6 \
                       WHERE subject_request_id = $1 AND url = $2 AND request_status = $3 AND next_attempt_at = $4",
                )
                .bind(error.clone())
                .bind(ts(*at)),
                Some(error.as_str()),
                None,
            ),
            Err((error, None)) => (
                keyed(
                    "UPDATE opendsr_callbacks SET last_error = $5, given_up_at = $6 \
                       WHERE subject_request_id = $1 AND url = $2 AND request_status = $3 AND next_attempt_at = $4",
                )
                .bind(error.clone())
                .bind(ts(now)),
                Some(error.as_str()),
                Some("opendsr.callback_given_up"),
            ),
        };
        let mut tx = self.pool.begin().await?;
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(event) = event {
            let mut detail = json!({"subject_request_id": callback.subject_request_id, "url": callback.url,
                                    "status": callback.request_status, "attempts": callback.attempts + 1});
            if let Some(error) = error {
                detail["error"] = json!(error);
            }
            self.insert_audit(&mut tx, Some(request_id), None, event, detail, None)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Every callback of `subject_request_id`, oldest first (`dsr status`, tests).
    pub async fn opendsr_callbacks(&self, subject_request_id: &str) -> Result<Vec<OpenDsrCallback>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CALLBACK_COLUMNS} FROM opendsr_callbacks WHERE subject_request_id = $1 ORDER BY created_at, url"
        )))
        .bind(subject_request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(callback_row).collect()
    }
}

/// dsr as an OpenDSR controller: what the callbacks of processors touch.
impl Ledger {
    /// The requests with a task at `processor` that a callback may concern (waiting, running,
    /// planned, or failed: evidence is kept even after a task gave up), each with the number
    /// of times an operator sent the task back.
    pub async fn open_tasks_at(&self, processor: dsr_connector::Processor) -> Result<Vec<(String, u32)>> {
        let rows = sqlx::query(
            "SELECT request_id, retries FROM tasks WHERE processor = $1 \
             AND status IN ('pending', 'running', 'retrying', 'planned', 'failed') ORDER BY request_id",
        )
        .bind(processor.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let retries: i64 = row.try_get("retries")?;
                Ok((row.try_get("request_id")?, u32::try_from(retries).unwrap_or(0)))
            })
            .collect()
    }

    /// How many times an operator sent the task back (`dsr retry`).
    pub async fn task_retries(&self, request_id: &str, processor: dsr_connector::Processor) -> Result<u32> {
        let row = sqlx::query("SELECT retries FROM tasks WHERE request_id = $1 AND processor = $2")
            .bind(request_id)
            .bind(processor.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let retries: i64 = match row {
            Some(row) => row.try_get("retries")?,
            None => 0,
        };
        Ok(u32::try_from(retries).unwrap_or(0))
    }

    /// Records a processor's verified status callback as evidence (once per body: a replay
    /// adds nothing and wakes nothing), and with `wake` makes a waiting task due now; true
    /// when it was waiting.
    pub async fn processor_callback(
        &self,
        request_id: &str,
        processor: dsr_connector::Processor,
        detail: serde_json::Value,
        body_sha256: &str,
        wake: bool,
    ) -> Result<bool> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        let first = self
            .insert_audit(
                &mut tx,
                Some(request_id),
                Some(processor),
                "opendsr.processor_callback",
                detail,
                Some(&format!("opendsr-callback:{body_sha256}")),
            )
            .await?;
        let woken = first
            && wake
            && sqlx::query(
                "UPDATE tasks SET next_retry_at = $3 WHERE request_id = $1 AND processor = $2 AND status = 'retrying'",
            )
            .bind(request_id)
            .bind(processor.as_str())
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
        tx.commit().await?;
        Ok(woken)
    }
}
