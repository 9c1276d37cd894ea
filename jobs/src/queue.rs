//! The job queue (apalis): an embedded SQLite store by default, Redis when several machines
//! share the work. Payloads carry ids only — never personal data — and every job is safe to
//! deliver twice, because the ledger decides whether there is anything left to do.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqlitePool, SqliteStorage};
use dsr_connector::Processor;
use serde::{Deserialize, Serialize};

/// One unit of queued work. `fan_out(request)` → one `processor_task` per processor →
/// `finalize(request)` when every task is terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    FanOut { request_id: String },
    ProcessorTask { request_id: String, processor: Processor },
    Finalize { request_id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot reach the queue at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("could not enqueue a job: {0}")]
    Push(String),
    #[error("the worker stopped: {0}")]
    Worker(String),
    #[error("unsupported queue url `{0}`: use sqlite://PATH or redis://HOST:PORT")]
    Url(String),
}

/// How to reach the queue backend.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub url: String,
    /// Redis keys start with this (`{prefix}:jobs:…`); the SQLite queue is named after it.
    pub prefix: String,
    /// How often an idle worker looks for new jobs.
    pub poll_interval: Duration,
    /// How often a worker tells the backend it is alive.
    pub heartbeat: Duration,
    /// Missed heartbeats after which a worker is declared dead and its jobs handed on.
    pub missed_heartbeats: usize,
    /// redis-rs answers with an error after 500 ms by default: far too eager under load.
    pub response_timeout: Duration,
    pub concurrency: usize,
}

/// Jobs in the queue by state (the backend's own counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub pending: u64,
    pub running: u64,
    /// Handled (by the flow, whether or not there was anything left to do).
    pub done: u64,
    /// Failed or aborted (a flow error: the recovery sweep takes the work up again).
    pub failed: u64,
}

impl QueueStats {
    /// Jobs a worker has finished with, either way.
    pub fn handled(&self) -> u64 {
        self.done + self.failed
    }
}

#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<Job>),
    Redis(RedisStorage<Job>),
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Queue::Sqlite(_) => "Queue::Sqlite",
            Queue::Redis(_) => "Queue::Redis",
        })
    }
}

impl Queue {
    pub async fn connect(settings: &QueueSettings) -> Result<Queue, QueueError> {
        let url = &settings.url;
        let unreachable = |message: String| QueueError::Unreachable {
            url: url.clone(),
            message,
        };
        let queue_name = format!("{}:jobs", settings.prefix);
        if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| unreachable(e.to_string()))?;
            }
            let pool = SqlitePool::connect(&format!("{url}?mode=rwc"))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            sqlx::query("PRAGMA busy_timeout = 10000")
                .execute(&pool)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            crate::sqlite_lock::while_locked(std::path::Path::new(path), SqliteStorage::setup(&pool))
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .map_err(|e| unreachable(e.to_string()))?;
            let config = apalis_sqlite::Config::default()
                .queue(&queue_name)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(settings.missed_heartbeats);
            Ok(Queue::Sqlite(SqliteStorage::new(&pool).with_config(config)))
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            let client = apalis_redis::Client::open(url.as_str()).map_err(|e| unreachable(e.to_string()))?;
            let manager_config = redis::aio::ConnectionManagerConfig::new()
                .set_response_timeout(Some(settings.response_timeout))
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_number_of_retries(2);
            let conn = tokio::time::timeout(
                Duration::from_secs(10),
                client.get_connection_manager_with_config(manager_config),
            )
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
            let config = apalis_redis::Config::default()
                .queue(&queue_name)
                .heartbeat_interval(settings.heartbeat)
                .missed_heartbeats(settings.missed_heartbeats);
            Ok(Queue::Redis(RedisStorage::new(conn).with_config(config)))
        } else {
            Err(QueueError::Url(url.clone()))
        }
    }

    pub async fn push(&self, job: Job) -> Result<(), QueueError> {
        let result = match self {
            Queue::Sqlite(storage) => storage.clone().push(job).await.map_err(|e| e.to_string()),
            Queue::Redis(storage) => storage.clone().push(job).await.map_err(|e| e.to_string()),
        };
        result.map_err(QueueError::Push)
    }

    /// How many jobs the backend holds by state, for this queue.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        use apalis::prelude::Metrics;
        let stats = match self {
            Queue::Sqlite(storage) => storage.fetch_by_queue().await.map_err(|e| e.to_string()),
            Queue::Redis(storage) => storage.fetch_by_queue().await.map_err(|e| e.to_string()),
        }
        .map_err(QueueError::Push)?;
        let count = |title: &str| {
            stats
                .iter()
                .find(|s| s.title == title)
                .and_then(|s| s.value.parse::<f64>().ok())
                .map_or(0, |v| v as u64)
        };
        Ok(QueueStats {
            pending: count("PENDING_JOBS"),
            running: count("RUNNING_JOBS"),
            done: count("DONE_JOBS"),
            failed: count("FAILED_JOBS") + count("KILLED_JOBS"),
        })
    }

    /// Runs a worker named `name` that gives each job to `handler`, until `shutdown`
    /// resolves, then lets running jobs finish.
    pub async fn run_worker<H: Handler>(
        &self,
        name: &str,
        handler: H,
        settings: &QueueSettings,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), QueueError> {
        let signal = async move {
            shutdown.await;
            Ok::<(), std::io::Error>(())
        };
        let concurrency = settings.concurrency.max(1);
        let result = match self {
            Queue::Sqlite(storage) => {
                WorkerBuilder::new(name)
                    .backend(storage.clone().poll_with_interval(settings.poll_interval))
                    .concurrency(concurrency)
                    .data(handler.clone())
                    .build(handle_job::<H>)
                    .run_until(signal)
                    .await
            }
            Queue::Redis(storage) => {
                WorkerBuilder::new(name)
                    .backend(storage.clone().poll_with_interval(settings.poll_interval))
                    .concurrency(concurrency)
                    .data(handler.clone())
                    .build(handle_job::<H>)
                    .run_until(signal)
                    .await
            }
        };
        result.map_err(|e| QueueError::Worker(e.to_string()))
    }
}

/// What a worker does with each job (the request flow implements it; the queue knows
/// nothing of it).
#[async_trait::async_trait]
pub trait Handler: Clone + Send + Sync + 'static {
    /// Ok, or what failed (the recovery sweep takes the job up again); only its code, which
    /// holds no personal data, reaches the queue backend and the log.
    async fn handle(&self, job: &Job) -> Result<(), crate::error::EngineError>;
}

/// The apalis handler. Whatever goes wrong is already in the ledger; what apalis stores is
/// an error code, and it is an abort so the backend does not retry on its own schedule
/// (apalis-redis would re-run a failed job up to 25 times): retries are the ledger's.
async fn handle_job<H: Handler>(job: Job, handler: Data<H>) -> Result<(), BoxDynError> {
    handler.handle(&job).await.map_err(|error| {
        let code = error.code();
        tracing::warn!(job = ?job_kind(&job), %code, "job failed; the recovery sweep will take it up again");
        Box::new(AbortError::new(code)) as BoxDynError
    })
}

fn job_kind(job: &Job) -> &'static str {
    match job {
        Job::FanOut { .. } => "fan_out",
        Job::ProcessorTask { .. } => "processor_task",
        Job::Finalize { .. } => "finalize",
    }
}
