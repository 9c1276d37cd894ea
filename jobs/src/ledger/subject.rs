//! The subject's side: form submissions waiting for the subject to prove the address is theirs,
//! and the e-mailed links that hand a finished request's bundle or confirmation over. Tokens
//! and codes are stored only as SHA-256 hashes; every code sent, wrong try, lock and download
//! is an audit event.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::Row;

use super::rows::{json_text, parse_opt_ts, parse_ts, ts};
use super::{Ledger, LedgerError, Result};

/// A form submission, as stored.
#[derive(Debug, Clone)]
pub struct Submission {
    pub id: String,
    pub kind: String,
    /// What was typed (`email`, `phone`, `changes`, `lang`); `None` once verified or purged.
    pub typed: Option<Value>,
    pub code_sha256: String,
    pub tries: u32,
    pub submitted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub locked_at: Option<DateTime<Utc>>,
    pub request_id: Option<String>,
}

/// A new submission: the hashes of the link's token and of the code, never the values.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub id: String,
    pub kind: String,
    pub typed: Value,
    pub link_sha256: String,
    pub code_sha256: String,
    pub address_tag: String,
    pub expires_at: DateTime<Utc>,
}

/// Verifies a submission in the transaction that stores its request.
#[derive(Debug, Clone)]
pub struct SubmissionOrigin {
    pub id: String,
    /// When the form was sent (the request's audit event records it beside `verified_at`).
    pub submitted_at: DateTime<Utc>,
    /// The request searches for something not proven (a typed phone number): its plans wait
    /// for an operator, who sees each item before anything changes.
    pub approval_required: bool,
}

/// An e-mailed link.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub request_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub max_downloads: u32,
    pub downloads: u32,
    pub revoked_at: Option<DateTime<Utc>>,
    pub code_sha256: Option<String>,
    pub code_expires_at: Option<DateTime<Utc>>,
    pub code_tries: u32,
    pub codes_sent: u32,
    pub code_sent_at: Option<DateTime<Utc>>,
    pub locked_at: Option<DateTime<Utc>>,
    pub grant_sha256: Option<String>,
    pub grant_expires_at: Option<DateTime<Utc>>,
    /// The grant started its download.
    pub grant_used: bool,
}

/// Why a link does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    Expired,
    UsedUp,
    Replaced,
    Locked,
}

impl LinkRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkRefusal::Expired => "expired",
            LinkRefusal::UsedUp => "used_up",
            LinkRefusal::Replaced => "replaced",
            LinkRefusal::Locked => "locked",
        }
    }
}

impl Delivery {
    /// Whether the link still opens at `now`, and why not.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<LinkRefusal> {
        self.refusal_to(now, false)
    }

    /// As [`Delivery::refusal`]; `resuming` a download already counted, a link whose last
    /// download that was is not used up for it.
    pub fn refusal_to(&self, now: DateTime<Utc>, resuming: bool) -> Option<LinkRefusal> {
        if self.revoked_at.is_some() {
            Some(LinkRefusal::Replaced)
        } else if self.locked_at.is_some() {
            Some(LinkRefusal::Locked)
        } else if self.expires_at <= now {
            Some(LinkRefusal::Expired)
        } else if self.downloads >= self.max_downloads && !resuming {
            Some(LinkRefusal::UsedUp)
        } else {
            None
        }
    }
}

/// A finished request waiting for its e-mail.
#[derive(Debug, Clone)]
pub struct Outboxed {
    pub request_id: String,
    pub attempts: u32,
}

const SUBMISSION_COLUMNS: &str =
    "id, kind, typed, code_sha256, tries, submitted_at, expires_at, verified_at, locked_at, request_id";
const DELIVERY_COLUMNS: &str = "id, request_id, created_at, expires_at, max_downloads, downloads, revoked_at, \
     code_sha256, code_expires_at, code_tries, codes_sent, code_sent_at, locked_at, grant_sha256, grant_expires_at, \
     grant_used";

