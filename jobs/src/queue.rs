//! The job queue (apalis): an embedded SQLite store by default, Redis when several machines
//! share the work. Payloads carry ids only — never personal data — and every job is safe to
//! deliver twice, because the ledger decides whether there is anything left to do.
//!
//! The queue may go away (Redis restarted, with or without its data; the SQLite file locked
//! by another process): pushes retry with capped backoff for a while, and a worker whose
//! poller failed reconnects with a new backend ([`supervisor`]) until
//! `[worker] give_up_after`, then ends with [`QueueError::GaveUp`] so that its supervisor
//! (systemd, Kubernetes) restarts it. Whatever the queue lost, the ledger still holds, and
//! the recovery sweep queues it again.

use std::future::Future;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqlitePool, SqliteStorage};
use dsr_connector::Processor;
use serde::{Deserialize, Serialize};

pub mod limits;
mod supervisor;
mod wake;

pub use supervisor::Supervision;

/// How long `push` keeps trying a queue that does not answer before it reports the failure.
pub const PUSH_RETRY_FOR: Duration = Duration::from_secs(10);
const PUSH_BACKOFF_BASE: Duration = Duration::from_millis(100);
const PUSH_BACKOFF_MAX: Duration = Duration::from_secs(2);

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
    /// The backend did not take a job within [`PUSH_RETRY_FOR`] (or the caller's bound).
    #[error("{queue} did not take a job after {tries} tries over {waited:.1?}: {reason}")]
    Push {
        queue: String,
        tries: u32,
        waited: Duration,
        reason: String,
    },
    /// A request is in the ledger but its first job is not in the queue; the recovery sweep
    /// queues it once the queue answers.
    #[error(
        "request {request_id} is stored in the ledger but not queued ({source}); the recovery sweep of a \
         running `dsr worker` queues it once the queue answers, so do not submit it again"
    )]
    NotQueued {
        request_id: String,
        #[source]
        source: Box<QueueError>,
    },
    /// The backend could not be asked for its counts.
    #[error("cannot read the counts of {queue}: {reason}")]
    Stats { queue: String, reason: String },
    /// A worker could not get its queue back within `[worker] give_up_after`.
    #[error(
        "gave up on the queue at {queue} after {down_for:.1?} without it answering ([worker] give_up_after = \
         \"{give_up_after_secs}s\"); last error: {last_error}. Check that {what} and reachable from this machine; \
         the worker exits so that its supervisor (systemd, Kubernetes) starts it again"
    )]
    GaveUp {
        queue: String,
        what: &'static str,
        down_for: Duration,
        give_up_after_secs: u64,
        last_error: String,
    },
    #[error("unsupported queue url `{0}`: use sqlite://PATH or redis://HOST:PORT")]
    Url(String),
}

impl QueueError {
    /// The request that is in the ledger although its job is not in the queue, if that is
    /// what this error says.
    pub fn stored_request(&self) -> Option<&str> {
        match self {
            QueueError::NotQueued { request_id, .. } => Some(request_id),
            _ => None,
        }
    }
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

/// The queue: its backend, and the workers of this process to wake when this process queues
/// a job (see [`wake`]).
#[derive(Clone)]
pub struct Queue {
    backend: Backend,
    wake: wake::Wakers,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteStorage<Job>),
    Redis(RedisStorage<Job>),
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.backend {
            Backend::Sqlite(_) => "Queue::Sqlite",
            Backend::Redis(_) => "Queue::Redis",
        })
    }
}

