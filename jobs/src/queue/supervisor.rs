//! Keeps a queue worker taking jobs while its backend comes and goes.
//!
//! apalis ends a worker's run at the first failed poll (`Failed to poll backend: …`): a Redis
//! restart, a dropped connection, a Redis that came back without its data (the worker's
//! registration is gone, so its next heartbeat fails), a SQLite queue locked past its busy
//! timeout. Left alone, the process lives on and takes no more work. Here each run's events
//! are watched; a run that fails (or ends without being asked to) hands its running jobs to a
//! drain that lets them finish, and the worker starts again on a new backend (a new Redis
//! connection) under a new name, with capped exponential backoff. A worker that has not got
//! its queue back within `give_up_after` returns [`QueueError::GaveUp`]. Every answer from
//! the backend is marked in the shared [`Liveness`]: each Redis reply on the worker's own
//! connection, and each registration and keep-alive of the SQLite poller.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use chrono::Utc;
use futures::{Stream, StreamExt};
use redis::aio::{ConnectionLike, ConnectionManager};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Backend, Handler, Job, Queue, QueueError, QueueSettings, handle_job, is_redis, redacted, redis_config};
use crate::liveness::Liveness;

/// How a worker rides out its queue going away.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// How long the worker keeps reconnecting before it gives up (`[worker] give_up_after`).
    pub give_up_after: Duration,
    /// Marked on every answer from the backend; read by the heartbeat.
    pub liveness: Liveness,
}

const RECONNECT_BASE: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// A run that lasted this long before it failed starts the backoff from the bottom again.
const SETTLED: Duration = Duration::from_secs(10);

/// What ended one run of the worker.
enum RunEnd {
    /// Shutdown was asked, and the run's jobs finished.
    Stopped,
    /// The backend failed, or the run ended unasked.
    Failed(String),
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, WorkerError>> + Send>>;

/// One run of the worker: its events, its context once it has started, and whether it is
/// still the worker's poller (a run that failed may drain its jobs; what its connection
/// hears then is not a poll).
struct Run {
    events: Events,
    context: Arc<OnceLock<WorkerContext>>,
    polling: Arc<AtomicBool>,
}

/// Since when the worker has been without its queue, and how often it tried.
struct Outage {
    since: Instant,
    tries: u32,
}

pub(super) async fn run_worker<H: Handler>(
    queue: &Queue,
    name: &str,
    handler: H,
    settings: &QueueSettings,
    supervision: &Supervision,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), QueueError> {
    let stop = CancellationToken::new();
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        })
    };
    let mut drains = JoinSet::new();
    let mut outage: Option<Outage> = None;
    let mut run = 0u32;
    let ended = loop {
        let run_name = match run {
            0 => name.to_string(),
            n => format!("{name}-r{n}"),
        };
        run += 1;
        let started = Instant::now();
        let started_at = Utc::now();
        let since = outage.as_ref().map(|o| o.since);
        let connected = tokio::select! {
            connected = start(queue, &run_name, handler.clone(), settings, supervision, since) => connected,
            _ = stop.cancelled() => break Ok(()),
        };
        let end = match connected {
            Ok(run) => drive(run, &stop, &mut drains, supervision.give_up_after).await,
            Err(e) => RunEnd::Failed(e.to_string()),
        };
        let reason = match end {
            RunEnd::Stopped => break Ok(()),
            RunEnd::Failed(reason) => reason,
        };
        if stop.is_cancelled() {
            tracing::warn!(error = %reason, "the queue worker ended while stopping");
            break Ok(());
        }
        // The backend answered this run: whatever outage there was ended, and this failure
        // starts a new one. Only a run that also lasted starts the backoff again from the
        // bottom, so a backend that answers and then fails every time is not hammered.
        let answered = supervision.liveness.last_poll().is_some_and(|at| at >= started_at);
        if answered {
            let tries = match outage.take() {
                Some(previous) if started.elapsed() < SETTLED => previous.tries,
                _ => 0,
            };
            outage = Some(Outage {
                since: Instant::now(),
                tries,
            });
        }
        let current = outage.get_or_insert_with(|| Outage {
            since: Instant::now(),
            tries: 0,
        });
        current.tries += 1;
        let down_for = current.since.elapsed();
        if down_for >= supervision.give_up_after {
            tracing::error!(error = %reason, ?down_for, "giving up on the queue");
            break Err(QueueError::GaveUp {
                queue: format!("{} (queue {}:jobs)", redacted(&settings.url), settings.prefix),
                what: if is_redis(&settings.url) {
                    "Redis is running"
                } else {
                    "the queue's SQLite file is not held locked by another process, its disk is not full, and it is readable"
                },
                down_for,
                give_up_after_secs: supervision.give_up_after.as_secs(),
                last_error: reason,
            });
        }
        let delay = crate::backoff::delay(current.tries, RECONNECT_BASE, RECONNECT_MAX, None)
            .min(supervision.give_up_after - down_for);
        tracing::warn!(
            error = %reason,
            tries = current.tries,
            ?down_for,
            "the queue worker lost its queue; reconnecting in {delay:?} (giving up after {:?})",
            supervision.give_up_after
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => break Ok(()),
        }
    };
    watcher.abort();
    match ended {
        // Jobs a failed run was still running finish before the worker stops.
        Ok(()) => while drains.join_next().await.is_some() {},
        // The process is about to exit: what they held is taken over when its lease expires.
        Err(_) => drains.shutdown().await,
    }
    ended
}

