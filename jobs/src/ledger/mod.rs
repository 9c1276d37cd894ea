//! The ledger: the durable source of truth for requests, their tasks and the append-only
//! audit log. SQLite by default, PostgreSQL when several machines share the work; the same
//! SQL serves both through sqlx's `Any` driver.

mod admin;
mod audit;
mod chain;
pub mod counts;
mod finalize;
mod finished;
pub mod notes;
pub mod opendsr;
pub mod operators;
mod plans;
mod requests;
mod rows;
pub mod subject;
mod sweep;
mod tasks;
pub mod tokens;
pub mod workers;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use serde_json::Value;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe};

pub use audit::AuditEvent;
pub use chain::{ChainVerdict, Head};
pub use finalize::Written;
pub use finished::TaskText;
pub use plans::{PlanText, StoredPlan, request_plan_hash, same_person};
pub use requests::{Idempotency, ListFilter, Origin, RequestQuery};
pub use rows::ts;
pub use sweep::{AttentionCleared, Recoverable};
pub use tasks::{Claim, Claimed, TaskError, TaskResult};

use crate::clock::Clock;
use crate::queue::redacted;

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

#[derive(Clone, Debug)]
pub struct Ledger {
    pool: AnyPool,
    postgres: bool,
    clock: Clock,
}

/// An audit event a transition appends.
struct Event<'a> {
    request: Option<&'a str>,
    processor: Option<Processor>,
    name: &'a str,
    detail: Value,
    /// Makes the event idempotent: a second one with the same key is not appended.
    dedup: Option<String>,
}

impl<'a> Event<'a> {
    fn new(request: &'a str, name: &'a str, detail: Value) -> Event<'a> {
        Event {
            request: Some(request),
            processor: None,
            name,
            detail,
            dedup: None,
        }
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let connect_url = if let Some(path) = url.strip_prefix("sqlite://") {
            if path != ":memory:" {
                owner_only_file(Path::new(path)).map_err(|e| LedgerError::Unreachable {
                    url: redacted(url),
                    source: sqlx::Error::Io(e),
                })?;
            }
            format!("{url}?mode=rwc")
        } else if postgres {
            url.to_string()
        } else {
            return Err(LedgerError::Url(redacted(url)));
        };
        let setup = async {
            let pool = AnyPoolOptions::new()
                .max_connections(if postgres { 8 } else { 4 })
                .acquire_timeout(Duration::from_secs(10))
                .connect(&connect_url)
                .await
                .map_err(|source| LedgerError::Unreachable {
                    url: redacted(url),
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
                    url: redacted(url),
                    source: sqlx::Error::Io(e),
                })??,
            None => setup.await?,
        };
        Ok(Ledger {
            pool,
            postgres,
            clock: Clock::System,
        })
    }

    /// The same ledger reading time from `clock` (a test's manual clock).
    pub fn with_clock(mut self, clock: Clock) -> Ledger {
        self.clock = clock;
        self
    }

    /// Now, by this ledger's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres
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

    /// The ledger's one transition: `update` in a transaction and, when it changed exactly
    /// one row, `event` appended to the audit chain in the same transaction. Returns whether
    /// the transition applied (false: the row was not in the state `update` requires).
    async fn transition<'q>(
        &self,
        update: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        event: Event<'_>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = update.execute(&mut *tx).await?.rows_affected() == 1;
        if moved {
            self.insert_audit(
                &mut tx,
                event.request,
                event.processor,
                event.name,
                event.detail,
                event.dedup.as_deref(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Appends an audit event inside the caller's transaction, stamped by this ledger's clock.
    async fn insert_audit(
        &self,
        conn: &mut sqlx::AnyConnection,
        request_id: Option<&str>,
        processor: Option<Processor>,
        event: &str,
        detail: Value,
        dedup_key: Option<&str>,
    ) -> Result<bool> {
        // Free text under `note` is kept beside the chain; the chain holds its hash.
        let mut detail = detail;
        let note = match detail.get_mut(notes::NOTE).map(serde_json::Value::take) {
            Some(Value::String(text)) if !text.is_empty() => Some(notes::Note::seal(text)),
            _ => None,
        };
        if let (Some(note), Some(slot)) = (&note, detail.get_mut(notes::NOTE)) {
            *slot = Value::String(note.hash.clone());
        }
        let at = self.now();
        let appended = chain::append(conn, at, request_id, processor, event, &detail, dedup_key).await?;
        let added = appended.is_some();
        if let (Some(note), Some(_)) = (note, appended) {
            note.keep(conn, request_id, at).await?;
        }
        // False when `dedup_key` was recorded before (nothing appended).
        Ok(added)
    }
}

/// The SQLite ledger holds identities and evidence: its directory is created 0700 and the
/// file 0600 before SQLite opens it (SQLite gives its -wal and -shm files the database
/// file's mode), and a ledger an older dsr left readable by others is made owner-only.
fn owner_only_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    drop(options.open(path)?);
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let file = format!("{}{suffix}", path.display());
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
