//! Exponential backoff with full jitter, never sooner than a vendor's Retry-After.
//!
//! Full jitter as AWS describes it ("Exponential Backoff And Jitter",
//! <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>): the wait is
//! drawn uniformly between zero and the capped exponential `min(max, base·2^(attempt-1))`, so
//! workers that failed together spread out instead of retrying in step. The capped
//! exponential comes from backon (already in the tree through redis); the draw is ours,
//! because backon's own jitter adds up to one more delay on top instead of drawing below it.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Past this many doublings any cap is reached; stepping further would only cost time.
const DOUBLINGS: usize = 64;

/// The wait before attempt `attempt + 1`: a random point in [0, min(max, base·2^(attempt-1))],
/// and at least `retry_after` when the vendor gave one (even above `max`: the vendor knows
/// when it will answer again).
pub fn delay(attempt: u32, base: Duration, max: Duration, retry_after: Option<Duration>) -> Duration {
    let ceiling = ceiling(attempt, base, max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    let wait = Duration::from_nanos(rand::random_range(0..=nanos));
    match retry_after {
        Some(after) if after > wait => after,
        _ => wait,
    }
}

/// The capped exponential: `base` for the first attempt (and for attempt 0), doubling each
/// attempt after, never above `max`.
fn ceiling(attempt: u32, base: Duration, max: Duration) -> Duration {
    let step = usize::try_from(attempt.saturating_sub(1)).map_or(DOUBLINGS, |s| s.min(DOUBLINGS));
    ExponentialBuilder::new()
        .with_min_delay(base)
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
        .build()
        .nth(step)
        .unwrap_or(max)
        // backon yields its first delay uncapped: a base above max is still capped here.
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: usize = 4000;

    fn samples(attempt: u32, base: Duration, max: Duration, after: Option<Duration>) -> Vec<Duration> {
        (0..SAMPLES).map(|_| delay(attempt, base, max, after)).collect()
    }

    #[test]
    fn the_ceiling_doubles_from_base_up_to_its_cap() {
        let (base, max) = (Duration::from_secs(2), Duration::from_secs(60));
        let ceilings: Vec<u64> = [0, 1, 2, 3, 4, 5, 6, 30, u32::MAX]
            .into_iter()
            .map(|a| ceiling(a, base, max).as_secs())
            .collect();
        assert_eq!(ceilings, [2, 2, 4, 8, 16, 32, 60, 60, 60]);
        let half_second = Duration::from_millis(500);
        assert_eq!(ceiling(3, half_second, Duration::from_secs(30)), Duration::from_secs(2));
        assert_eq!(
            ceiling(1, Duration::from_secs(90), max),
            max,
            "a base above the cap is capped"
        );
        assert_eq!(ceiling(7, Duration::ZERO, max), Duration::ZERO);
    }

    /// Full jitter: over many draws the waits reach from near zero to near the capped
    /// exponential, and never above it.
    #[test]
    fn waits_spread_from_zero_to_the_capped_exponential() {
        let (base, max) = (Duration::from_secs(2), Duration::from_secs(60));
        for (attempt, cap) in [(1, 2), (4, 16), (30, 60)] {
            let cap = Duration::from_secs(cap);
            let waits = samples(attempt, base, max, None);
            let (low, high) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
            assert!(*high <= cap, "attempt {attempt}: {high:?} above the cap {cap:?}");
            assert!(*low < cap / 20, "attempt {attempt}: nothing near zero, lowest {low:?}");
            assert!(
                *high > cap * 19 / 20,
                "attempt {attempt}: nothing near the cap, highest {high:?}"
            );
            let below_half = waits.iter().filter(|w| **w < cap / 2).count();
            assert!(
                (SAMPLES * 2 / 5..SAMPLES * 3 / 5).contains(&below_half),
                "attempt {attempt}: {below_half} of {SAMPLES} below half the cap; uniform puts about half there"
            );
        }
    }

    #[test]
    fn never_sooner_than_the_vendors_retry_after() {
        let (base, max) = (Duration::from_secs(2), Duration::from_secs(60));
        let floor = Duration::from_secs(5);
        let waits = samples(4, base, max, Some(floor));
        assert!(
            waits.iter().all(|w| *w >= floor && *w <= Duration::from_secs(16)),
            "{waits:?}"
        );
        assert!(waits.contains(&floor), "draws below the floor wait exactly the floor");
        assert!(
            waits.iter().any(|w| *w > floor * 2),
            "draws above the floor stay random"
        );
        // A Retry-After beyond the cap is honoured as given.
        let asked = Duration::from_millis(90_500);
        assert!(samples(1, base, max, Some(asked)).iter().all(|w| *w == asked));
        assert!(samples(30, base, max, Some(Duration::ZERO)).iter().all(|w| *w <= max));
    }
}
