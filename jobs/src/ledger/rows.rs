//! How values are stored: timestamps as fixed-width text, enums by name, rows into types.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use dsr_connector::Processor;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{LedgerError, Result};
use crate::model::{Lang, Outcome, Request, RequestKind, RequestStatus, Task, TaskStatus};

pub(super) const REQUEST_COLUMNS: &str = "id, kind, status, identities, changes, lang, dry_run, received_at, \
     due_at, extended_months, extension_reason, bundle, confirmation, finished_at, bundle_sha256, \
     confirmation_sha256, exports_expired_at, pseudonymised_at, finalize_error, approval_required";
pub(super) const TASK_COLUMNS: &str = "request_id, processor, status, attempts, outcome, found, changed, \
     reason, error, evidence, spool, next_retry_at";

/// Timestamps are stored as fixed-width RFC 3339 UTC text so they sort as strings.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| LedgerError::Corrupt(format!("timestamp `{s}`")))
}

pub(super) fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

pub(super) fn parse<T: FromStr>(s: &str) -> Result<T> {
    s.parse().map_err(|_| LedgerError::Corrupt(s.to_string()))
}

pub(super) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

pub(super) fn request_from_row(r: &AnyRow) -> Result<Request> {
    let identities: String = r.try_get("identities")?;
    let changes: String = r.try_get("changes")?;
    Ok(Request {
        id: r.try_get("id")?,
        kind: parse::<RequestKind>(&r.try_get::<String, _>("kind")?)?,
        status: parse::<RequestStatus>(&r.try_get::<String, _>("status")?)?,
        // Pseudonymised identities are keyed hashes, not addresses: the request then names
        // nobody.
        identities: if r.try_get::<Option<String>, _>("pseudonymised_at")?.is_some() {
            Default::default()
        } else {
            serde_json::from_str(&identities).map_err(|e| LedgerError::Corrupt(e.to_string()))?
        },
        changes: serde_json::from_str(&changes).map_err(|e| LedgerError::Corrupt(e.to_string()))?,
        lang: parse::<Lang>(&r.try_get::<String, _>("lang")?)?,
        dry_run: r.try_get::<i64, _>("dry_run")? != 0,
        received_at: parse_ts(&r.try_get::<String, _>("received_at")?)?,
        due_at: parse_ts(&r.try_get::<String, _>("due_at")?)?,
        extended_months: r.try_get::<i64, _>("extended_months")? as u32,
        extension_reason: r.try_get("extension_reason")?,
        bundle: r.try_get("bundle")?,
        confirmation: r.try_get("confirmation")?,
        finished_at: parse_opt_ts(r.try_get("finished_at")?)?,
        bundle_sha256: r.try_get("bundle_sha256")?,
        confirmation_sha256: r.try_get("confirmation_sha256")?,
        exports_expired_at: parse_opt_ts(r.try_get("exports_expired_at")?)?,
        pseudonymised_at: parse_opt_ts(r.try_get("pseudonymised_at")?)?,
        finalize_error: r.try_get("finalize_error")?,
        approval_required: r.try_get::<i64, _>("approval_required")? != 0,
    })
}

pub(super) fn task_from_row(r: &AnyRow) -> Result<Task> {
    let outcome: Option<String> = r.try_get("outcome")?;
    let evidence: String = r.try_get("evidence")?;
    Ok(Task {
        request_id: r.try_get("request_id")?,
        processor: parse::<Processor>(&r.try_get::<String, _>("processor")?)?,
        status: parse::<TaskStatus>(&r.try_get::<String, _>("status")?)?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        outcome: outcome.as_deref().map(parse::<Outcome>).transpose()?,
        found: r.try_get::<i64, _>("found")? as u64,
        changed: r.try_get::<i64, _>("changed")? as u64,
        reason: r.try_get("reason")?,
        error: r.try_get("error")?,
        evidence: serde_json::from_str(&evidence).map_err(|e| LedgerError::Corrupt(e.to_string()))?,
        spool: r.try_get("spool")?,
        next_retry_at: parse_opt_ts(r.try_get("next_retry_at")?)?,
    })
}
