//! Exponential backoff with full jitter, never sooner than a vendor's Retry-After.

use std::time::Duration;

use rand::Rng;

/// The wait before attempt `attempt + 1`: a random point in [base·2^(attempt-1)/2,
/// base·2^(attempt-1)], capped at `max`, and at least `retry_after` when the vendor gave one.
pub fn delay(attempt: u32, base: Duration, max: Duration, retry_after: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
    let ceiling = exp.min(max);
    let half = ceiling / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    let wait = half + Duration::from_millis(jitter);
    match retry_after {
        Some(after) if after > wait => after,
        _ => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_its_cap_and_honours_retry_after() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for _ in 0..50 {
            let first = delay(1, base, max, None);
            assert!(
                first >= Duration::from_secs(1) && first <= Duration::from_millis(2001),
                "{first:?}"
            );
            let fourth = delay(4, base, max, None);
            assert!(
                fourth >= Duration::from_secs(8) && fourth <= Duration::from_millis(16001),
                "{fourth:?}"
            );
            let late = delay(30, base, max, None);
            assert!(late <= Duration::from_millis(60001), "{late:?}");
        }
        let asked = Duration::from_millis(90_500);
        assert_eq!(delay(1, base, max, Some(asked)), asked);
    }
}
