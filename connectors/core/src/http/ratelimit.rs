//! Client-side rate limits per key (a mailbox, a property, a tenant, a site): a request rate
//! with a burst, and a cap on requests in flight (Graph allows four concurrent requests per
//! mailbox).
//!
//! Each process keeps its own limiter; when several workers share a vendor's budget (the
//! Redis queue), the worker installs a [`SharedLimits`] backend with [`share_limits`] and
//! every limiter also takes its rate and its place in flight there, so two workers together
//! never send more than the vendor allows. A place in flight is a lease the holder renews
//! while its call runs: a worker that dies gives its places back when the lease runs out.
//! If the shared backend cannot be reached, the process's own limits still hold (and a
//! warning says the budget is no longer shared) — a 429 then still waits for Retry-After.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `requests` per `per`, at most `concurrent` at once, per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests: u32,
    pub per: Duration,
    pub concurrent: usize,
}

impl Limits {
    /// How many calls dsr lets into any window of `per`: the vendor's count less a fortieth
    /// (from 40 up), kept in hand so that calls a little late on the way never find the
    /// vendor's count full. A sliding window, as a vendor counting "N requests per 10
    /// minutes" counts: the whole count may go at once, and then each call waits for the
    /// oldest to leave the window (a token bucket would allow a full burst and a full
    /// window's rate after it, nearly twice the count in the first window).
    pub fn window_count(&self) -> u32 {
        let requests = self.requests.max(1);
        requests - (requests / 40).min(requests - 1)
    }

    /// These limits as a benchmark scales them: the window's count `scale.burst` times
    /// smaller and time `scale.speed` times faster (the window shrinks by both). 1 and 1:
    /// unchanged.
    pub fn scaled(&self, scale: Scale) -> Limits {
        let (burst, speed) = (scale.burst.max(1), scale.speed.max(1));
        let requests = (self.requests / burst).max(1);
        Limits {
            requests,
            per: self.per.mul_f64(f64::from(requests) / f64::from(self.requests.max(1))) / speed,
            concurrent: self.concurrent,
        }
    }

    /// A name for these limits, so limiters with other limits never share a budget.
    fn signature(&self) -> String {
        format!("{}per{}ms-{}", self.requests, self.per.as_millis(), self.concurrent)
    }
}

/// A shared backend could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("the shared rate limits could not be reached: {0}")]
pub struct SharedLimitError(pub String);

/// Where limits are held when several processes share a vendor's budget. Keys are the
/// limiter's own (`{processor}/{limits}/{vendor key}`); a backend that stores them
/// outside the process must not store the vendor key as it is (it may be a person's
/// mailbox).
#[async_trait::async_trait]
pub trait SharedLimits: Send + Sync {
    /// Takes one request from `key`'s rate if one is free now; otherwise takes nothing and
    /// answers how long until one will be.
    async fn take_rate(&self, key: &str, limits: Limits) -> Result<Option<Duration>, SharedLimitError>;

    /// Takes a place in flight under `key` for `holder` if fewer than `limits.concurrent`
    /// are held; a place not renewed within `lease` is free again.
    async fn take_place(
        &self,
        key: &str,
        holder: &str,
        limits: Limits,
        lease: Duration,
    ) -> Result<bool, SharedLimitError>;

    /// Extends `holder`'s place under `key` by `lease` from now.
    async fn renew_place(&self, key: &str, holder: &str, lease: Duration) -> Result<(), SharedLimitError>;

    /// Gives `holder`'s place under `key` back.
    async fn release_place(&self, key: &str, holder: &str) -> Result<(), SharedLimitError>;
}

/// How long a shared place in flight lasts unless renewed: how soon a dead worker's places
/// are free again. A live call renews its place every third of this.
pub const PLACE_LEASE: Duration = Duration::from_secs(15);

/// The longest pause between two tries for a shared place in flight.
const MOST_PLACE_PAUSE: Duration = Duration::from_millis(10);

