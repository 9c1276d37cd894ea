//! The ledger: the durable source of truth for requests, their tasks and the append-only
//! audit log. SQLite by default, PostgreSQL when several machines share the work; the same
//! SQL serves both through sqlx's `Any` driver.

mod chain;
mod plans;
mod retention;
pub use chain::{ChainVerdict, Head};
pub use plans::{PlanText, StoredPlan, request_plan_hash};
pub use retention::TaskText;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use dsr_connector::Processor;
use serde_json::{Value, json};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::model::{Lang, NewRequest, Outcome, Request, RequestKind, RequestStatus, Task, TaskStatus};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot reach the ledger at {url}: {source}")]
    Unreachable { url: String, source: sqlx::Error },
    #[error("ledger migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("ledger query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the ledger holds a value this version cannot read ({0}); is an older dsr running?")]
    Corrupt(String),
    #[error("unsupported ledger url `{0}`: use sqlite://PATH or postgres://…")]
    Url(String),
    #[error("no request with id {0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
}

impl LedgerError {
    /// The kind of failure, without the message (which may quote a stored value).
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerError::Unreachable { .. } => "unreachable",
            LedgerError::Migrate(_) => "migrate",
            LedgerError::Query(_) => "query",
            LedgerError::Corrupt(_) => "corrupt",
            LedgerError::Url(_) => "url",
            LedgerError::NotFound(_) => "not_found",
            LedgerError::Refused(_) => "refused",
        }
    }
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

/// Timestamps are stored as fixed-width RFC 3339 UTC text so they sort as strings.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| LedgerError::Corrupt(format!("timestamp `{s}`")))
}

fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

fn parse<T: FromStr>(s: &str) -> Result<T> {
    s.parse().map_err(|_| LedgerError::Corrupt(s.to_string()))
}

/// What a task attempt ended with.
#[derive(Debug, Clone)]
pub enum TaskResult {
    Succeeded {
        outcome: Outcome,
        found: u64,
        changed: u64,
        reason: Option<String>,
        evidence: Value,
        spool: Option<String>,
    },
    Retrying {
        error: String,
        next_retry_at: DateTime<Utc>,
    },
    Failed {
        error: String,
    },
    NotApplicable {
        reason: String,
    },
    /// The plan is made and stored; the task waits for an operator's approval.
    Planned {
        found: u64,
    },
}

impl TaskResult {
    fn status(&self) -> TaskStatus {
        match self {
            TaskResult::Planned { .. } => TaskStatus::Planned,
            TaskResult::Succeeded { .. } => TaskStatus::Succeeded,
            TaskResult::Retrying { .. } => TaskStatus::Retrying,
            TaskResult::Failed { .. } => TaskStatus::Failed,
            TaskResult::NotApplicable { .. } => TaskStatus::NotApplicable,
        }
    }
}

/// A claimed task: the attempt number this worker now owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Numbers attempts over the task's whole life (spool files and audit events use it).
    pub attempt: u32,
    /// Attempts since the last manual retry: what the retry budget counts.
    pub budget_used: u32,
}

/// What `finalize` wrote: where, and the SHA-256 that proves it (of the bundle's manifest,
/// or of the confirmation's JSON).
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    Bundle { location: String, sha256: String },
    Confirmation { location: String, sha256: String },
}

/// One audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub processor: Option<String>,
    pub event: String,
    pub detail: Value,
}

/// Filters for `dsr list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<RequestStatus>,
    /// Not terminal and past its deadline at this instant.
    pub overdue_at: Option<DateTime<Utc>>,
}

/// Work the recovery sweep should put back on the queue.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recoverable {
    pub fan_outs: Vec<String>,
    pub tasks: Vec<(String, Processor)>,
    pub finalizes: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    pool: AnyPool,
    postgres: bool,
}

const REQUEST_COLUMNS: &str = "id, kind, status, identities, changes, lang, dry_run, received_at, \
     due_at, extended_months, extension_reason, bundle, confirmation, finished_at, bundle_sha256, \
     confirmation_sha256, exports_expired_at, pseudonymised_at, finalize_error";
