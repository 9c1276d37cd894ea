//! What a failed attempt makes of a task: not applicable, failed for good with what the
//! operator must do, tried again after a backoff that respects the vendor's Retry-After, or
//! (throttled) waited out without spending an attempt. And what keeps one attempt from
//! taking its worker down: a panic is caught and a time limit stops work that runs on.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_connector::{ConnectorError, Processor};

use crate::ledger::{Claim, TaskError, TaskResult};

/// How many attempts a task gets, how long it waits between them, and until when a
/// throttled answer costs none of them.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
    /// Throttling (a 429, a quota) is waited out without spending an attempt until the
    /// request's deadline warning (`due_at - deadline_warning_days`); after that it counts
    /// like any failure, so a vendor that throttles forever still ends the task.
    pub free_throttling_until: DateTime<Utc>,
    /// A processor still fulfilling the request (OpenDSR) is waited for without spending an
    /// attempt until the request's deadline itself.
    pub free_waiting_until: DateTime<Utc>,
}

impl Retries {
    /// The retry policy for one request: the settings, and its deadline.
    pub fn for_request(settings: &crate::engine::Settings, request: &crate::model::Request) -> Retries {
        Retries {
            max_attempts: settings.max_attempts,
            base: settings.backoff_base,
            max: settings.backoff_max,
            free_throttling_until: request
                .due_at
                .checked_sub_signed(chrono::Duration::days(settings.deadline_warning_days))
                .unwrap_or(request.due_at),
            free_waiting_until: request.due_at,
        }
    }
}

/// Whether the vendor asked dsr to slow down rather than failed: a temporary answer with a
/// 4xx status, which is a 429 (Too Many Requests) or a quota or rate limit the vendor's body
/// names (Google answers 403 `rateLimitExceeded`, `dailyLimitExceeded` with the quota's
/// reset). A 408, a 5xx (even with Retry-After: an outage), or no answer at all is a failure.
pub fn is_throttling(error: &ConnectorError) -> bool {
    matches!(error, ConnectorError::RetryLater { status: Some(s), .. } if (400..500).contains(s) && *s != 408)
}

/// What a vendor's error makes of the task: not applicable, failed for good (with what the
/// operator must do), or tried again later.
pub fn classify(retries: Retries, now: DateTime<Utc>, claim: Claim, error: ConnectorError) -> TaskResult {
    let said = |text: String| TaskError::from_connector(&error, text);
    match &error {
        ConnectorError::NotSupported { reason, .. } => TaskResult::NotApplicable { reason: reason.clone() },
        ConnectorError::Permanent { .. } => TaskResult::Failed {
            error: said(error.to_string()),
        },
        // The processor's section cannot work as written: retrying the same config cannot help.
        ConnectorError::Config(_) => TaskResult::Failed {
            error: said(format!("{error}; correct the config, then run `dsr retry`")),
        },
        // Refused even with a fresh token: retrying cannot help until an operator fixes the
        // credentials or permissions; then `dsr retry` sends the task back.
        ConnectorError::Reauthenticate { .. } => TaskResult::Failed {
            error: said(format!(
                "{error}; fix the credentials in the config, then run `dsr retry`"
            )),
        },
        ConnectorError::RetryLater { .. } if is_throttling(&error) && now < retries.free_throttling_until => {
            // The wait grows with every try of the task's life, throttled or not, so a vendor
            // answering "Retry-After: 0" forever is not asked in a tight loop.
            let wait = crate::backoff::delay(claim.attempt, retries.base, retries.max, error.retry_after());
            TaskResult::Throttled {
                error: said(format!(
                    "{error} (throttled: waited out, not counted against [worker] max_attempts)"
                )),
                next_retry_at: later(now, wait),
            }
        }
        // A processor still at work is looked at again when it said, spending no attempt
        // until the deadline (then it counts, so a request stuck there ends).
        ConnectorError::Waiting { after, .. } if now < retries.free_waiting_until => TaskResult::Throttled {
            error: said(format!("{error} (not counted against [worker] max_attempts)")),
            next_retry_at: later(now, *after),
        },
        ConnectorError::RetryLater { .. } | ConnectorError::Waiting { .. } | ConnectorError::Sink(_) => {
            retry_later(retries, now, claim, said(error.to_string()), error.retry_after())
        }
    }
}