static SHARED: RwLock<Option<Arc<dyn SharedLimits>>> = RwLock::new(None);

/// Makes every limiter in this process also take its rate and places from `backend` (the
/// worker does this when its queue is Redis); `None` keeps limits within the process.
pub fn share_limits(backend: Option<Arc<dyn SharedLimits>>) {
    let mut shared = SHARED.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    *shared = backend;
}

fn installed() -> Option<Arc<dyn SharedLimits>> {
    SHARED.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// The calls of one key within the last window, oldest first.
#[derive(Debug, Default)]
struct Window(VecDeque<std::time::Instant>);

impl Window {
    /// Takes a call at `now` if the window has room; otherwise takes nothing and answers
    /// how long until the oldest call leaves it.
    fn take(&mut self, now: std::time::Instant, limits: &Limits) -> Option<Duration> {
        while self
            .0
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= limits.per)
        {
            self.0.pop_front();
        }
        if self.0.len() < limits.window_count() as usize {
            self.0.push_back(now);
            return None;
        }
        let oldest = self.0.front().copied().unwrap_or(now);
        Some(
            (oldest + limits.per)
                .saturating_duration_since(now)
                .max(Duration::from_micros(100)),
        )
    }
}

pub struct RateLimiter {
    limits: Limits,
    windows: Mutex<HashMap<String, Window>>,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// A backend for this limiter alone (tests); otherwise the process's, if any.
    shared: Option<Arc<dyn SharedLimits>>,
}

/// Holds a place in flight for one request; dropping it frees the place (in the process
/// at once, in the shared backend as soon as the runtime gets to it).
pub struct Permit {
    _permit: Option<OwnedSemaphorePermit>,
    _shared: Option<SharedPlace>,
}

/// A place held in a shared backend, renewed while held.
struct SharedPlace {
    backend: Arc<dyn SharedLimits>,
    key: String,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for SharedPlace {
    fn drop(&mut self) {
        self.renewal.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (backend, key, holder) = (
                self.backend.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.holder),
            );
            runtime.spawn(async move {
                if let Err(e) = backend.release_place(&key, &holder).await {
                    // The lease runs out on its own.
                    tracing::debug!(error = %e, "could not give a shared place in flight back");
                }
            });
        }
    }
}

/// A name no other holder in any process has: the process, a counter and the time.
fn holder_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos}", std::process::id())
}

/// Says, at most once a minute per process, that limits are no longer shared.
fn warn_unshared(error: &SharedLimitError) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            error = %error,
            "vendor rate limits are held by this worker alone until the shared backend answers again; \
             several workers may be throttled by the vendor meanwhile"
        );
    }
}

/// A pause of about `base`, spread so that waiting workers do not all ask at once.
fn spread(base: Duration, salt: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64;
    let spread = (nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % (base.as_micros() as u64 + 1);
    base / 2 + Duration::from_micros(spread / 2)
}

/// How a benchmark scales every limit (see [`Limits::scaled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub burst: u32,
    pub speed: u32,
}

impl Scale {
    pub const NONE: Scale = Scale { burst: 1, speed: 1 };
}

static SCALE_BURST: AtomicU32 = AtomicU32::new(1);
static SCALE_SPEED: AtomicU32 = AtomicU32::new(1);

/// For the limits benchmark only (`dsr bench limits`, whose fakes enforce the same): every
/// limiter made after this keeps `scale`d limits, so a run reaches a vendor's steady rate in
/// seconds rather than ten minutes, and is over in a minute or two.
pub fn scale_limits_for_benchmark(scale: Scale) {
    SCALE_BURST.store(scale.burst.max(1), Ordering::Relaxed);
    SCALE_SPEED.store(scale.speed.max(1), Ordering::Relaxed);
}

fn benchmark_scale() -> Scale {
    Scale {
        burst: SCALE_BURST.load(Ordering::Relaxed),
        speed: SCALE_SPEED.load(Ordering::Relaxed),
    }
}

