//! `dsr bench queue`: what dsr adds to the queue it runs on. N access requests over all four
//! fake vendors (answering at once) go through dsr on Redis — the ledger (embedded SQLite,
//! in a scratch folder), the flow, the connectors and the bundle writer — and, on the same
//! Redis, N no-op requests in the same shape go through apalis-redis alone: one fan-out job,
//! one job per processor, one finalize job when the last of them is done. Both are queued
//! first and then taken by one worker in this process with the same `[worker] concurrency`,
//! `[queue] poll` and apalis configuration (dsr's own `Queue`, so the same fetch batch and
//! heartbeat; the no-op side has a handler that only queues the next jobs). Printed: requests
//! per second of each and their ratio, dsr / no-op. Goal ≥ 0.5.
//!
//! Between them, the same accesses by the same connectors alone, as many at once as the
//! worker runs jobs, into memory: no queue, ledger, spool or bundle. Their rate against the
//! no-op jobs' is the most any implementation that makes these calls could reach (the calls
//! and both ends of them share the machine's cores), and dsr's rate against theirs is what
//! dsr's own plumbing costs.
//!
//! The vendors' rate limits are lifted for the run (their windows made a thousand times
//! shorter, [`RATES_LIFTED`]; concurrency limits stay): beyond a burst of a few requests,
//! Gmail's, People's and Wix's per-minute budgets would set the pace, and that is what the
//! limits benchmark measures, not the queue.
//!
//! Each side has its own key prefix under `dsr-bench-<pid>-<time>`, and every key under it is
//! deleted afterwards (also after a failure). If Redis does not answer, nothing runs: exit 2.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use dsr_connector::Processor;
use dsr_connector::http::{Scale, scale_limits_for_benchmark};
use dsr_jobs::queue::{Handler, Job, Queue, QueueSettings, Supervision};

use super::resp::Redis;
use super::{Figure, Goal, QueueBench};
use crate::commands::{Shutdown, demo, worker};
use crate::config::Config;
use crate::error::{CliError, bad_input};

const BENCH: &str = "queue";
const GOAL: f64 = 0.5;
const GIVE_UP_AFTER: Duration = Duration::from_secs(900);
const LOOK_EVERY: Duration = Duration::from_millis(10);
/// Every rate window a thousand times shorter (People's 90 reads a minute per user: 90 per
/// 60 ms), so the vendors' budgets do not set the pace; concurrency limits are kept.
const RATES_LIFTED: Scale = Scale { burst: 1, speed: 1000 };

pub async fn queue(loaded: &Config, bench: &QueueBench, as_json: bool) -> Result<ExitCode, CliError> {
    let figures = run(loaded, bench, as_json).await?;
    super::report(&figures, as_json)
}