fn submission_row(row: &sqlx::any::AnyRow) -> Result<Submission> {
    let typed: Option<String> = row.try_get("typed")?;
    Ok(Submission {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        typed: typed
            .map(|t| serde_json::from_str(&t).map_err(|_| LedgerError::Corrupt("subject_submissions.typed".into())))
            .transpose()?,
        code_sha256: row.try_get("code_sha256")?,
        tries: count(row, "tries")?,
        submitted_at: parse_ts(&row.try_get::<String, _>("submitted_at")?)?,
        expires_at: parse_ts(&row.try_get::<String, _>("expires_at")?)?,
        verified_at: parse_opt_ts(row.try_get("verified_at")?)?,
        locked_at: parse_opt_ts(row.try_get("locked_at")?)?,
        request_id: row.try_get("request_id")?,
    })
}

fn delivery_row(row: &sqlx::any::AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        expires_at: parse_ts(&row.try_get::<String, _>("expires_at")?)?,
        max_downloads: count(row, "max_downloads")?,
        downloads: count(row, "downloads")?,
        revoked_at: parse_opt_ts(row.try_get("revoked_at")?)?,
        code_sha256: row.try_get("code_sha256")?,
        code_expires_at: parse_opt_ts(row.try_get("code_expires_at")?)?,
        code_tries: count(row, "code_tries")?,
        codes_sent: count(row, "codes_sent")?,
        code_sent_at: parse_opt_ts(row.try_get("code_sent_at")?)?,
        locked_at: parse_opt_ts(row.try_get("locked_at")?)?,
        grant_sha256: row.try_get("grant_sha256")?,
        grant_expires_at: parse_opt_ts(row.try_get("grant_expires_at")?)?,
        grant_used: count(row, "grant_used")? != 0,
    })
}

fn count(row: &sqlx::any::AnyRow, column: &str) -> Result<u32> {
    let n: i64 = row.try_get(column)?;
    u32::try_from(n).map_err(|_| LedgerError::Corrupt(format!("{column} = {n}")))
}