/// Retrying with backoff (never sooner than the vendor's Retry-After), or failed once the
/// attempts since the last `dsr retry` are used up.
pub fn retry_later(
    retries: Retries,
    now: DateTime<Utc>,
    claim: Claim,
    error: TaskError,
    after: Option<Duration>,
) -> TaskResult {
    if claim.budget_used >= retries.max_attempts {
        return TaskResult::Failed {
            error: TaskError {
                text: format!(
                    "gave up after {} attempts; last error: {}",
                    claim.budget_used, error.text
                ),
                ..error
            },
        };
    }
    let wait = crate::backoff::delay(claim.budget_used, retries.base, retries.max, after);
    TaskResult::Retrying {
        error,
        next_retry_at: later(now, wait),
    }
}

/// `now + wait`, or a year on when the wait does not fit a date (an absurd Retry-After).
fn later(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| now.checked_add_signed(wait))
        .unwrap_or_else(|| now + chrono::Duration::days(365))
}

/// The error a connector panic stands for: a bug in dsr, not at the vendor (`permanent:panic`).
pub fn panicked(processor: Processor, doing: &str, request_id: &str) -> ConnectorError {
    ConnectorError::permanent(
        processor,
        "panic",
        format!(
            "dsr's {processor} connector panicked during {doing}: a bug in dsr, not at the vendor; report it with \
             the worker's log around this time. `dsr retry {request_id} --processor {processor}` tries again"
        ),
    )
}

/// The error an attempt stopped at `[worker] task_timeout` stands for
/// (`retry_later:task_timeout`): retried by the usual policy.
pub fn timed_out(processor: Processor, limit: Duration) -> ConnectorError {
    ConnectorError::retry_later(
        processor,
        "task_timeout",
        format!(
            "the attempt ran past [worker] task_timeout ({} s) and was stopped; it is tried again",
            limit.as_secs()
        ),
    )
}

/// How contained work ended.
#[derive(Debug)]
pub enum Contained<T> {
    Finished(T),
    /// It panicked; where, when the panic said so (the panic's text is only logged at debug:
    /// it may quote what a vendor sent).
    Panicked {
        location: Option<String>,
    },
    /// It ran past its time limit and was dropped.
    TimedOut(Duration),
}

impl<T> Contained<T> {
    /// What the work finished with, or the error a panic (`permanent:panic`) or a timeout
    /// (`retry_later:task_timeout`) stands for, logged for the operator.
    pub fn into_result(self, processor: Processor, doing: &str, request_id: &str) -> Result<T, ConnectorError> {
        match self {
            Contained::Finished(done) => Ok(done),
            Contained::Panicked { location } => {
                tracing::error!(request = %request_id, %processor, location = location.as_deref().unwrap_or("unknown"),
                    "the connector panicked: a bug in dsr; the task fails (report it with this log)");
                Err(panicked(processor, doing, request_id))
            }
            Contained::TimedOut(limit) => {
                tracing::warn!(request = %request_id, %processor, limit_secs = limit.as_secs(),
                    "the task attempt ran past [worker] task_timeout and was stopped; it is tried again");
                Err(timed_out(processor, limit))
            }
        }
    }
}

/// Runs `work` so that a panic inside it ends only it, and stops it at `limit`.
pub async fn contain<F: Future>(limit: Duration, work: F) -> Contained<F::Output> {
    match tokio::time::timeout(limit, catch_panic(work)).await {
        Ok(Ok(output)) => Contained::Finished(output),
        Ok(Err(panic)) => Contained::Panicked {
            location: panic.location,
        },
        Err(_) => Contained::TimedOut(limit),
    }
}