const TASK_COLUMNS: &str = "request_id, processor, status, attempts, outcome, found, changed, \
     reason, error, evidence, spool, next_retry_at";

impl Ledger {
    /// Opens (creating if needed) the ledger at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let connect_url = if let Some(path) = url.strip_prefix("sqlite://") {
            if path != ":memory:"
                && let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| LedgerError::Unreachable {
                    url: url.to_string(),
                    source: sqlx::Error::Io(e),
                })?;
            }
            format!("{url}?mode=rwc")
        } else if postgres {
            url.to_string()
        } else {
            return Err(LedgerError::Url(url.to_string()));
        };
        let setup = async {
            let pool = AnyPoolOptions::new()
                .max_connections(if postgres { 8 } else { 4 })
                .acquire_timeout(Duration::from_secs(10))
                .connect(&connect_url)
                .await
                .map_err(|source| LedgerError::Unreachable {
                    url: redact_url(url),
                    source,
                })?;
            if !postgres {
                // WAL lets readers (dsr status) run beside the worker.
                sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            } else {
                // sqlx holds a PostgreSQL advisory lock while it migrates.
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            }
            chain::seal_unchained(&pool).await?;
            Ok::<_, LedgerError>(pool)
        };
        let pool = match url.strip_prefix("sqlite://").filter(|p| *p != ":memory:") {
            Some(path) => crate::sqlite_lock::while_locked(Path::new(path), setup)
                .await
                .map_err(|e| LedgerError::Unreachable {
                    url: url.to_string(),
                    source: sqlx::Error::Io(e),
                })??,
            None => setup.await?,
        };
        Ok(Ledger { pool, postgres })
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// Stores a new request with one pending task per processor, and its audit event.
    pub async fn create_request(&self, id: &str, new: &NewRequest, due_at: DateTime<Utc>) -> Result<()> {
        let now = ts(Utc::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO requests (id, kind, status, identities, changes, lang, dry_run, \
             received_at, due_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        insert_audit(
            &mut tx,
            Some(id),
            None,
            "request.received",
            json!({"kind": new.kind, "processors": processors, "dry_run": new.dry_run, "due_at": ts(due_at)}),
            Some(&format!("received:{id}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
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

    /// received → in_progress, once. Returns whether this call made the move.
    pub async fn start_request(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE requests SET status = 'in_progress', fanned_out = 1, updated_at = $2 \
             WHERE id = $1 AND status = 'received'",
        )
        .bind(id)
        .bind(ts(Utc::now()))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if moved {
            insert_audit(&mut tx, Some(id), None, "request.in_progress", json!({}), None).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Takes a task for one attempt, if it is due: pending, retrying with its backoff
    /// elapsed, or running under a lease that expired (its worker died). A task that is
    /// terminal or held by a live worker is not taken, so a re-delivered job does nothing.
    pub async fn claim_task(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE tasks SET status = 'running', attempts = attempts + 1, lease_owner = $3, \
             lease_until = $4, updated_at = $5 \
             WHERE request_id = $1 AND processor = $2 AND ( \
                status = 'pending' \
                OR (status = 'retrying' AND (next_retry_at IS NULL OR next_retry_at <= $5)) \
                OR (status = 'running' AND lease_until < $5)) \
             RETURNING attempts, attempt_base",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(owner)
        .bind(ts(until))
        .bind(ts(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let attempt = row.try_get::<i64, _>(0)? as u32;
        let budget_used = attempt.saturating_sub(row.try_get::<i64, _>(1)? as u32);
        insert_audit(
            &mut tx,
            Some(id),
            Some(processor),
            "task.started",
            json!({"attempt": attempt, "worker": owner}),
            Some(&format!("started:{id}:{processor}:{attempt}")),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Claim { attempt, budget_used }))
    }

    /// Extends this worker's lease on a running task; false when it lost the task.
    pub async fn renew_lease(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        claim: Claim,
        lease: Duration,
    ) -> Result<bool> {
        let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        Ok(sqlx::query(
            "UPDATE tasks SET lease_until = $5 WHERE request_id = $1 AND processor = $2 \
             AND status = 'running' AND lease_owner = $3 AND attempts = $4",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(owner)
        .bind(claim.attempt as i64)
        .bind(ts(until))
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Records how an attempt ended, exactly once: only the worker holding the claim can
    /// record it, and the audit event is keyed by attempt, so a re-delivered job records
    /// nothing twice. Returns false when the claim was lost (another worker took over).
    pub async fn finish_task(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        claim: Claim,
        result: &TaskResult,
    ) -> Result<bool> {
        let now = ts(Utc::now());
        let (outcome, found, changed, reason, error, evidence, spool, next_retry) = match result {
            TaskResult::Succeeded {
                outcome,
                found,
                changed,
                reason,
                evidence,
                spool,
            } => (
                Some(outcome.as_str()),
                *found as i64,
                *changed as i64,
                reason.clone(),
                None,
                evidence.to_string(),
                spool.clone(),
                None,
            ),
            TaskResult::Retrying { error, next_retry_at } => (
                None,
                0,
                0,
                None,
                Some(error.clone()),
                "null".into(),
                None,
                Some(ts(*next_retry_at)),
            ),
            TaskResult::Failed { error } => (None, 0, 0, None, Some(error.clone()), "null".into(), None, None),
            TaskResult::NotApplicable { reason } => (None, 0, 0, Some(reason.clone()), None, "null".into(), None, None),
            TaskResult::Planned { found } => (None, *found as i64, 0, None, None, "null".into(), None, None),
        };
        let status = result.status();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE tasks SET status = $5, outcome = $6, found = $7, changed = $8, reason = $9, \
             error = $10, evidence = $11, spool = $12, next_retry_at = $13, lease_owner = NULL, \
             lease_until = NULL, updated_at = $14 \
             WHERE request_id = $1 AND processor = $2 AND status = 'running' \
             AND lease_owner = $3 AND attempts = $4",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(owner)
        .bind(claim.attempt as i64)
        .bind(status.as_str())
        .bind(outcome)
        .bind(found)
        .bind(changed)
        .bind(reason.clone())
        .bind(error.clone())
        .bind(evidence)
        .bind(spool)
        .bind(next_retry.clone())
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if updated {
            insert_audit(
                &mut tx,
                Some(id),
                Some(processor),
                &format!("task.{status}"),
                json!({"attempt": claim.attempt, "outcome": outcome, "found": found,
                       "changed": changed, "reason": reason, "error": error,
                       "next_retry_at": next_retry}),
                Some(&format!("finished:{id}:{processor}:{}", claim.attempt)),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// Settles a task that never ran (e.g. the connector cannot serve the right).
    pub async fn settle_unstarted(&self, id: &str, processor: Processor, result: &TaskResult) -> Result<bool> {
        let (reason, error) = match result {
            TaskResult::NotApplicable { reason } => (Some(reason.clone()), None),
            TaskResult::Failed { error } => (None, Some(error.clone())),
            _ => {
                return Err(LedgerError::Refused(
                    "only not_applicable or failed settle an unstarted task".into(),
                ));
            }
        };
        let status = result.status();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE tasks SET status = $3, reason = $4, error = $5, updated_at = $6 \
             WHERE request_id = $1 AND processor = $2 AND status IN ('pending', 'retrying')",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(status.as_str())
        .bind(reason.clone())
        .bind(error.clone())
        .bind(ts(Utc::now()))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if updated {
            insert_audit(
                &mut tx,
                Some(id),
                Some(processor),
                &format!("task.{status}"),
                json!({"reason": reason, "error": error}),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// Ends an in-progress request whose tasks are all terminal, once; records where its
    /// bundle or confirmation is and its hash, which the audit chain then covers. Returns
    /// false when the request was already ended or `owner` does not hold the finalize lease.
    pub async fn complete_request(
        &self,
        id: &str,
        status: RequestStatus,
        written: &Written,
        signed: bool,
        owner: &str,
    ) -> Result<bool> {
        let now = ts(Utc::now());
        let (bundle, bundle_sha256, confirmation, confirmation_sha256) = match written {
            Written::Bundle { location, sha256 } => (Some(location), Some(sha256), None, None),
            Written::Confirmation { location, sha256 } => (None, None, Some(location), Some(sha256)),
        };
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
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
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if updated {
            insert_audit(
                &mut tx,
                Some(id),
                None,
                &format!("request.{status}"),
                json!({"bundle": bundle, "manifest_sha256": bundle_sha256, "confirmation": confirmation,
                       "confirmation_sha256": confirmation_sha256, "signed": signed}),
                Some(&format!("finished:{id}")),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// Takes the right to write a request's bundle or confirmation, for `lease`; false when
    /// the request has ended or a live worker holds it.
    pub async fn claim_finalize(&self, id: &str, owner: &str, lease: Duration) -> Result<bool> {
        let now = Utc::now();
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
        let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
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
    /// reason changes, so a failure retried every sweep does not flood the log.
    pub async fn note_finalize_failure(&self, id: &str, error: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE requests SET finalize_error = $2, updated_at = $3 WHERE id = $1 AND status = 'in_progress' \
             AND (finalize_error IS NULL OR finalize_error <> $2)",
        )
        .bind(id)
        .bind(error)
        .bind(ts(Utc::now()))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // Let the next sweep try at once rather than after the lease.
        sqlx::query("UPDATE requests SET finalize_owner = NULL, finalize_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if changed {
            insert_audit(
                &mut tx,
                Some(id),
                None,
                "finalize.failed",
                json!({"error": error}),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Cancels a request and every task that has not ended.
    pub async fn cancel(&self, id: &str) -> Result<()> {
        let request = self.get_request(id).await?;
        if request.status.is_terminal() {
            return Err(LedgerError::Refused(format!(
                "request {id} is already {}; nothing to cancel",
                request.status
            )));
        }
        let now = ts(Utc::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', lease_owner = NULL, lease_until = NULL, \
             updated_at = $2 WHERE request_id = $1 AND status IN ('pending', 'running', 'retrying', 'planned')",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE requests SET status = 'cancelled', finished_at = $2, updated_at = $2 \
             WHERE id = $1 AND status IN ('received', 'in_progress', 'awaiting_approval')",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, Some(id), None, "request.cancelled", json!({}), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sends failed tasks (all, or one processor's) back to pending, and a finished request
    /// back to in_progress so it is finalized again. Returns the tasks reset.
    pub async fn retry(&self, id: &str, processor: Option<Processor>) -> Result<Vec<Processor>> {
        let request = self.get_request(id).await?;
        if request.status == RequestStatus::Cancelled {
            return Err(LedgerError::Refused(format!(
                "request {id} was cancelled; enqueue a new one"
            )));
        }
        if let Some(at) = request.pseudonymised_at {
            return Err(LedgerError::Refused(format!(
                "request {id} no longer names its subject (pseudonymised at {}); enqueue a new request",
                ts(at)
            )));
        }
        // A request awaiting approval is planned again (its plans may be stale): the
        // approval then needs the new plan's hash.
        let awaiting = request.status == RequestStatus::AwaitingApproval;
        let failed: Vec<Processor> = self
            .tasks(id)
            .await?
            .into_iter()
            .filter(|t| t.status == TaskStatus::Failed || (awaiting && t.status == TaskStatus::Planned))
            .map(|t| t.processor)
            .filter(|p| processor.is_none_or(|want| want == *p))
            .collect();
        if failed.is_empty() {
            let which = processor.map(|p| format!(" at {p}")).unwrap_or_default();
            return Err(LedgerError::Refused(format!(
                "request {id} has no failed task{which} to retry"
            )));
        }
        let now = ts(Utc::now());
        let mut tx = self.pool.begin().await?;
        for p in &failed {
            sqlx::query(
                "UPDATE tasks SET status = 'pending', attempt_base = attempts, error = NULL, next_retry_at = NULL, \
                 updated_at = $3 WHERE request_id = $1 AND processor = $2 AND status IN ('failed', 'planned')",
            )
            .bind(id)
            .bind(p.as_str())
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            // Retried work is planned again: what was done stays recorded in the old plan.
            sqlx::query("UPDATE plans SET is_current = 0 WHERE request_id = $1 AND processor = $2")
                .bind(id)
                .bind(p.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE requests SET status = 'in_progress', finished_at = NULL, updated_at = $2 \
             WHERE id = $1 AND status IN ('partially_completed', 'failed', 'awaiting_approval')",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let names: Vec<_> = failed.iter().map(|p| p.as_str()).collect();
        insert_audit(
            &mut tx,
            Some(id),
            None,
            "request.retried",
            json!({"processors": names}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(failed)
    }

    /// Extends the deadline (Art. 12(3)): at most two further months in all, with a reason,
    /// and only before the deadline has passed.
    pub async fn extend(
        &self,
        id: &str,
        months: u32,
        reason: &str,
        zone: chrono_tz::Tz,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let request = self.get_request(id).await?;
        if request.status.is_terminal() {
            return Err(LedgerError::Refused(format!(
                "request {id} is already {}",
                request.status
            )));
        }
        if now > request.due_at {
            return Err(LedgerError::Refused(format!(
                "the deadline of request {id} passed at {}; Art. 12(3) allows an extension only before it",
                ts(request.due_at)
            )));
        }
        let total = request.extended_months + months;
        if months == 0 || total > 2 {
            return Err(LedgerError::Refused(format!(
                "a deadline may be extended by at most two further months in all (already {})",
                request.extended_months
            )));
        }
        if reason.trim().is_empty() {
            return Err(LedgerError::Refused("an extension needs a reason".into()));
        }
        let due = crate::deadline::due_at(request.received_at, 1 + total, zone);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE requests SET due_at = $2, extended_months = $3, extension_reason = $4, \
             warned_at = NULL, updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(ts(due))
        .bind(total as i64)
        .bind(reason)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        insert_audit(
            &mut tx,
            Some(id),
            None,
            "request.extended",
            json!({"months": months, "reason": reason, "due_at": ts(due)}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(due)
    }

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
            .bind(ts(Utc::now()))
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, Some(id), None, event, detail, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims one scheduled tick for this process; false when another process ran it.
    pub async fn claim_tick(&self, name: &str, owner: &str) -> Result<bool> {
        Ok(
            sqlx::query("INSERT INTO ticks (name, owner, at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(owner)
                .bind(ts(Utc::now()))
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

    pub async fn audit(
        &self,
        request_id: Option<&str>,
        processor: Option<Processor>,
        event: &str,
        detail: Value,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, request_id, processor, event, detail, None).await?;
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

    pub async fn audit_events(&self, request_id: &str) -> Result<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT seq, at, request_id, processor, event, detail FROM audit_log \
             WHERE request_id = $1 ORDER BY seq",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    seq: r.try_get(0)?,
                    at: parse_ts(&r.try_get::<String, _>(1)?)?,
                    request_id: r.try_get(2)?,
                    processor: r.try_get(3)?,
                    event: r.try_get(4)?,
                    detail: serde_json::from_str(&r.try_get::<String, _>(5)?)
                        .map_err(|e| LedgerError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    /// Removes every row of the given requests (test clean-up on a shared database).
    pub async fn purge_requests(&self, ids: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query("DELETE FROM plan_items WHERE plan_hash IN (SELECT hash FROM plans WHERE request_id = $1)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for table in ["audit_log", "tasks", "plans"] {
                sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE request_id = $1")))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM requests WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_audit(
    conn: &mut sqlx::AnyConnection,
    request_id: Option<&str>,
    processor: Option<Processor>,
    event: &str,
    detail: Value,
    dedup_key: Option<&str>,
) -> Result<()> {
    chain::append(conn, request_id, processor, event, &detail, dedup_key).await?;
    Ok(())
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn request_from_row(r: &AnyRow) -> Result<Request> {
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
    })
}

fn task_from_row(r: &AnyRow) -> Result<Task> {
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