/// Runs the benchmark, printing its account unless `quiet`, and returns its figures.
pub async fn run(loaded: &Config, bench: &QueueBench, quiet: bool) -> Result<Vec<Figure>, CliError> {
    let (requests, redis) = (bench.requests, bench.redis.as_str());
    if requests == 0 {
        return Err(bad_input("--requests must be at least 1"));
    }
    let mut cleaner = Redis::connect(redis).await.map_err(|e| {
        bad_input(format!(
            "the queue benchmark needs Redis: {} does not answer ({e}). Start Redis or name one with --redis URL",
            dsr_jobs::queue::redacted(redis)
        ))
    })?;
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let prefix = format!("dsr-bench-{}-{nanos}", std::process::id());
    // Every limiter made from here on (the connectors are built in `measure`).
    scale_limits_for_benchmark(RATES_LIFTED);
    let measured = measure(loaded, bench, &prefix, quiet).await;
    scale_limits_for_benchmark(Scale::NONE);
    match cleaner.delete_prefixed(&prefix).await {
        Ok(n) if !quiet => println!("removed the benchmark's {n} Redis keys (prefix {prefix})"),
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not remove the Redis keys under {prefix}: {e}"),
    }
    let Sides {
        raw,
        alone,
        ours,
        processors,
    } = measured?;
    let rate = |d: Duration| requests as f64 / d.as_secs_f64().max(f64::EPSILON);
    let ratio = rate(ours) / rate(raw);
    if !quiet {
        for (side, took) in [
            ("apalis-redis, no-op jobs", raw),
            ("the connectors alone, no queue", alone),
            ("dsr, zero-latency fakes", ours),
        ] {
            println!(
                "{side:<34} {:>9.2} s {:>9.1} requests/s",
                took.as_secs_f64(),
                rate(took)
            );
        }
    }
    let at = if processors.len() == Processor::ALL.len() {
        "all 4".to_string()
    } else {
        processors.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("+")
    };
    Ok(vec![
        Figure::new(
            BENCH,
            format!("dsr / no-op requests/s, {requests} at {at}"),
            Some(ratio),
            "x",
            Goal::AtLeast(GOAL),
        )
        .note(format!(
            "dsr {:.1}/s, apalis-redis no-op {:.1}/s",
            rate(ours),
            rate(raw)
        )),
        // What no implementation making these calls can beat: the connectors' own rate
        // against the no-op jobs'. Below the goal, the goal is out of reach for any queue.
        Figure::new(
            BENCH,
            format!("connectors alone / no-op, {requests} at {at}"),
            Some(rate(alone) / rate(raw)),
            "x",
            Goal::None,
        )
        .note(format!(
            "the connectors' calls alone {:.1}/s: dsr's ceiling",
            rate(alone)
        )),
        // What dsr's queue, ledger, spool and bundle cost on top of the calls they carry.
        Figure::new(
            BENCH,
            format!("dsr / connectors alone, {requests} at {at}"),
            Some(rate(ours) / rate(alone)),
            "x",
            Goal::None,
        )
        .note("what the queue, ledger, spool and bundle leave of the connectors' rate"),
    ])
}

/// The same accesses as dsr's side makes — every request at every processor, by the same
/// connectors, `concurrency` at once, as a worker takes jobs — each into memory: no queue,
/// ledger, spool or bundle. The vendor calls, their decoding and the identity check alone,
/// with the vendors' limits held in Redis as a worker on Redis holds them (each call takes
/// its place and rate there). Returns how long they took and how many records each
/// processor found per request (the same for every request, or the benchmark stops).
async fn connectors_alone(
    connectors: &dsr_jobs::Connectors,
    settings: &QueueSettings,
    subject: &dsr_connector::Identities,
    requests: usize,
    processors: &[Processor],
    concurrency: usize,
) -> Result<(Duration, BTreeMap<Processor, usize>), CliError> {
    let limits = dsr_jobs::queue::limits::RedisLimits::connect(settings).await?;
    dsr_connector::http::share_limits(Some(Arc::new(limits)));
    let took = tokio::time::timeout(
        GIVE_UP_AFTER,
        run_alone(connectors, subject, requests, processors, concurrency),
    )
    .await;
    dsr_connector::http::share_limits(None);
    took.map_err(|_| {
        CliError::Failed(anyhow::anyhow!(
            "benchmark: the connectors alone did not finish {requests} requests within {GIVE_UP_AFTER:?}"
        ))
    })?
}

async fn run_alone(
    connectors: &dsr_jobs::Connectors,
    subject: &dsr_connector::Identities,
    requests: usize,
    processors: &[Processor],
    concurrency: usize,
) -> Result<(Duration, BTreeMap<Processor, usize>), CliError> {
    let places = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let started = Instant::now();
    for n in 0..requests {
        for &processor in processors {
            let connector = connectors
                .get(processor)
                .cloned()
                .ok_or_else(|| CliError::Failed(anyhow::anyhow!("benchmark: {processor} is not configured")))?;
            let (subject, places) = (subject.clone(), places.clone());
            running.spawn(async move {
                let _place = places.acquire_owned().await;
                let ctx = dsr_connector::TaskContext::new(format!("alone-{n}"), 1, false).asked(Utc::now(), false);
                let mut sink = dsr_connector::MemorySink::checked(subject.clone());
                let accessed = connector.access(&ctx, &subject, &mut sink).await;
                (processor, accessed.map(|_| sink.records.len()))
            });
        }
    }
    let mut found: BTreeMap<Processor, usize> = BTreeMap::new();
    while let Some(ended) = running.join_next().await {
        let (processor, records) = ended.map_err(|e| {
            CliError::Failed(anyhow::anyhow!(
                "benchmark: an access by the connectors alone stopped: {e}"
            ))
        })?;
        let records = records.map_err(|e| {
            CliError::Failed(anyhow::anyhow!(
                "benchmark: the connectors alone: {processor} failed: {e}"
            ))
        })?;
        if *found.entry(processor).or_insert(records) != records {
            return Err(CliError::Failed(anyhow::anyhow!(
                "benchmark: {processor} found {records} records for one request and {} for another: the fake \
                 does not answer every request alike",
                found[&processor]
            )));
        }
    }
    Ok((started.elapsed(), found))
}