impl Queue {
    pub async fn connect(settings: &QueueSettings) -> Result<Queue, QueueError> {
        let url = &settings.url;
        if let Some(path) = url.strip_prefix("sqlite://") {
            let unreachable = |message: String| QueueError::Unreachable {
                url: url.clone(),
                message,
            };
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| unreachable(e.to_string()))?;
            }
            // Every connection of the pool waits up to 10 s for another process's write
            // (a `PRAGMA` sent through the pool would reach one connection only, and the
            // others would give up after sqlx's 5 s under load: "database is locked").
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
                .map_err(|e| unreachable(e.to_string()))?
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePool::connect_with(options)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            crate::sqlite_lock::while_locked(std::path::Path::new(path), SqliteStorage::setup(&pool))
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .map_err(|e| unreachable(e.to_string()))?;
            Ok(Queue::new(Backend::Sqlite(
                SqliteStorage::new(&pool).with_config(sqlite_config(settings)),
            )))
        } else if is_redis(url) {
            let conn = redis_connection(settings).await?;
            Ok(Queue::new(Backend::Redis(
                RedisStorage::new(conn).with_config(redis_config(settings)),
            )))
        } else {
            Err(QueueError::Url(url.clone()))
        }
    }

    fn new(backend: Backend) -> Queue {
        Queue {
            backend,
            wake: wake::Wakers::default(),
        }
    }

    /// Queues `job`, retrying a backend that does not answer (Redis restarting, the SQLite
    /// file locked) with capped backoff for up to [`PUSH_RETRY_FOR`].
    pub async fn push(&self, job: Job) -> Result<(), QueueError> {
        self.push_within(job, PUSH_RETRY_FOR).await
    }

    /// Queues `job`, retrying for up to `bound` (zero: one try).
    pub async fn push_within(&self, job: Job, bound: Duration) -> Result<(), QueueError> {
        let started = Instant::now();
        let mut tries = 0u32;
        loop {
            tries += 1;
            let result = match &self.backend {
                Backend::Sqlite(storage) => storage.clone().push(job.clone()).await.map_err(|e| e.to_string()),
                Backend::Redis(storage) => storage.clone().push(job.clone()).await.map_err(|e| e.to_string()),
            };
            let reason = match result {
                Ok(()) => {
                    self.wake.wake();
                    if tries > 1 {
                        tracing::info!(tries, waited = ?started.elapsed(), "the queue took the job again");
                    }
                    return Ok(());
                }
                Err(reason) => reason,
            };
            let waited = started.elapsed();
            let delay = crate::backoff::delay(tries, PUSH_BACKOFF_BASE, PUSH_BACKOFF_MAX, None);
            if waited + delay > bound {
                return Err(QueueError::Push {
                    queue: self.describe(),
                    tries,
                    waited,
                    reason,
                });
            }
            tracing::warn!(job = job_kind(&job), tries, error = %reason, "the queue did not take a job; trying again in {delay:?}");
            tokio::time::sleep(delay).await;
        }
    }

    /// How many jobs the backend holds by state, for this queue.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        use apalis::prelude::Metrics;
        let stats = match &self.backend {
            Backend::Sqlite(storage) => storage.fetch_by_queue().await.map_err(|e| e.to_string()),
            Backend::Redis(storage) => storage.fetch_by_queue().await.map_err(|e| e.to_string()),
        }
        .map_err(|reason| QueueError::Stats {
            queue: self.describe(),
            reason,
        })?;
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

    /// The backend and queue, for messages (never a password).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(_) => "the SQLite queue".into(),
            Backend::Redis(storage) => format!("the Redis queue {}", storage.get_config().queue),
        }
    }

    /// Runs a worker that gives each job to `handler` until `shutdown` resolves, then lets
    /// running jobs finish. When the backend goes away the worker reconnects with capped
    /// backoff (each run named `name`, then `name-r1`, `name-r2`…: the backend keeps a
    /// registry of names); if it cannot for `supervision.give_up_after`, it returns
    /// [`QueueError::GaveUp`].
    pub async fn run_worker<H: Handler>(
        &self,
        name: &str,
        handler: H,
        settings: &QueueSettings,
        supervision: &Supervision,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), QueueError> {
        supervisor::run_worker(self, name, handler, settings, supervision, shutdown).await
    }
}

pub fn is_redis(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

// One job per fetch. apalis keeps a worker's heartbeat only while it holds no fetched job
// waiting for a free slot: with a batch of ten and every slot busy for longer than
// `missed_heartbeats` × `heartbeat`, other workers declared it dead, handed its jobs on and
// ended its run ("Heartbeat failed: worker not registered"), in normal operation.
const FETCH_BATCH: usize = 1;

fn sqlite_config(settings: &QueueSettings) -> apalis_sqlite::Config {
    apalis_sqlite::Config::default()
        .queue(format!("{}:jobs", settings.prefix))
        .batch_size(FETCH_BATCH)
        .heartbeat_interval(settings.heartbeat)
        .missed_heartbeats(settings.missed_heartbeats)
}

fn redis_config(settings: &QueueSettings) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(format!("{}:jobs", settings.prefix))
        .batch_size(FETCH_BATCH)
        .heartbeat_interval(settings.heartbeat)
        .missed_heartbeats(settings.missed_heartbeats)
}

