//! `dsr bench`: the performance goals of issue 23, each measured side by side in one run and
//! printed as a ratio. Goals are read by a person from these numbers (and recorded in
//! `docs/performance.md`), never checked by a timed test.

pub mod export;

/// Peak resident memory of this process so far, in KiB (Linux `VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