impl RateLimiter {
    pub fn new(limits: Limits) -> RateLimiter {
        let limits = limits.scaled(benchmark_scale());
        RateLimiter {
            limits: Limits {
                concurrent: limits.concurrent.max(1),
                requests: limits.requests.max(1),
                ..limits
            },
            windows: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Takes a call from `key`'s window in this process, or answers how long to wait.
    fn take_local(&self, key: &str) -> Option<Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        windows
            .entry(key.to_string())
            .or_default()
            .take(std::time::Instant::now(), &self.limits)
    }

    /// This limiter takes its budget from `backend` too (instead of the process's).
    pub fn with_shared(mut self, backend: Arc<dyn SharedLimits>) -> RateLimiter {
        self.shared = Some(backend);
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut map = self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.concurrent)))
            .clone()
    }

    /// Waits until `key` may send another request.
    pub async fn acquire(&self, key: &str) -> Permit {
        self.acquire_in("", key).await
    }

    /// Waits until `key` of `scope` (the processor) may send another request: within this
    /// process, then in the shared backend if there is one.
    pub async fn acquire_in(&self, scope: &str, key: &str) -> Permit {
        let semaphore = self.semaphore(key);
        // The semaphores are never closed, so acquiring only waits.
        let permit = semaphore.acquire_owned().await.ok();
        while let Some(wait) = self.take_local(key) {
            tokio::time::sleep(wait).await;
        }
        let shared = match self.shared.clone().or_else(installed) {
            Some(backend) => {
                let key = format!("{scope}/{}/{key}", self.limits.signature());
                self.take_shared(backend, key).await
            }
            None => None,
        };
        Permit {
            _permit: permit,
            _shared: shared,
        }
    }

    async fn take_shared(&self, backend: Arc<dyn SharedLimits>, key: String) -> Option<SharedPlace> {
        let holder = holder_name();
        let mut pause = Duration::from_millis(2);
        let mut tries = 0u64;
        loop {
            match backend.take_place(&key, &holder, self.limits, PLACE_LEASE).await {
                Ok(true) => break,
                Ok(false) => {
                    tries += 1;
                    tokio::time::sleep(spread(pause, tries)).await;
                    pause = (pause * 2).min(MOST_PLACE_PAUSE);
                }
                Err(e) => {
                    warn_unshared(&e);
                    return None;
                }
            }
        }
        let renewal = {
            let (backend, key, holder) = (backend.clone(), key.clone(), holder.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PLACE_LEASE / 3).await;
                    if let Err(e) = backend.renew_place(&key, &holder, PLACE_LEASE).await {
                        tracing::debug!(error = %e, "could not renew a shared place in flight");
                    }
                }
            })
        };
        let place = SharedPlace {
            backend: backend.clone(),
            key,
            holder,
            renewal,
        };
        loop {
            match backend.take_rate(&place.key, self.limits).await {
                Ok(None) => return Some(place),
                Ok(Some(wait)) => tokio::time::sleep(wait.min(self.limits.per)).await,
                Err(e) => {
                    warn_unshared(&e);
                    return Some(place);
                }
            }
        }
    }

    /// Whether `key` could send right now without waiting (uses up the rate if so). Local
    /// only: for tests of the process's own limits.
    pub fn try_acquire(&self, key: &str) -> Option<Permit> {
        let permit = self.semaphore(key).try_acquire_owned().ok()?;
        if self.take_local(key).is_some() {
            return None;
        }
        Some(Permit {
            _permit: Some(permit),
            _shared: None,
        })
    }
}

/// [`SharedLimits`] held in this process: what the Redis backend does, for tests of the
/// limiter's use of a backend (two limiters sharing one budget as two workers would).
#[derive(Default)]
pub struct MemoryLimits {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    /// The calls within the last window, per key.
    windows: HashMap<String, Window>,
    /// Places in flight per key: holder and when the lease ends.
    places: HashMap<String, HashMap<String, std::time::Instant>>,
}

