//! What this process's calls to the vendors did, for `/metrics`: calls by processor and
//! status class with a latency histogram, 429s, and the time spent waiting for a rate limit,
//! a place in flight or a vendor's Retry-After. Counted in memory from the start of the
//! process (a Prometheus counter's meaning); no identifier, URL or body is kept.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The histogram's upper bounds, in seconds.
pub const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone, Default)]
struct Latency {
    /// Calls at or under each bound of [`BUCKETS`] (not yet cumulative).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Counts {
    /// (processor, status class: 2xx, 3xx, 4xx, 5xx, error) → calls.
    calls: BTreeMap<(&'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Latency>,
    throttled: BTreeMap<&'static str, u64>,
    waited: BTreeMap<&'static str, f64>,
}

static COUNTS: Mutex<Counts> = Mutex::new(Counts {
    calls: BTreeMap::new(),
    latency: BTreeMap::new(),
    throttled: BTreeMap::new(),
    waited: BTreeMap::new(),
});

fn counts() -> std::sync::MutexGuard<'static, Counts> {
    COUNTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A call answered with `status` (None: no answer — a timeout, a refused connection) after
/// `took`.
pub fn call(processor: &'static str, status: Option<u16>, took: Duration) {
    let class = match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    };
    let mut counts = counts();
    *counts.calls.entry((processor, class)).or_default() += 1;
    if status == Some(429) {
        *counts.throttled.entry(processor).or_default() += 1;
    }
    let secs = took.as_secs_f64();
    let latency = counts.latency.entry(processor).or_default();
    latency.count += 1;
    latency.sum += secs;
    if let Some(at) = BUCKETS.iter().position(|bound| secs <= *bound) {
        latency.buckets[at] += 1;
    }
}

/// Time spent before a call could go: a rate limit, a place in flight, a Retry-After.
pub fn waited(processor: &'static str, wait: Duration) {
    if !wait.is_zero() {
        *counts().waited.entry(processor).or_default() += wait.as_secs_f64();
    }
}

/// Appends the counts in Prometheus's text format.
pub fn render(out: &mut String) {
    let counts = counts();
    let _ = writeln!(
        out,
        "# HELP dsr_vendor_calls_total Calls this process made to vendors, by processor and status class.\n\
         # TYPE dsr_vendor_calls_total counter"
    );
    for ((processor, class), n) in &counts.calls {
        let _ = writeln!(
            out,
            "dsr_vendor_calls_total{{processor=\"{processor}\",class=\"{class}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP dsr_vendor_call_seconds How long vendors took to answer this process's calls.\n\
         # TYPE dsr_vendor_call_seconds histogram"
    );
    for (processor, latency) in &counts.latency {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(latency.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "dsr_vendor_call_seconds_bucket{{processor=\"{processor}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "dsr_vendor_call_seconds_bucket{{processor=\"{processor}\",le=\"+Inf\"}} {}\n\
             dsr_vendor_call_seconds_sum{{processor=\"{processor}\"}} {}\n\
             dsr_vendor_call_seconds_count{{processor=\"{processor}\"}} {}",
            latency.count, latency.sum, latency.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP dsr_vendor_throttled_total Calls a vendor answered 429 (too many requests).\n\
         # TYPE dsr_vendor_throttled_total counter"
    );
    for (processor, n) in &counts.throttled {
        let _ = writeln!(out, "dsr_vendor_throttled_total{{processor=\"{processor}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP dsr_vendor_wait_seconds_total Time calls waited for a rate limit, a place in flight or a Retry-After.\n\
         # TYPE dsr_vendor_wait_seconds_total counter"
    );
    for (processor, secs) in &counts.waited {
        let _ = writeln!(out, "dsr_vendor_wait_seconds_total{{processor=\"{processor}\"}} {secs}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_class_with_a_cumulative_histogram() {
        call("metrics-test", Some(200), Duration::from_millis(30));
        call("metrics-test", Some(429), Duration::from_millis(2));
        call("metrics-test", None, Duration::from_secs(20));
        waited("metrics-test", Duration::from_millis(1500));
        let mut out = String::new();
        render(&mut out);
        for line in [
            "dsr_vendor_calls_total{processor=\"metrics-test\",class=\"2xx\"} 1",
            "dsr_vendor_calls_total{processor=\"metrics-test\",class=\"4xx\"} 1",
            "dsr_vendor_calls_total{processor=\"metrics-test\",class=\"error\"} 1",
            "dsr_vendor_throttled_total{processor=\"metrics-test\"} 1",
            "dsr_vendor_call_seconds_bucket{processor=\"metrics-test\",le=\"0.005\"} 1",
            "dsr_vendor_call_seconds_bucket{processor=\"metrics-test\",le=\"0.05\"} 2",
            "dsr_vendor_call_seconds_bucket{processor=\"metrics-test\",le=\"10\"} 2",
            "dsr_vendor_call_seconds_bucket{processor=\"metrics-test\",le=\"+Inf\"} 3",
            "dsr_vendor_call_seconds_count{processor=\"metrics-test\"} 3",
            "dsr_vendor_wait_seconds_total{processor=\"metrics-test\"} 1.5",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}:\n{out}");
        }
    }
}