/// A new Redis connection (a manager that reconnects a dropped socket on its own).
async fn redis_connection(settings: &QueueSettings) -> Result<redis::aio::ConnectionManager, QueueError> {
    let unreachable = |message: String| QueueError::Unreachable {
        url: redacted(&settings.url),
        message,
    };
    let client = apalis_redis::Client::open(settings.url.as_str()).map_err(|e| unreachable(e.to_string()))?;
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(settings.response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2);
    tokio::time::timeout(
        Duration::from_secs(10),
        client.get_connection_manager_with_config(manager_config),
    )
    .await
    .map_err(|_| unreachable("timed out".into()))?
    .map_err(|e| unreachable(e.to_string()))
}

/// `url` without a password or user name: the one form in which dsr prints or stores a
/// ledger, queue or store URL (errors, `dsr doctor`, `dsr worker`'s start line).
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::liveness::Liveness;

    #[test]
    fn urls_in_messages_carry_no_credentials() {
        assert_eq!(redacted("redis://:s3cret@queue:6379/0"), "redis://queue:6379/0");
        assert_eq!(redacted("redis://dsr:s3cret@queue:6379"), "redis://queue:6379");
        assert_eq!(redacted("redis://queue:6379"), "redis://queue:6379");
        assert_eq!(redacted("sqlite://dsr-data/queue.db"), "sqlite://dsr-data/queue.db");
    }

    #[derive(Clone, Default)]
    struct Count(Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl Handler for Count {
        async fn handle(&self, _: &Job) -> Result<(), crate::error::EngineError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// A supervised worker on a fresh SQLite queue, counting what it handles; send on the
    /// returned channel to stop it.
    struct Running {
        queue: Queue,
        supervision: Supervision,
        handled: Count,
        stop: tokio::sync::oneshot::Sender<()>,
        worker: tokio::task::JoinHandle<Result<(), QueueError>>,
        _dir: tempfile::TempDir,
    }

    async fn start_worker(poll_interval: Duration, heartbeat: Duration) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let settings = QueueSettings {
            url: format!("sqlite://{}/queue.db", dir.path().display()),
            prefix: "unit".into(),
            poll_interval,
            heartbeat,
            missed_heartbeats: 2,
            response_timeout: Duration::from_secs(5),
            concurrency: 2,
        };
        let queue = Queue::connect(&settings).await.unwrap();
        let supervision = Supervision {
            give_up_after: Duration::from_secs(30),
            liveness: Liveness::new(),
        };
        let handled = Count::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = {
            let (queue, supervision, handled) = (queue.clone(), supervision.clone(), handled.clone());
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                queue
                    .run_worker("unit-worker", handled, &settings, &supervision, shutdown)
                    .await
            })
        };
        Running {
            queue,
            supervision,
            handled,
            stop,
            worker,
            _dir: dir,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_supervised_worker_marks_its_polls_takes_jobs_and_stops_when_asked() {
        let Running {
            queue,
            supervision,
            handled,
            stop,
            worker,
            _dir,
        } = start_worker(Duration::from_millis(20), Duration::from_secs(1)).await;
        queue
            .push(Job::FanOut {
                request_id: "r-1".into(),
            })
            .await
            .unwrap();
        let started = Instant::now();
        while handled.0.load(Ordering::SeqCst) == 0 || supervision.liveness.last_poll().is_none() {
            assert!(started.elapsed() < Duration::from_secs(20), "the job was not taken");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(20), worker).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "the worker stops when asked");
        assert_eq!(handled.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_queued_in_the_process_wakes_an_idle_worker_before_its_next_poll() {
        // Far longer than the test waits: only the wake can bring the job in time (a
        // heartbeat also makes the worker look again).
        let Running {
            queue,
            supervision,
            handled,
            stop,
            worker,
            _dir,
        } = start_worker(Duration::from_secs(3600), Duration::from_secs(120)).await;
        // Registered, and its first look at the (empty) queue done: now it sleeps.
        let started = Instant::now();
        while supervision.liveness.last_poll().is_none() {
            assert!(started.elapsed() < Duration::from_secs(20), "the worker did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for n in 0..3 {
            queue
                .push(Job::FanOut {
                    request_id: format!("r-{n}"),
                })
                .await
                .unwrap();
        }
        let started = Instant::now();
        while handled.0.load(Ordering::SeqCst) < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "only {} of 3 jobs were taken: the push did not wake the worker",
                handled.0.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(20), worker).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "the worker stops when asked");
    }
}
