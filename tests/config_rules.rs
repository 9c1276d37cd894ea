//! The rules `dsr.toml` is held to, through the real binary: an old unit-suffixed key still
//! works and warns naming the key that replaces it, an old key beside its replacement is
//! refused, and a value out of its range, an unknown language or time zone and a span of
//! time without a known unit are refused with exit 2, naming the key and what is allowed.

mod util;

use std::process::Output;
use std::time::{Duration, Instant};

use util::{Deployment, SEEDED_EMAIL, stderr, task};

/// A SQLite deployment with `extra`, its config's `was` replaced by `now`.
fn edited(extra: &str, was: &str, now: &str) -> Deployment {
    let d = Deployment::sqlite(extra);
    let text = std::fs::read_to_string(&d.config).expect("config");
    assert!(
        text.contains(was),
        "the test deployment no longer writes {was}:\n{text}"
    );
    std::fs::write(&d.config, text.replacen(was, now, 1)).expect("write config");
    d
}

/// `dsr doctor` refused the config: exit 2 and every one of `words` in its message.
fn assert_refused(out: &Output, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "bad config is exit 2: {err}");
    for word in words {
        assert!(err.contains(word), "the error names {word}: {err}");
    }
}

fn deprecations(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|line| line.contains("deprecated"))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_old_key_still_works_and_warns_naming_the_new_key() {
    // The slow first attempt would hold `dsr run` for 30 s unless the old key's one-second
    // limit took effect: stopped once, then done.
    let d = Deployment::sqlite(
        "task_timeout_secs = 1\nconcurrency = 1\n[test_connector.wix]\ndelay_ms = 30000\ndelay_attempts = 1\n",
    );
    let started = Instant::now();
    let out = d
        .command()
        .args(["--json", "run", "access", "--email", SEEDED_EMAIL])
        .args(["--processor", "wix", "--timeout", "60s"])
        .output()
        .expect("run dsr");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "task_timeout_secs = 1 was not applied"
    );
    assert_eq!(
        deprecations(&out),
        ["warning: [worker] task_timeout_secs is deprecated: write task_timeout = \"1s\""],
        "one warning, for the one old key"
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("no JSON ({e}): {}", stderr(&out));
    });
    assert_eq!(out.status.code(), Some(0), "{status}");
    assert_eq!(task(&status, "wix")["attempts"], 2, "{status}");
}

#[test]
fn the_suites_own_deployments_use_no_old_key() {
    for d in [
        Deployment::sqlite(""),
        Deployment::shared("sqlite://ledger.db", "redis://127.0.0.1:1", "dsrtest", ""),
    ] {
        let out = d.dsr(&["doctor"]);
        assert!(deprecations(&out).is_empty(), "{}", stderr(&out));
    }
}

#[test]
fn an_old_key_beside_its_new_key_is_refused_naming_both() {
    let d = Deployment::sqlite("task_lease_secs = 5\n");
    assert_refused(
        &d.dsr(&["doctor"]),
        &["task_lease_secs and task_lease are both set", "remove task_lease_secs"],
    );
    // In a variable too: the file's `task_lease` and an old-style override.
    let d = Deployment::sqlite("");
    let out = d
        .command()
        .env("DSR_WORKER__TASK_LEASE_SECS", "5")
        .arg("doctor")
        .output()
        .expect("run dsr");
    assert_refused(&out, &["task_lease_secs and task_lease are both set"]);
}

