//! Client-side rate limits per key (a mailbox, a property): a request rate with a burst, and
//! a cap on requests in flight (Graph allows four concurrent requests per mailbox).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `requests` per `per`, at most `concurrent` at once, per key.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub requests: u32,
    pub per: Duration,
    pub concurrent: usize,
}

pub struct RateLimiter {
    rate: DefaultKeyedRateLimiter<String>,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
    concurrent: usize,
}

/// Holds a place in flight for one request; dropping it frees the place.
pub struct Permit {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> RateLimiter {
        let requests = NonZeroU32::new(limits.requests.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = (limits.per / requests.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(requests))
            .allow_burst(requests);
        RateLimiter {
            rate: governor::RateLimiter::keyed(quota),
            in_flight: Mutex::new(HashMap::new()),
            concurrent: limits.concurrent.max(1),
        }
    }

    fn semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut map = self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrent)))
            .clone()
    }

    /// Waits until `key` may send another request.
    pub async fn acquire(&self, key: &str) -> Permit {
        let semaphore = self.semaphore(key);
        // The semaphores are never closed, so acquiring only waits.
        let permit = semaphore.acquire_owned().await.ok();
        self.rate.until_key_ready(&key.to_string()).await;
        Permit { _permit: permit }
    }

    /// Whether `key` could send right now without waiting (uses up the rate if so).
    pub fn try_acquire(&self, key: &str) -> Option<Permit> {
        let permit = self.semaphore(key).try_acquire_owned().ok()?;
        self.rate.check_key(&key.to_string()).ok()?;
        Some(Permit { _permit: Some(permit) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_and_concurrency_are_limited_per_key() {
        let limiter = RateLimiter::new(Limits {
            requests: 3,
            per: Duration::from_secs(3600),
            concurrent: 10,
        });
        let held: Vec<_> = (0..3)
            .map(|_| limiter.try_acquire("mailbox-a").expect("within the burst"))
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
}