/// How long each side took for the same requests.
struct Sides {
    /// apalis-redis with no-op jobs of the same shape.
    raw: Duration,
    /// The connectors' calls alone, without queue, ledger, spool or bundle.
    alone: Duration,
    /// dsr, from its worker's start to its last request's end.
    ours: Duration,
    processors: Vec<Processor>,
}

/// The no-op side, the connectors alone, then dsr's.
async fn measure(loaded: &Config, bench: &QueueBench, prefix: &str, quiet: bool) -> Result<Sides, CliError> {
    let (requests, redis) = (bench.requests, bench.redis.as_str());
    let scratch = tempfile::Builder::new()
        .prefix("dsr-bench-queue-")
        .tempdir()
        .map_err(|e| CliError::Unreachable(format!("benchmark: cannot create a scratch folder: {e}")))?;
    let mut config = demo::demo_config(loaded, scratch.path())?;
    config.queue.url = redis.to_string();
    let fakes = super::fanout::Fakes::start(&mut config, scratch.path()).await?;
    fakes.slow_down(Duration::ZERO);
    let (connectors, _) = crate::wiring::connectors(&config)?;
    let processors: Vec<Processor> = connectors
        .processors()
        .into_iter()
        .filter(|p| bench.processors.is_empty() || bench.processors.contains(p))
        .collect();
    if !quiet {
        println!(
            "queue: {requests} access requests at {} on {}, {} jobs at once, polled every {}; vendors' rate \
             windows 1000 times shorter",
            processors.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
            dsr_jobs::queue::redacted(redis),
            config.worker.concurrency,
            humantime::format_duration(config.queue.poll)
        );
    }

    config.queue.prefix = format!("{prefix}:noop");
    let raw = no_op(&config.queue_settings(), requests, &processors).await?;
    let subject = demo::demo_subject(&config)?;
    config.queue.prefix = format!("{prefix}:alone");
    let (alone, found_alone) = connectors_alone(
        &connectors,
        &config.queue_settings(),
        &subject,
        requests,
        &processors,
        config.worker.concurrency,
    )
    .await?;

    config.queue.prefix = format!("{prefix}:dsr");
    let engine = crate::wiring::engine(&config).await?;
    let mut ids = Vec::with_capacity(requests);
    for _ in 0..requests {
        let new = super::access_request(&subject, processors.clone());
        ids.push(engine.enqueue(new).await?);
    }
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let running = {
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { worker::run_in_process(&engine, false, None, None, &shutdown).await })
    };
    let mut ended = 0;
    while ended < ids.len() && started.elapsed() < GIVE_UP_AFTER && !running.is_finished() {
        if engine.ledger().get_request(&ids[ended]).await?.status.is_terminal() {
            ended += 1;
        } else {
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }
    let ours = started.elapsed();
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
    if ended < ids.len() {
        return Err(CliError::Failed(anyhow::anyhow!(
            "only {ended} of {requests} requests ended within {GIVE_UP_AFTER:?}"
        )));
    }
    // Both sides did the same work: each of dsr's tasks found what the connectors alone did.
    for id in &ids {
        for task in engine.ledger().tasks(id).await? {
            let alone = found_alone.get(&task.processor).copied().unwrap_or_default();
            if task.found != alone as u64 {
                return Err(CliError::Failed(anyhow::anyhow!(
                    "benchmark: dsr's task at {} found {} records ({:?}) and the connectors alone {alone}: the \
                     two sides did not do the same work",
                    task.processor,
                    task.found,
                    task.status
                )));
            }
        }
    }
    if found_alone.values().all(|n| *n == 0) {
        return Err(CliError::Failed(anyhow::anyhow!(
            "benchmark: no processor found a record of the demo's subject: the fakes are not seeded as the demo expects"
        )));
    }
    Ok(Sides {
        raw,
        alone,
        ours,
        processors,
    })
}