impl MemoryLimits {
    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl SharedLimits for MemoryLimits {
    async fn take_rate(&self, key: &str, limits: Limits) -> Result<Option<Duration>, SharedLimitError> {
        let now = std::time::Instant::now();
        Ok(self
            .state()
            .windows
            .entry(key.to_string())
            .or_default()
            .take(now, &limits))
    }

    async fn take_place(
        &self,
        key: &str,
        holder: &str,
        limits: Limits,
        lease: Duration,
    ) -> Result<bool, SharedLimitError> {
        let now = std::time::Instant::now();
        let mut state = self.state();
        let places = state.places.entry(key.to_string()).or_default();
        places.retain(|_, until| *until > now);
        if places.contains_key(holder) || places.len() < limits.concurrent {
            places.insert(holder.to_string(), now + lease);
            return Ok(true);
        }
        Ok(false)
    }

    async fn renew_place(&self, key: &str, holder: &str, lease: Duration) -> Result<(), SharedLimitError> {
        let now = std::time::Instant::now();
        if let Some(until) = self.state().places.get_mut(key).and_then(|p| p.get_mut(holder)) {
            *until = now + lease;
        }
        Ok(())
    }

    async fn release_place(&self, key: &str, holder: &str) -> Result<(), SharedLimitError> {
        if let Some(places) = self.state().places.get_mut(key) {
            places.remove(holder);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_and_concurrency_are_limited_per_key() {
        // Three an hour: the three at once, then the fourth waits for the first to leave.
        let limiter = RateLimiter::new(Limits {
            requests: 3,
            per: Duration::from_secs(3600),
            concurrent: 10,
        });
        let held: Vec<_> = (0..3)
            .map(|_| limiter.try_acquire("mailbox-a").expect("within the window's count"))
            .collect();
        assert!(
            limiter.try_acquire("mailbox-a").is_none(),
            "the fourth request in the hour must wait"
        );
        assert!(
            limiter.try_acquire("mailbox-b").is_some(),
            "another key has its own budget"
        );
        drop(held);

        let limiter = RateLimiter::new(Limits {
            requests: 1000,
            per: Duration::from_secs(1),
            concurrent: 2,
        });
        let a = limiter.try_acquire("m").unwrap();
        let _b = limiter.try_acquire("m").unwrap();
        assert!(limiter.try_acquire("m").is_none(), "two in flight at most");
        drop(a);
        assert!(limiter.try_acquire("m").is_some(), "a finished request frees its place");
    }

    /// Two limiters sharing one backend (two workers on one Redis) hold four places
    /// together, not four each, and a freed place lets a waiting one through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_limiters_sharing_a_backend_hold_the_limit_together() {
        let backend: Arc<dyn SharedLimits> = Arc::new(MemoryLimits::default());
        let limits = Limits {
            requests: 10_000,
            per: Duration::from_secs(1),
            concurrent: 4,
        };
        let one = Arc::new(RateLimiter::new(limits).with_shared(backend.clone()));
        let two = Arc::new(RateLimiter::new(limits).with_shared(backend.clone()));
        let mut held = Vec::new();
        for i in 0..4 {
            let limiter = if i % 2 == 0 { &one } else { &two };
            held.push(limiter.acquire_in("microsoft365", "mailbox").await);
        }
        let fifth = {
            let two = two.clone();
            tokio::spawn(async move { two.acquire_in("microsoft365", "mailbox").await })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !fifth.is_finished(),
            "a fifth call waits while four are in flight across both"
        );
        // Another key has its own places.
        let _other = tokio::time::timeout(Duration::from_secs(5), one.acquire_in("microsoft365", "other"))
            .await
            .expect("another mailbox is not held up");
        held.pop();
        let fifth = tokio::time::timeout(Duration::from_secs(5), fifth)
            .await
            .expect("a freed place lets the waiting call through")
            .unwrap();
        drop(fifth);
    }

    /// A place whose holder stops renewing it (a worker killed) is free once its lease ends.
    #[tokio::test]
    async fn a_place_nobody_renews_expires() {
        let backend = MemoryLimits::default();
        let limits = Limits {
            requests: 100,
            per: Duration::from_secs(1),
            concurrent: 1,
        };
        let lease = Duration::from_millis(50);
        assert!(backend.take_place("k", "dead", limits, lease).await.unwrap());
        assert!(
            !backend.take_place("k", "live", limits, lease).await.unwrap(),
            "the place is held"
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            backend.take_place("k", "live", limits, lease).await.unwrap(),
            "the dead holder's lease ran out"
        );
    }

    #[test]
    fn a_scaled_limit_has_a_smaller_burst_and_a_faster_clock() {
        let graph = Limits {
            requests: 10_000,
            per: Duration::from_secs(600),
            concurrent: 4,
        };
        let smaller = graph.scaled(Scale { burst: 20, speed: 1 });
        assert_eq!(smaller.requests, 500);
        assert_eq!(smaller.per, Duration::from_secs(30));
        assert_eq!(
            smaller.requests as f64 / smaller.per.as_secs_f64(),
            graph.requests as f64 / graph.per.as_secs_f64(),
            "the same rate"
        );
        let faster = graph.scaled(Scale { burst: 20, speed: 3 });
        assert_eq!(faster.requests, 500);
        assert_eq!(faster.per, Duration::from_secs(10));
        assert_eq!(faster.concurrent, 4);
        assert_eq!(graph.scaled(Scale::NONE), graph);
        assert_eq!(graph.scaled(Scale { burst: 0, speed: 0 }), graph);
    }

    /// A window never holds more than the vendor's count less what is kept in hand, and
    /// holds all of that at once; the next call waits for the oldest to leave the window.
    #[test]
    fn a_window_takes_its_count_at_once_then_waits_for_the_oldest_to_leave() {
        for (requests, in_hand) in [(10_000, 250), (500, 12), (200, 5), (39, 0), (3, 0), (1, 0)] {
            let limits = Limits {
                requests,
                per: Duration::from_secs(60),
                concurrent: 1,
            };
            assert_eq!(limits.window_count(), requests - in_hand, "{requests}");
        }
        let limits = Limits {
            requests: 80,
            per: Duration::from_secs(40),
            concurrent: 1,
        };
        let mut window = Window::default();
        let start = std::time::Instant::now();
        for n in 0..78u64 {
            assert_eq!(window.take(start + Duration::from_millis(n), &limits), None, "call {n}");
        }
        let wait = window
            .take(start + Duration::from_secs(10), &limits)
            .expect("the window is full");
        assert_eq!(wait, Duration::from_secs(30), "until the first call is 40 s old");
        assert_eq!(
            window.take(start + Duration::from_secs(40), &limits),
            None,
            "the first has left"
        );
        assert!(
            window.take(start + Duration::from_secs(40), &limits).is_some(),
            "one left, one came"
        );
    }

    /// The shared backend counts the same window for every limiter that uses it.
    #[tokio::test]
    async fn the_shared_window_is_one_for_every_limiter() {
        let backend = MemoryLimits::default();
        let limits = Limits {
            requests: 2,
            per: Duration::from_secs(40),
            concurrent: 10,
        };
        for _ in 0..2 {
            assert_eq!(backend.take_rate("k", limits).await.unwrap(), None, "within the count");
        }
        let wait = backend
            .take_rate("k", limits)
            .await
            .unwrap()
            .expect("the window is full");
        assert!(
            wait > Duration::from_secs(39) && wait <= Duration::from_secs(40),
            "{wait:?}"
        );
        assert_eq!(backend.take_rate("other", limits).await.unwrap(), None);
    }
}