impl Ledger {
    /// Stores a submission and the audit event for the code sent for it, unless the address
    /// made `per_hour` submissions in the last hour (false then; counted and stored at once,
    /// so concurrent posts cannot pass the limit together).
    pub async fn create_submission(&self, new: &NewSubmission, per_hour: u32) -> Result<bool> {
        let now = ts(self.now());
        let hour_ago = ts(self.now() - chrono::Duration::hours(1));
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            // READ COMMITTED would let two posts count the same rows: one address at a time.
            // (SQLite takes its one writer lock at the INSERT, before it counts.)
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text AS locked")
                .bind(&new.address_tag)
                .fetch_one(&mut *tx)
                .await?;
        }
        let stored = sqlx::query(
            "INSERT INTO subject_submissions (id, kind, typed, link_sha256, code_sha256, address_tag, \
             submitted_at, expires_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
             WHERE (SELECT COUNT(*) FROM subject_submissions WHERE address_tag = $6 AND submitted_at >= $9) < $10",
        )
        .bind(&new.id)
        .bind(&new.kind)
        .bind(json_text(&new.typed))
        .bind(&new.link_sha256)
        .bind(&new.code_sha256)
        .bind(&new.address_tag)
        .bind(&now)
        .bind(ts(new.expires_at))
        .bind(&hour_ago)
        .bind(i64::from(per_hour))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !stored {
            return Ok(false);
        }
        self.insert_audit(
            &mut tx,
            None,
            None,
            "subject.code_sent",
            json!({"submission": new.id, "kind": new.kind, "expires_at": ts(new.expires_at)}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets a submission whose e-mail could not be sent (nothing was promised); the
    /// audit log says the code announced did not go out.
    pub async fn drop_submission(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM subject_submissions WHERE id = $1 AND verified_at IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.insert_audit(
            &mut tx,
            None,
            None,
            "subject.code_not_sent",
            json!({"submission": id}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn submission(&self, id: &str) -> Result<Option<Submission>> {
        let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM subject_submissions WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(submission_row).transpose()
    }

    pub async fn submission_by_link(&self, link_sha256: &str) -> Result<Option<Submission>> {
        let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM subject_submissions WHERE link_sha256 = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(link_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(submission_row).transpose()
    }

    /// Counts a wrong code; the submission is locked at `max` (what it typed is forgotten).
    /// Returns the tries made and whether it is now locked.
    pub async fn submission_wrong_code(&self, id: &str, max: u32) -> Result<(u32, bool)> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE subject_submissions SET tries = tries + 1, \
             locked_at = CASE WHEN tries + 1 >= $2 THEN $3 ELSE locked_at END, \
             typed = CASE WHEN tries + 1 >= $2 THEN NULL ELSE typed END \
             WHERE id = $1 AND verified_at IS NULL AND locked_at IS NULL",
        )
        .bind(id)
        .bind(i64::from(max))
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let row = sqlx::query("SELECT tries, locked_at FROM subject_submissions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(LedgerError::NotFound(id.to_string()));
        };
        let tries = count(&row, "tries")?;
        let locked = row.try_get::<Option<String>, _>("locked_at")?.is_some();
        if updated == 1 {
            let event = if locked {
                "subject.locked"
            } else {
                "subject.code_failed"
            };
            self.insert_audit(
                &mut tx,
                None,
                None,
                event,
                json!({"submission": id, "tries": tries}),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok((tries, locked))
    }

    /// Deletes unverified submissions made before `before`, and forgets what expired ones typed.
    pub async fn purge_submissions(&self, before: DateTime<Utc>) -> Result<u64> {
        let now = ts(self.now());
        let deleted = sqlx::query("DELETE FROM subject_submissions WHERE verified_at IS NULL AND submitted_at < $1")
            .bind(ts(before))
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query("UPDATE subject_submissions SET typed = NULL WHERE typed IS NOT NULL AND expires_at < $1")
            .bind(&now)
            .execute(&self.pool)
            .await?;
        Ok(deleted)
    }

    /// In the request's creation transaction: marks the submission verified by `request_id`;
    /// the id of the request it already became when it was verified before. Refused when it
    /// is locked, expired or unknown.
    pub(super) async fn claim_submission(
        &self,
        tx: &mut sqlx::AnyConnection,
        request_id: &str,
        origin: &SubmissionOrigin,
    ) -> Result<Option<String>> {
        let now = ts(self.now());
        let claimed = sqlx::query(
            "UPDATE subject_submissions SET verified_at = $2, request_id = $3, typed = NULL \
             WHERE id = $1 AND verified_at IS NULL AND locked_at IS NULL AND expires_at > $2",
        )
        .bind(&origin.id)
        .bind(&now)
        .bind(request_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if claimed {
            return Ok(None);
        }
        let row = sqlx::query("SELECT request_id FROM subject_submissions WHERE id = $1")
            .bind(&origin.id)
            .fetch_optional(&mut *tx)
            .await?;
        match row.map(|r| r.try_get::<Option<String>, _>("request_id")).transpose()? {
            Some(Some(first)) => Ok(Some(first)),
            _ => Err(LedgerError::Refused(
                "this request form submission is locked, expired or unknown: send the form again".into(),
            )),
        }
    }

    // ---- deliveries ----

    pub(super) async fn queue_delivery(&self, tx: &mut sqlx::AnyConnection, request_id: &str, now: &str) -> Result<()> {
        sqlx::query(
            // A row an early `dsr resend` left (given up: not finished then) starts afresh.
            "INSERT INTO delivery_outbox (request_id, created_at, next_attempt_at) VALUES ($1, $2, $2) \
             ON CONFLICT (request_id) DO UPDATE SET sent_at = NULL, given_up_at = NULL, attempts = 0, \
             next_attempt_at = $2, lease_until = NULL",
        )
        .bind(request_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Requests whose e-mail is due at `now`, oldest first.
    pub async fn deliveries_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Outboxed>> {
        let rows = sqlx::query(
            "SELECT request_id, attempts FROM delivery_outbox WHERE sent_at IS NULL AND given_up_at IS NULL \
             AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Outboxed {
                    request_id: r.try_get("request_id")?,
                    attempts: count(r, "attempts")?,
                })
            })
            .collect()
    }

    /// Takes an outbox entry until `lease_until`; false when another worker has it.
    pub async fn take_delivery(&self, request_id: &str, lease_until: DateTime<Utc>) -> Result<bool> {
        let now = ts(self.now());
        Ok(sqlx::query(
            "UPDATE delivery_outbox SET lease_until = $2 WHERE request_id = $1 AND sent_at IS NULL \
             AND given_up_at IS NULL AND (lease_until IS NULL OR lease_until < $3)",
        )
        .bind(request_id)
        .bind(ts(lease_until))
        .bind(&now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Records a link about to be mailed (links sent before stop working once it is sent).
    pub async fn create_delivery(
        &self,
        id: &str,
        request_id: &str,
        token_sha256: &str,
        expires_at: DateTime<Utc>,
        max_downloads: u32,
    ) -> Result<()> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO deliveries (id, request_id, token_sha256, created_at, expires_at, max_downloads) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(request_id)
        .bind(token_sha256)
        .bind(&now)
        .bind(ts(expires_at))
        .bind(i64::from(max_downloads))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The link's e-mail went out: links sent before stop working, the outbox entry is done,
    /// and the send is an audit event.
    pub async fn delivery_sent(&self, delivery: &Delivery, by: Option<&str>) -> Result<()> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE deliveries SET revoked_at = $3 WHERE request_id = $1 AND id <> $2 AND revoked_at IS NULL")
            .bind(&delivery.request_id)
            .bind(&delivery.id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE delivery_outbox SET sent_at = $2, lease_until = NULL, last_error = NULL WHERE request_id = $1",
        )
        .bind(&delivery.request_id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let mut detail = json!({"delivery": delivery.id, "expires_at": ts(delivery.expires_at),
                                "max_downloads": delivery.max_downloads});
        if let Some(by) = by {
            detail["by"] = json!(by);
        }
        self.insert_audit(&mut tx, Some(&delivery.request_id), None, "delivery.sent", detail, None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The e-mail could not be sent: its link (if one was made) is withdrawn, the outbox
    /// entry waits until `next` (or is given up), and the failure is an audit event.
    pub async fn delivery_send_failed(
        &self,
        delivery_id: Option<&str>,
        request_id: &str,
        error: &str,
        next: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        if let Some(delivery_id) = delivery_id {
            sqlx::query("DELETE FROM deliveries WHERE id = $1")
                .bind(delivery_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            // A row that was sent (a `dsr resend` that failed) or never queued is queued
            // again: the worker retries it.
            "INSERT INTO delivery_outbox (request_id, created_at, attempts, next_attempt_at, last_error, given_up_at) \
             VALUES ($1, $4, 1, $3, $2, $5) ON CONFLICT (request_id) DO UPDATE SET \
             attempts = delivery_outbox.attempts + 1, lease_until = NULL, sent_at = NULL, last_error = $2, \
             next_attempt_at = $3, given_up_at = $5",
        )
        .bind(request_id)
        .bind(error)
        .bind(ts(next.unwrap_or(self.now())))
        .bind(&now)
        .bind(next.is_none().then(|| now.clone()))
        .execute(&mut *tx)
        .await?;
        let event = if next.is_some() {
            "delivery.send_failed"
        } else {
            "delivery.given_up"
        };
        self.insert_audit(&mut tx, Some(request_id), None, event, json!({"error": error}), None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delivery_by_token(&self, token_sha256: &str) -> Result<Option<Delivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE token_sha256 = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(delivery_row).transpose()
    }

    /// Every link sent for a request, oldest first.
    pub async fn deliveries(&self, request_id: &str) -> Result<Vec<Delivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE request_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(request_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_row).collect()
    }

    /// Records the code about to be sent for the link (replacing an earlier one), unless
    /// `max` were sent already or the last one went out less than `gap` ago: false then.
    pub async fn delivery_code_sent(
        &self,
        delivery: &Delivery,
        code_sha256: &str,
        expires_at: DateTime<Utc>,
        max: u32,
        gap: chrono::Duration,
    ) -> Result<bool> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let recorded = sqlx::query(
            "UPDATE deliveries SET code_sha256 = $2, code_expires_at = $3, codes_sent = codes_sent + 1, \
             code_sent_at = $4 WHERE id = $1 AND codes_sent < $5 AND (code_sent_at IS NULL OR code_sent_at < $6)",
        )
        .bind(&delivery.id)
        .bind(code_sha256)
        .bind(ts(expires_at))
        .bind(ts(now))
        .bind(i64::from(max))
        .bind(ts(now - gap))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if recorded {
            self.insert_audit(
                &mut tx,
                Some(&delivery.request_id),
                None,
                "delivery.code_sent",
                json!({"delivery": delivery.id, "expires_at": ts(expires_at)}),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// A wrong (or expired) code: counted, and the link locked at `max`. Returns whether it
    /// is now locked.
    pub async fn delivery_wrong_code(&self, delivery: &Delivery, max: u32) -> Result<bool> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE deliveries SET code_tries = code_tries + 1, \
             locked_at = CASE WHEN code_tries + 1 >= $2 THEN $3 ELSE locked_at END WHERE id = $1",
        )
        .bind(&delivery.id)
        .bind(i64::from(max))
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT code_tries, locked_at FROM deliveries WHERE id = $1")
            .bind(&delivery.id)
            .fetch_one(&mut *tx)
            .await?;
        let tries = count(&row, "code_tries")?;
        let locked = row.try_get::<Option<String>, _>("locked_at")?.is_some();
        let event = if locked {
            "delivery.locked"
        } else {
            "delivery.code_failed"
        };
        self.insert_audit(
            &mut tx,
            Some(&delivery.request_id),
            None,
            event,
            json!({"delivery": delivery.id, "tries": tries}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(locked)
    }

    /// The right code: it is used up, and downloads go with the grant (a cookie's hash)
    /// until `grant_expires_at`. False when the code was taken by a concurrent try.
    pub async fn delivery_unlocked(
        &self,
        delivery: &Delivery,
        code_sha256: &str,
        grant_sha256: &str,
        grant_expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(
            "UPDATE deliveries SET code_sha256 = NULL, code_expires_at = NULL, code_tries = 0, \
             grant_sha256 = $3, grant_expires_at = $4, grant_used = 0 \
             WHERE id = $1 AND code_sha256 = $2 AND locked_at IS NULL",
        )
        .bind(&delivery.id)
        .bind(code_sha256)
        .bind(grant_sha256)
        .bind(ts(grant_expires_at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if taken {
            self.insert_audit(
                &mut tx,
                Some(&delivery.request_id),
                None,
                "delivery.unlocked",
                json!({"delivery": delivery.id}),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(taken)
    }

    /// Counts one download made with the grant; false when the link no longer allows one
    /// (expired, used up, replaced, locked), the grant is wrong or expired, or it started its
    /// one download already (another needs another code).
    pub async fn delivery_download(
        &self,
        delivery: &Delivery,
        grant_sha256: &str,
        range: Option<&str>,
    ) -> Result<bool> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        let counted = sqlx::query(
            "UPDATE deliveries SET downloads = downloads + 1, grant_used = 1 WHERE id = $1 AND grant_sha256 = $2 \
             AND grant_used = 0 AND grant_expires_at > $3 AND expires_at > $3 AND downloads < max_downloads \
             AND revoked_at IS NULL AND locked_at IS NULL",
        )
        .bind(&delivery.id)
        .bind(grant_sha256)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if counted {
            let row = sqlx::query("SELECT downloads FROM deliveries WHERE id = $1")
                .bind(&delivery.id)
                .fetch_one(&mut *tx)
                .await?;
            let mut detail = json!({"delivery": delivery.id, "download": count(&row, "downloads")?});
            if let Some(range) = range {
                detail["range"] = json!(range);
            }
            self.insert_audit(
                &mut tx,
                Some(&delivery.request_id),
                None,
                "delivery.downloaded",
                detail,
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(counted)
    }

    /// A continuation of the grant's download, already counted (a `Range` past the first
    /// byte): allowed while the grant and the link hold, not counted again, an audit event.
    pub async fn delivery_resumed(&self, delivery: &Delivery, grant_sha256: &str, range: &str) -> Result<bool> {
        let now = self.now();
        let valid = delivery.grant_sha256.as_deref() == Some(grant_sha256)
            && delivery.grant_expires_at.is_some_and(|t| t > now)
            && delivery.revoked_at.is_none()
            && delivery.locked_at.is_none()
            && delivery.expires_at > now
            && delivery.grant_used;
        if valid {
            self.audit(
                Some(&delivery.request_id),
                None,
                "delivery.resumed",
                json!({"delivery": delivery.id, "range": range}),
            )
            .await?;
        }
        Ok(valid)
    }

    /// A link opened (its page shown): an audit event.
    pub async fn delivery_opened(&self, delivery: &Delivery) -> Result<()> {
        self.audit(
            Some(&delivery.request_id),
            None,
            "delivery.opened",
            json!({"delivery": delivery.id}),
        )
        .await
    }

    /// A link that did not open, and why: an audit event.
    pub async fn delivery_refused(&self, delivery: &Delivery, why: LinkRefusal) -> Result<()> {
        self.audit(
            Some(&delivery.request_id),
            None,
            "delivery.refused",
            json!({"delivery": delivery.id, "why": why.as_str()}),
        )
        .await
    }
}