/// A panic caught by [`catch_panic`].
#[derive(Debug)]
pub struct Panic {
    pub location: Option<String>,
}

/// Runs `work`, turning a panic inside it into an error instead of unwinding through the
/// worker (apalis polls every job of a worker inside one future: a panic left to unwind
/// ends the worker, and with it every job it runs). The process's panic hook stays silent
/// for panics caught here (their text may quote a vendor's data): the location goes into
/// the returned `Panic`, the text to the log at debug.
pub async fn catch_panic<F: Future>(work: F) -> Result<F::Output, Panic> {
    install_hook();
    CatchPanic(Box::pin(work)).await
}

thread_local! {
    /// True while this thread polls work under `catch_panic`.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic caught on this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that defers to the previous one except for
/// panics `catch_panic` catches.
fn install_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

struct CatchPanic<F>(Pin<Box<F>>);

/// Sets `CATCHING` for one poll, and puts back what was there (catches may nest) even
/// when the poll unwinds.
struct Catching(bool);

impl Catching {
    fn start() -> Catching {
        Catching(CATCHING.with(|c| c.replace(true)))
    }
}

impl Drop for Catching {
    fn drop(&mut self) {
        CATCHING.with(|c| c.set(self.0));
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Panic>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = &mut self.0;
        let polled = {
            let _catching = Catching::start();
            std::panic::catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx)))
        };
        match polled {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::debug!(panic = %text, "the text of a caught panic (may quote a vendor's data)");
                Poll::Ready(Err(Panic {
                    location: LOCATION.with(|l| l.borrow_mut().take()),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retries(now: DateTime<Utc>) -> Retries {
        Retries {
            max_attempts: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            free_throttling_until: now + chrono::Duration::days(20),
            free_waiting_until: now + chrono::Duration::days(27),
        }
    }

    fn claim(attempt: u32) -> Claim {
        Claim {
            attempt,
            budget_used: attempt,
        }
    }

    #[test]
    fn vendor_errors_become_the_task_result_an_operator_can_act_on() {
        let now = Utc::now();
        let processor = dsr_connector::Processor::Wix;
        let r = classify(
            retries(now),
            now,
            claim(1),
            ConnectorError::NotSupported {
                processor,
                reason: "no API".into(),
            },
        );
        assert!(matches!(r, TaskResult::NotApplicable { reason } if reason == "no API"));
        let r = classify(
            retries(now),
            now,
            claim(1),
            ConnectorError::Reauthenticate {
                processor,
                status: Some(401),
                code: String::new(),
                message: "invalid key".into(),
                said: None,
            },
        );
        assert!(
            matches!(&r, TaskResult::Failed { error } if error.text.contains("fix the credentials")),
            "{r:?}"
        );
        let r = classify(
            retries(now),
            now,
            claim(1),
            ConnectorError::Permanent {
                processor,
                status: Some(400),
                code: "invalidQuery".into(),
                message: "bad".into(),
                said: Some("no person kari@example.no in $filter".into()),
            },
        );
        // The vendor's words go with the error, apart from dsr's text that is stored.
        match &r {
            TaskResult::Failed { error } => {
                assert_eq!(error.code, "permanent:400:invalidQuery");
                assert_eq!(error.text, "wix failed permanently (400:invalidQuery): bad");
                assert_eq!(error.said.as_deref(), Some("no person kari@example.no in $filter"));
            }
            other => panic!("{other:?}"),
        }
        let r = classify(
            retries(now),
            now,
            claim(1),
            dsr_connector::ConfigError::new(processor, "site_id", "is empty").into(),
        );
        assert!(
            matches!(&r, TaskResult::Failed { error } if error.text.starts_with("processors.wix.site_id: is empty; correct the config")),
            "{r:?}"
        );
        let throttled = || ConnectorError::RetryLater {
            processor,
            status: Some(429),
            code: String::new(),
            message: "slow down".into(),
            after: Some(Duration::from_secs(30)),
            said: None,
        };
        // Throttled, even with every attempt spent: it waits, and costs no attempt.
        for spent in [1, 3, 30] {
            match classify(retries(now), now, claim(spent), throttled()) {
                TaskResult::Throttled { next_retry_at, error } => {
                    assert!(
                        next_retry_at >= now + chrono::Duration::seconds(30),
                        "never before Retry-After"
                    );
                    assert!(error.text.contains("not counted"), "{error}");
                }
                other => panic!("{other:?}"),
            }
        }
        // Past the deadline warning, throttling counts like any failure: it ends.
        let late = now + chrono::Duration::days(21);
        match classify(retries(now), late, claim(3), throttled()) {
            TaskResult::Failed { error } => assert!(error.text.starts_with("gave up after 3 attempts"), "{error}"),
            other => panic!("{other:?}"),
        }
        // A processor still fulfilling the request (OpenDSR) is looked at again when dsr
        // said, spending no attempt, past the deadline warning too; past the deadline it
        // counts and ends.
        let waiting = || ConnectorError::Waiting {
            processor,
            status: "in_progress".into(),
            after: Duration::from_secs(600),
        };
        match classify(retries(now), now, claim(30), waiting()) {
            TaskResult::Throttled { next_retry_at, error } => {
                assert!(next_retry_at >= now + chrono::Duration::seconds(600));
                assert_eq!(error.code, "waiting:in_progress");
                assert!(error.text.contains("still fulfilling"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(retries(now), late, claim(3), waiting()),
            TaskResult::Throttled { .. }
        ));
        let overdue = now + chrono::Duration::days(31);
        assert!(matches!(
            classify(retries(now), overdue, claim(3), waiting()),
            TaskResult::Failed { .. }
        ));
        // A quota the vendor's body names (Google's 403) is throttling too.
        let quota = ConnectorError::RetryLater {
            processor,
            status: Some(403),
            code: "dailyLimitExceeded".into(),
            message: "quota".into(),
            after: Some(Duration::from_secs(3600)),
            said: None,
        };
        assert!(matches!(
            classify(retries(now), now, claim(3), quota),
            TaskResult::Throttled { .. }
        ));
        // A vendor failure (a 503, even with Retry-After) is counted.
        let failed = || ConnectorError::RetryLater {
            processor,
            status: Some(503),
            code: String::new(),
            message: "down".into(),
            after: Some(Duration::from_secs(5)),
            said: None,
        };
        assert!(matches!(
            classify(retries(now), now, claim(2), failed()),
            TaskResult::Retrying { .. }
        ));
        match classify(retries(now), now, claim(3), failed()) {
            TaskResult::Failed { error } => assert!(error.text.starts_with("gave up after 3 attempts"), "{error}"),
            other => panic!("{other:?}"),
        }
        // The budget counts from the last `dsr retry`, not over the task's whole life.
        let after_retry = Claim {
            attempt: 7,
            budget_used: 1,
        };
        assert!(matches!(
            classify(retries(now), now, after_retry, failed()),
            TaskResult::Retrying { .. }
        ));
    }

    #[test]
    fn a_panic_or_a_timeout_becomes_a_documented_code() {
        let processor = dsr_connector::Processor::Wix;
        let panic = panicked(processor, "erasure", "r1");
        assert_eq!(panic.code(), "permanent:panic");
        assert!(panic.to_string().contains("report it"), "{panic}");
        let stopped = timed_out(processor, Duration::from_secs(1800));
        assert_eq!(stopped.code(), "retry_later:task_timeout");
        assert!(stopped.to_string().contains("1800 s"), "{stopped}");
        let now = Utc::now();
        assert!(
            matches!(
                classify(
                    retries(now),
                    now,
                    claim(1),
                    timed_out(processor, Duration::from_secs(1))
                ),
                TaskResult::Retrying { .. }
            ),
            "a timeout is retried by the usual policy, and counted"
        );
    }

    #[tokio::test]
    async fn a_panic_is_caught_with_its_location_and_a_time_limit_stops_work() {
        // The case: a token's `expires_in: 18446744073709551615` added to an Instant.
        let caught = catch_panic(async {
            tokio::task::yield_now().await;
            let expires_in = std::hint::black_box(u64::MAX);
            std::time::Instant::now() + Duration::from_secs(expires_in)
        })
        .await;
        let location = caught.expect_err("the panic is caught").location;
        assert!(location.as_deref().is_some_and(|l| l.contains(".rs:")), "{location:?}");
        // The hook is silent only inside a catch: afterwards, panics reach the previous hook.
        assert!(!CATCHING.with(Cell::get));
        match contain(Duration::from_millis(50), tokio::time::sleep(Duration::from_secs(30))).await {
            Contained::TimedOut(limit) => assert_eq!(limit, Duration::from_millis(50)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            contain(Duration::from_secs(5), async { 7 }).await,
            Contained::Finished(7)
        ));
    }

    /// apalis 1.0 (without its `catch-panic` layer, which dsr does not enable) polls every
    /// job of a worker inside the worker's own future: a panicking job unwinds through it and
    /// ends the worker with every job it runs. Caught, the panic fails one job only.
    #[tokio::test]
    async fn apalis_lets_a_panic_end_the_worker_unless_it_is_caught() {
        use apalis::prelude::*;
        use apalis_sqlite::{SqlitePool, SqliteStorage};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};

        #[derive(Clone, Default)]
        struct Seen {
            handled: Arc<AtomicU32>,
            caught: bool,
        }
        async fn job(n: u32, seen: Data<Seen>) -> Result<(), BoxDynError> {
            let work = async {
                tokio::task::yield_now().await;
                assert!(n != 0, "job {n}: a connector bug");
                seen.handled.fetch_add(1, Ordering::SeqCst);
            };
            if seen.caught {
                catch_panic(work).await.map_err(|_| "panicked".into())
            } else {
                work.await;
                Ok(())
            }
        }

        for caught in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/queue.db?mode=rwc", dir.path().display());
            let pool = SqlitePool::connect(&url).await.unwrap();
            SqliteStorage::setup(&pool).await.unwrap();
            let mut storage =
                SqliteStorage::<u32>::new(&pool).with_config(apalis_sqlite::Config::default().queue("panics"));
            for n in [0, 1, 2] {
                storage.push(n).await.unwrap();
            }
            let seen = Seen {
                caught,
                ..Default::default()
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let worker = WorkerBuilder::new(format!("panics-{caught}"))
                .backend(storage.poll_with_interval(Duration::from_millis(20)))
                .concurrency(1)
                .data(seen.clone())
                .build(job);
            let run = tokio::spawn(worker.run_until(async move {
                let _ = stopped.await;
                Ok::<(), std::io::Error>(())
            }));
            let started = std::time::Instant::now();
            while seen.handled.load(Ordering::SeqCst) < 2 && !run.is_finished() {
                assert!(started.elapsed() < Duration::from_secs(30), "caught: {caught}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if caught {
                assert!(!run.is_finished(), "the worker ended on a caught panic");
                assert_eq!(seen.handled.load(Ordering::SeqCst), 2, "the other jobs ran");
                let _ = stop.send(());
                assert!(run.await.is_ok());
            } else {
                let ended = run.await;
                assert!(
                    ended.as_ref().is_err_and(|e| e.is_panic()),
                    "apalis caught the panic itself: revisit this test"
                );
                assert!(seen.handled.load(Ordering::SeqCst) < 2, "the worker went on");
            }
        }
    }
}