#[test]
fn a_new_key_is_overridden_by_its_variable_and_checked_the_same() {
    let d = Deployment::sqlite("");
    let run = |value: &str| {
        d.command()
            .env("DSR_WORKER__TASK_LEASE", value)
            .args(["--json", "doctor"])
            .output()
            .expect("run dsr")
    };
    let out = run("30s");
    assert!(out.status.code() != Some(2), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DSR_WORKER__TASK_LEASE"));
    assert_refused(
        &run("0s"),
        &["worker.task_lease = \"0s\" is out of range: allowed 1s to 1d"],
    );
    assert_refused(&run("30"), &["worker.task_lease", "30 has no unit"]);
}

#[test]
fn an_out_of_range_value_is_refused_with_the_allowed_range() {
    for (extra, words) in [
        (
            "concurrency = 0\n",
            "worker.concurrency = 0 is out of range: allowed 1 to 256",
        ),
        (
            "max_attempts = 101\n",
            "worker.max_attempts = 101 is out of range: allowed 1 to 100",
        ),
        (
            "deadline_warning = \"45d\"\n",
            "worker.deadline_warning = \"45d\" is out of range: allowed 1d to 30d",
        ),
        // An old key's value is held to the range of the key that replaces it.
        (
            "[privacy]\npseudonymise_after_days = 4000\n",
            "privacy.pseudonymise_after = \"4000d\" is out of range: allowed 0s to 3650d",
        ),
    ] {
        let d = Deployment::sqlite(extra);
        assert_refused(&d.dsr(&["doctor"]), &[words]);
    }
    // …and the refusal names the old key the operator wrote.
    let d = Deployment::sqlite(
        "[privacy]
pseudonymise_after_days = 4000
",
    );
    assert_refused(
        &d.dsr(&["doctor"]),
        &["[privacy] pseudonymise_after_days is deprecated: write pseudonymise_after = \"4000d\""],
    );
    let d = edited("", "poll = \"50ms\"", "poll = \"5ms\"");
    assert_refused(
        &d.dsr(&["doctor"]),
        &["queue.poll = \"5ms\" is out of range: allowed 10ms to 1m"],
    );
}

#[test]
fn an_unknown_language_or_time_zone_is_refused_naming_the_allowed_values() {
    let d = Deployment::sqlite("[controller]\ndefault_language = \"de\"\n");
    assert_refused(
        &d.dsr(&["doctor"]),
        &["controller.default_language", "`de`", "`nb`", "`en`"],
    );
    let d = Deployment::sqlite("[controller]\ntime_zone = \"Europe/Olso\"\n");
    assert_refused(
        &d.dsr(&["doctor"]),
        &["controller.time_zone", "Europe/Olso", "IANA time zone", "Europe/Oslo"],
    );
}

#[test]
fn a_span_of_time_with_a_bad_unit_is_refused_naming_the_key() {
    let d = edited("", "poll = \"50ms\"", "poll = \"50 parsecs\"");
    assert_refused(
        &d.dsr(&["doctor"]),
        &["queue.poll", "`50 parsecs` is not a span of time", "\"30s\""],
    );
    let d = Deployment::sqlite("give_up_after = 300\n");
    assert_refused(&d.dsr(&["doctor"]), &["worker.give_up_after", "300 has no unit"]);
}

#[test]
fn the_config_dsr_init_writes_uses_no_old_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("dsr.toml");
    let run = |args: &[&str]| {
        std::process::Command::new(util::dsr_bin())
            .current_dir(dir.path())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("DSR_CONFIG")
            .output()
            .expect("run dsr")
    };
    let out = run(&["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["doctor"]);
    assert!(out.status.code() != Some(2), "{}", stderr(&out));
    assert!(deprecations(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_processor_section_with_two_kinds_of_credentials_is_refused_listing_the_allowed_ones() {
    let d = Deployment::sqlite(
        "[processors.wix]\nsite_id = \"site-1\"\napi_key = \"env:DSR_WIX_KEY\"\n\
         client_id = \"app-1\"\nclient_secret = \"env:DSR_WIX_SECRET\"\ninstance_id = \"inst-1\"\n",
    );
    let out = d.dsr(&["doctor"]);
    assert_refused(
        &out,
        &[
            "processors.wix",
            "api_key",
            "client_id, client_secret and instance_id",
            "not both",
        ],
    );
    // Half an app is refused as well, naming what is missing.
    let d = Deployment::sqlite("[processors.wix]\nsite_id = \"site-1\"\nclient_id = \"app-1\"\n");
    assert_refused(&d.dsr(&["doctor"]), &["processors.wix", "client_secret", "instance_id"]);
}

#[test]
fn a_processors_old_duration_key_warns_naming_the_new_key() {
    let d = Deployment::sqlite(
        "[processors.google]\nservice_account_key = \"file:/nonexistent/sa.json\"\nbigquery_wait_secs = 90\n",
    );
    let out = d.dsr(&["doctor"]);
    let warnings = deprecations(&out);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("bigquery_wait_secs") && w.contains("bigquery_wait = \"1m 30s\"")),
        "{warnings:?}\n{}",
        stderr(&out)
    );
}
