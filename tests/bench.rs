//! `dsr bench` keeps working: each benchmark is run in a tiny variant and its output checked
//! for the figures it promises. Nothing here is timed — the goals are read by a person from
//! `dsr bench all`, never asserted by a test.

use std::process::{Command, Output};

fn dsr(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsr"))
        .args(args)
        .current_dir(dir)
        .env_remove("DSR_CONFIG")
        // Quick polls: the test checks what is printed, not how fast.
        .env("DSR_QUEUE__POLL", "20ms")
        .output()
        .expect("dsr runs")
}

#[test]
fn fanout_prints_calls_per_processor_and_a_ratio_to_the_critical_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = dsr(dir.path(), &["bench", "fanout", "--latency", "2ms"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // The summary row: a ratio (a number and `x`) beside the goal.
    let row = stdout
        .lines()
        .find(|l| l.starts_with("fanout") && l.contains("wall / critical path, all 4 together"))
        .unwrap_or_else(|| panic!("no ratio line for the four together:\n{stdout}"));
    let ratio: f64 = row
        .split_whitespace()
        .find_map(|w| w.strip_suffix('x').and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no ratio in {row:?}"));
    assert!(ratio > 0.0, "{row}");
    assert!(row.contains("<= 1.5"), "the goal is printed beside it: {row}");
    assert!(row.contains("met") || row.contains("MISSED"), "{row}");

    // Every processor made calls that its fake logged, and has a critical path.
    for processor in ["google", "microsoft365", "superoffice", "wix"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(processor) && l.starts_with("  "))
            .unwrap_or_else(|| panic!("no line for {processor}:\n{stdout}"));
        let calls: usize = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no call count in {line:?}"));
        assert!(calls > 0, "{processor} made no calls: {line}");
        assert!(line.contains(" x 2 ms"), "{processor}: no critical path: {line}");
        let alone = format!("wall / critical path, {processor} alone");
        assert!(stdout.contains(&alone), "no run of {processor} alone:\n{stdout}");
    }
    assert!(
        stdout.contains("critical path: per processor"),
        "the method is said:\n{stdout}"
    );
    assert!(!stdout.contains("kari.nordmann"), "the subject is never printed");
}

#[test]
fn the_queue_benchmark_says_when_redis_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dsr(dir.path(), &["bench", "queue", "--redis", "redis://127.0.0.1:1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs Redis") && stderr.contains("redis://127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn bad_bench_arguments_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dsr(dir.path(), &["bench", "footprint", "--backlog", "1000,100"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ascending"), "{stderr}");
    let out = dsr(dir.path(), &["bench", "fanout", "--latency", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--latency"));
}

#[test]
fn the_queue_benchmark_prints_a_ratio_and_leaves_no_keys_behind() {
    let redis = std::env::var("DSRTEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let dir = tempfile::tempdir().unwrap();
    let out = dsr(
        dir.path(),
        &[
            "bench",
            "queue",
            "--requests",
            "2",
            "--processor",
            "wix",
            "--redis",
            &redis,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("queue") && l.contains("dsr / no-op requests/s, 2 at wix"))
        .unwrap_or_else(|| panic!("no ratio line:\n{stdout}"));
    assert!(
        row.split_whitespace()
            .any(|w| w.strip_suffix('x').is_some_and(|n| n.parse::<f64>().is_ok())),
        "{row}"
    );
    assert!(row.contains(">= 0.5"), "{row}");
    // The connectors alone, measured beside both: dsr's ceiling and what its plumbing costs.
    // The three ratios are of the same three rates: dsr / no-op = (alone / no-op) × (dsr /
    // alone), within the rounding of their two decimals.
    let ratio_of = |figure: &str| -> f64 {
        let row = stdout
            .lines()
            .find(|l| l.starts_with("queue") && l.contains(figure))
            .unwrap_or_else(|| panic!("no {figure:?} line:\n{stdout}"));
        row.split_whitespace()
            .find_map(|w| w.strip_suffix('x').and_then(|n| n.parse().ok()))
            .unwrap_or_else(|| panic!("no ratio in {row}"))
    };
    let whole = ratio_of("dsr / no-op requests/s, 2 at wix");
    let ceiling = ratio_of("connectors alone / no-op, 2 at wix");
    let plumbing = ratio_of("dsr / connectors alone, 2 at wix");
    assert!(ceiling > 0.0 && plumbing >= 0.0, "{stdout}");
    assert!(
        (ceiling * plumbing - whole).abs() <= 0.005 * (ceiling + plumbing + 1.0) + 1e-9,
        "{ceiling} × {plumbing} should be {whole}:\n{stdout}"
    );
    let alone = stdout
        .lines()
        .find(|l| l.starts_with("the connectors alone, no queue"))
        .unwrap_or_else(|| panic!("no line for the connectors alone:\n{stdout}"));
    assert!(alone.ends_with("requests/s"), "{alone}");

    // It names the prefix it used and removed; nothing under it is left.
    let removed = stdout
        .lines()
        .find(|l| l.starts_with("removed the benchmark's"))
        .unwrap_or_else(|| panic!("no cleanup line:\n{stdout}"));
    let prefix = removed
        .rsplit_once("(prefix ")
        .and_then(|(_, p)| p.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no prefix in {removed:?}"));
    let count: usize = removed.split_whitespace().nth(3).and_then(|n| n.parse().ok()).unwrap();
    assert!(count > 0, "the jobs were under the prefix: {removed}");
    let mut conn = redis::Client::open(redis.as_str()).unwrap().get_connection().unwrap();
    let left: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut conn).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_export_benchmark_streams_attachments_through_a_worker_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let out = dsr(
        dir.path(),
        &[
            "bench",
            "export",
            "--size",
            "8MiB",
            "--dir",
            scratch.path().to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The request went through the worker: the bundle holds the sixteen attachments.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("attachments"))
        .unwrap_or_else(|| panic!("no attachments line:\n{stdout}"));
    assert!(line.contains("8 MiB in 16 files"), "{line}");
    let bundle: f64 = line
        .split("(bundle ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bundle size: {line}"));
    assert!(
        bundle >= 8.0,
        "noise does not compress: the bundle holds every byte: {line}"
    );
    let peak = stdout
        .lines()
        .find(|l| l.starts_with("export") && l.contains("worker peak RSS") && l.contains("<= 100"))
        .unwrap_or_else(|| panic!("no peak RSS row:\n{stdout}"));
    assert!(peak.contains("met") || peak.contains("MISSED"), "{peak}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("throughput vs zip -1 (through the connector)") && l.contains(">= 1.8")),
        "{stdout}"
    );
    assert!(!stdout.contains("kari.nordmann"), "the subject is never printed");
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "the scratch folder is removed: {left:?}");
}