/// Queues `requests` fan-out jobs, then runs a worker whose handler does nothing but queue
/// the next jobs of the same shape, until every request's finalize job has run.
async fn no_op(settings: &QueueSettings, requests: usize, processors: &[Processor]) -> Result<Duration, CliError> {
    let queue = Queue::connect(settings).await?;
    for n in 0..requests {
        queue
            .push(Job::FanOut {
                request_id: format!("r{n}"),
            })
            .await?;
    }
    let handler = NoOp {
        queue: queue.clone(),
        processors: processors.to_vec(),
        waiting: Arc::new(Mutex::new(HashMap::new())),
        finalized: Arc::new(AtomicUsize::new(0)),
    };
    let finalized = handler.finalized.clone();
    let shutdown = Shutdown::new();
    let supervision = Supervision {
        give_up_after: Duration::from_secs(60),
        liveness: dsr_jobs::liveness::Liveness::new(),
    };
    let started = Instant::now();
    let running = {
        let (queue, settings, signal) = (queue.clone(), settings.clone(), shutdown.signal());
        tokio::spawn(async move {
            queue
                .run_worker("dsr-bench-noop", handler, &settings, &supervision, signal)
                .await
        })
    };
    while finalized.load(Ordering::SeqCst) < requests && started.elapsed() < GIVE_UP_AFTER && !running.is_finished() {
        tokio::time::sleep(LOOK_EVERY).await;
    }
    let took = started.elapsed();
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
    let done = finalized.load(Ordering::SeqCst);
    if done < requests {
        return Err(CliError::Failed(anyhow::anyhow!(
            "only {done} of {requests} no-op requests finished within {GIVE_UP_AFTER:?}"
        )));
    }
    Ok(took)
}

/// The no-op flow: a fan-out queues one job per processor, the last of those queues the
/// finalize, the finalize counts.
#[derive(Clone)]
struct NoOp {
    queue: Queue,
    processors: Vec<Processor>,
    waiting: Arc<Mutex<HashMap<String, usize>>>,
    finalized: Arc<AtomicUsize>,
}

// `Handler` is an `async_trait` trait; the binary does not link the macro, so the method is
// written as the macro would write it.
impl Handler for NoOp {
    fn handle<'life0, 'life1, 'async_trait>(
        &'life0 self,
        job: &'life1 Job,
    ) -> Pin<Box<dyn Future<Output = Result<(), dsr_jobs::EngineError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.next_jobs(job))
    }
}

impl NoOp {
    async fn next_jobs(&self, job: &Job) -> Result<(), dsr_jobs::EngineError> {
        match job {
            Job::FanOut { request_id } => {
                self.waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(request_id.clone(), self.processors.len());
                for processor in &self.processors {
                    self.queue
                        .push(Job::ProcessorTask {
                            request_id: request_id.clone(),
                            processor: *processor,
                        })
                        .await?;
                }
            }
            Job::ProcessorTask { request_id, .. } => {
                let last = {
                    let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
                    let left = waiting.entry(request_id.clone()).or_insert(1);
                    *left = left.saturating_sub(1);
                    *left == 0
                };
                if last {
                    self.queue
                        .push(Job::Finalize {
                            request_id: request_id.clone(),
                        })
                        .await?;
                }
            }
            Job::Finalize { .. } => {
                self.finalized.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}