/// Builds one run of the worker (for Redis, on a new connection).
async fn start<H: Handler>(
    queue: &Queue,
    name: &str,
    handler: H,
    settings: &QueueSettings,
    supervision: &Supervision,
    outage_since: Option<Instant>,
) -> Result<Run, QueueError> {
    let context = Arc::new(OnceLock::new());
    let polling = Arc::new(AtomicBool::new(true));
    let on_event = {
        let context = context.clone();
        let liveness = supervision.liveness.clone();
        let polling = polling.clone();
        let announced = AtomicBool::new(false);
        move |worker: &WorkerContext, event: &Event| {
            let _ = context.set(worker.clone());
            // Emitted after the worker registered and after each keep-alive: the backend answered.
            if matches!(event, Event::HeartBeat) && polling.load(Ordering::Relaxed) {
                liveness.polled(Utc::now());
                if let Some(since) = outage_since
                    && !announced.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(after = ?since.elapsed(), "the queue worker has its queue back");
                }
            }
        }
    };
    let concurrency = settings.concurrency.max(1);
    // Every `[queue] poll`, and at once when this process queues a job (a fan-out's tasks, a
    // last task's finalize, a request submitted beside the worker).
    let polls = queue.wake.poll_strategy(settings.poll_interval);
    let events: Events = match &queue.backend {
        Backend::Sqlite(storage) => Box::pin(
            WorkerBuilder::new(name)
                // A clone starts afresh (registers, polls) on the same pool.
                .backend(storage.clone().poll_with_strategy(polls))
                .concurrency(concurrency)
                .data(handler)
                .on_event(on_event)
                .build(handle_job::<H>)
                .stream(),
        ),
        Backend::Redis(_) => {
            let conn = Watched {
                inner: super::redis_connection(settings).await?,
                liveness: supervision.liveness.clone(),
                polling: polling.clone(),
            };
            let storage: RedisStorage<Job, Watched> = RedisStorage::new(conn).with_config(redis_config(settings));
            Box::pin(
                WorkerBuilder::new(name)
                    .backend(storage.poll_with_strategy(polls))
                    .concurrency(concurrency)
                    .data(handler)
                    .on_event(on_event)
                    .build(handle_job::<H>)
                    .stream(),
            )
        }
    };
    Ok(Run {
        events,
        context,
        polling,
    })
}

/// Follows one run until shutdown (then lets its jobs finish) or until its backend fails
/// (then hands the jobs still running to a drain, so that reconnecting need not wait for them).
async fn drive(run: Run, stop: &CancellationToken, drains: &mut JoinSet<()>, drain_for: Duration) -> RunEnd {
    let Run {
        mut events,
        context,
        polling,
    } = run;
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                match context.get() {
                    Some(worker) if worker.stop().is_ok() => {}
                    // Not started yet: nothing runs.
                    _ => return RunEnd::Stopped,
                }
            }
            next = events.next() => match next {
                Some(Ok(_)) => {}
                None if stopping => return RunEnd::Stopped,
                None => return RunEnd::Failed("the worker's run ended without being asked to stop".into()),
                Some(Err(e)) if stopping => {
                    tracing::warn!(error = %e, "the queue failed while the worker was stopping");
                    return RunEnd::Stopped;
                }
                Some(Err(e)) => {
                    polling.store(false, Ordering::Relaxed);
                    if let Some(worker) = context.get().cloned()
                        && worker.task_count() > 0
                    {
                        drains.spawn(drain(events, worker, drain_for));
                    }
                    return RunEnd::Failed(e.to_string());
                }
            },
        }
    }
}

/// Lets the jobs of a run whose backend failed finish (for at most `bound`). The run takes
/// no new jobs (its backend is dead); it is dropped as soon as none is left, before it would
/// try to close the backend.
async fn drain(mut events: Events, worker: WorkerContext, bound: Duration) {
    let finished = tokio::time::timeout(bound, async {
        while worker.task_count() > 0 {
            match events.next().await {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            jobs = worker.task_count(),
            "jobs of a worker run that lost its queue were still running after {bound:?}; \
             their leases expire and other workers take them over"
        );
    }
}

/// The worker's own Redis connection: every reply is an answer from the backend (while the
/// run it serves is the worker's poller).
#[derive(Clone)]
struct Watched {
    inner: ConnectionManager,
    liveness: Liveness,
    polling: Arc<AtomicBool>,
}

impl Watched {
    fn answered(&self) {
        if self.polling.load(Ordering::Relaxed) {
            self.liveness.polled(Utc::now());
        }
    }
}

impl ConnectionLike for Watched {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let reply = self.inner.req_packed_command(cmd).await?;
            self.answered();
            Ok(reply)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let replies = self.inner.req_packed_commands(pipeline, offset, count).await?;
            self.answered();
            Ok(replies)
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
