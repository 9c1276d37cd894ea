//! One task cannot take a worker down, a task cannot run forever, and throttling is not
//! failure: the real binary with scripted connectors that panic, kill their worker, run
//! past the time limit, or answer 429 in bursts.

mod util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{Deployment, SEEDED_EMAIL, stderr, task};

/// A subject whose requests the scripted connector panics on (or aborts on).
const TROUBLE: &str = "ola.trouble@example.no";

/// A SQLite deployment with `worker` keys added to `[worker]` and `connectors` after it.
fn deployment(worker: &str, connectors: &str) -> Deployment {
    Deployment::sqlite(&format!("{worker}\n{connectors}"))
}

fn ledger_url(d: &Deployment) -> String {
    format!("sqlite://{}/data/ledger.db", d.path().display())
}

/// `dsr enqueue KIND --email EMAIL EXTRA…`: the request's id.
fn enqueue(d: &Deployment, kind: &str, email: &str, extra: &[&str]) -> String {
    let mut args = vec!["enqueue", kind, "--email", email];
    args.extend_from_slice(extra);
    let out = d.dsr(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `dsr worker`, its stderr into `log` (read after it stopped).
fn spawn_worker(d: &Deployment, log: &str) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.path().join(log))
        .expect("worker log");
    d.command()
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .expect("start worker")
}

/// Stops a worker even when the test fails.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn status(d: &Deployment, id: &str) -> Value {
    d.dsr_json(&["status", id]).1
}

/// Polls `dsr status` until the request ends (any terminal status), within `within`.
fn wait_ended(d: &Deployment, id: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let s = status(d, id);
        if ["completed", "partially_completed", "failed"].contains(&s["status"].as_str().unwrap_or("")) {
            return s;
        }
        assert!(
            started.elapsed() < within,
            "request {id} did not end within {within:?}: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn audit(d: &Deployment, id: &str) -> Vec<dsr_jobs::ledger::AuditEvent> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = dsr_jobs::Ledger::open(&ledger_url(d)).await.unwrap();
        let events = ledger.audit_events(id).await.unwrap();
        ledger.close().await;
        events
    })
}

fn budget_used(d: &Deployment, id: &str, processor: dsr_connector::Processor) -> u32 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = dsr_jobs::Ledger::open(&ledger_url(d)).await.unwrap();
        let used = ledger.budget_used(id, processor).await.unwrap().unwrap();
        ledger.close().await;
        used
    })
}

#[test]
fn a_panicking_connector_fails_its_task_and_the_worker_goes_on() {
    let d = deployment(
        "",
        &format!("[test_connector.wix]\npanic_on = \"{TROUBLE}\"\n[test_connector.google]\nrecords_per_email = 2\n"),
    );
    // Enqueued before the worker starts, so that it runs them side by side.
    let trouble = enqueue(&d, "erasure", TROUBLE, &[]);
    let others = [
        enqueue(&d, "access", SEEDED_EMAIL, &[]),
        enqueue(&d, "erasure", SEEDED_EMAIL, &[]),
    ];
    let mut worker = Worker(spawn_worker(&d, "worker.log"));

    let s = wait_ended(&d, &trouble, Duration::from_secs(60));
    assert_eq!(s["status"], "partially_completed", "{s}");
    let wix = task(&s, "wix");
    assert_eq!(wix["status"], "failed", "{wix}");
    assert_eq!(wix["attempts"], 1, "a panic is not retried: {wix}");
    let error = wix["error"].as_str().unwrap();
    assert!(
        error.contains("(panic)") && error.contains("a bug in dsr") && error.contains("report it"),
        "{error}"
    );
    assert!(error.contains("wix"), "the message names the processor: {error}");
    assert_eq!(
        task(&s, "google")["status"],
        "succeeded",
        "the same request's other task: {s}"
    );
    for id in &others {
        let s = wait_ended(&d, id, Duration::from_secs(60));
        assert_eq!(s["status"], "completed", "{s}");
    }

    // The worker is still up, and takes a request enqueued after the panic.
    assert!(worker.0.try_wait().unwrap().is_none(), "the worker died");
    let after = enqueue(&d, "erasure", "per.after@example.no", &[]);
    let s = wait_ended(&d, &after, Duration::from_secs(60));
    assert_eq!(s["status"], "completed", "{s}");
    // And a second panic, in an access request, is contained the same way.
    let again = enqueue(&d, "access", TROUBLE, &[]);
    let s = wait_ended(&d, &again, Duration::from_secs(60));
    assert_eq!(task(&s, "wix")["status"], "failed", "{s}");
    assert!(worker.0.try_wait().unwrap().is_none(), "the worker died");
    drop(worker);

    // The panic's text quotes the subject: it never reaches the log (debug only).
    let log = std::fs::read_to_string(d.path().join("worker.log")).unwrap();
    assert!(!log.contains(TROUBLE), "the panic's text leaked into the log: {log}");
    assert!(
        !log.contains("panicked at"),
        "the default panic message reached stderr: {log}"
    );
}

#[test]
fn a_task_that_kills_its_worker_three_times_ends_failed() {
    let d = deployment(
        "max_attempts = 3\ntask_lease = \"1s\"",
        &format!("[test_connector.wix]\nabort_process_on = \"{TROUBLE}\"\n[test_connector.google]\n"),
    );
    let text = std::fs::read_to_string(&d.config).unwrap();
    // The deployment's own task_lease = "3s" comes first: keep only ours.
    std::fs::write(&d.config, text.replacen("task_lease = \"3s\"\n", "", 1)).unwrap();
    let id = enqueue(&d, "erasure", TROUBLE, &["--processor", "wix"]);
    let started = Instant::now();
    let mut deaths = 0;
    let mut worker = Worker(spawn_worker(&d, "worker.log"));
    let s = loop {
        let s = status(&d, &id);
        if s["status"] == "failed" {
            break s;
        }
        if let Some(exit) = worker.0.try_wait().unwrap() {
            assert!(!exit.success(), "the worker stopped on its own: {exit}");
            deaths += 1;
            assert!(deaths <= 3, "the task killed a fourth worker: {s}");
            // As a supervisor would.
            worker = Worker(spawn_worker(&d, "worker.log"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the task did not end within 90 s ({deaths} worker deaths): {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(deaths, 3, "each attempt killed its worker: {s}");
    let wix = task(&s, "wix");
    assert_eq!(wix["status"], "failed", "{wix}");
    assert_eq!(wix["attempts"], 3, "no fourth attempt started: {wix}");
    let error = wix["error"].as_str().unwrap();
    assert!(
        error.contains("(abandoned)") && error.contains("stopped 3 time(s)") && error.contains("report it"),
        "{error}"
    );
    assert!(
        s["confirmation"].as_str().is_some(),
        "the request ended with its confirmation: {s}"
    );
    // The worker that ended it is still up, and works.
    let other = enqueue(&d, "erasure", SEEDED_EMAIL, &[]);
    assert_eq!(wait_ended(&d, &other, Duration::from_secs(60))["status"], "completed");
    assert!(worker.0.try_wait().unwrap().is_none(), "the last worker died");
    let abandoned = audit(&d, &id).iter().filter(|e| e.event == "task.abandoned").count();
    assert_eq!(abandoned, 3, "each dead attempt is on record");
}

#[test]
fn a_task_past_its_time_limit_is_stopped_and_retried_while_the_worker_goes_on() {
    // One job at a time: a task that were not stopped would hold the worker for 30 s.
    let d = deployment(
        "task_timeout = \"1s\"\nconcurrency = 1",
        "[test_connector.wix]\ndelay_ms = 30000\ndelay_attempts = 1\n[test_connector.google]\n",
    );
    let slow = enqueue(&d, "erasure", SEEDED_EMAIL, &["--processor", "wix"]);
    let other = enqueue(&d, "access", SEEDED_EMAIL, &["--processor", "google"]);
    let started = Instant::now();
    let _worker = Worker(spawn_worker(&d, "worker.log"));
    let s = wait_ended(&d, &other, Duration::from_secs(25));
    assert_eq!(s["status"], "completed", "{s}");
    let s = wait_ended(&d, &slow, Duration::from_secs(25));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the slow attempt was not stopped at task_timeout"
    );
    assert_eq!(s["status"], "completed", "{s}");
    let wix = task(&s, "wix");
    assert_eq!(wix["attempts"], 2, "stopped once, then done: {wix}");
    let events = audit(&d, &slow);
    let stopped = events
        .iter()
        .find(|e| e.event == "task.retrying")
        .unwrap_or_else(|| panic!("no retry on record: {events:?}"));
    assert_eq!(stopped.detail["code"], "retry_later:task_timeout");
    let note = stopped.note.as_deref().unwrap_or_default();
    assert!(note.contains("task_timeout (1 s)"), "{note}");
}

#[test]
fn throttling_bursts_spend_no_attempts() {
    // Four 429s and one real failure against a budget of two attempts: only the failure counts.
    let d = deployment(
        "max_attempts = 2",
        "[test_connector.wix]\nthrottle_attempts = 4\nfail_attempts = 1\nretry_after_ms = 100\n\
         [test_connector.google]\n",
    );
    let (code, s) = d.dsr_json(&[
        "run",
        "erasure",
        "--email",
        SEEDED_EMAIL,
        "--processor",
        "wix",
        "--timeout",
        "60s",
    ]);
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["status"], "completed", "{s}");
    let wix = task(&s, "wix");
    assert_eq!(wix["status"], "succeeded", "{wix}");
    assert_eq!(wix["attempts"], 6, "4 throttled, 1 failed, 1 done: {wix}");
    let id = s["id"].as_str().unwrap();
    assert_eq!(
        budget_used(&d, id, dsr_connector::Processor::Wix),
        2,
        "the failure and the success count; the throttled answers do not"
    );
    let events = audit(&d, id);
    let retried: Vec<&dsr_jobs::ledger::AuditEvent> = events.iter().filter(|e| e.event == "task.retrying").collect();
    assert_eq!(retried.len(), 5, "{retried:?}");
    let throttled = retried.iter().filter(|e| e.detail["throttled"] == true).count();
    assert_eq!(throttled, 4, "{retried:?}");
    assert!(
        retried[0]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("not counted against [worker] max_attempts")),
        "{retried:?}"
    );
}

/// The ledger's side of both rules on PostgreSQL (the binary tests above run on SQLite): a
/// take-over counts, a spent task whose worker stopped is failed, a throttled attempt is free.
#[tokio::test]
async fn the_attempt_rules_hold_on_postgresql() {
    use dsr_connector::Processor::Wix;
    use dsr_jobs::ledger::{Claimed, TaskResult};
    const LEASE: Duration = Duration::from_secs(60);
    let db = util::pg_database().await;
    let clock = dsr_jobs::clock::Clock::manual(chrono::Utc::now());
    let ledger = dsr_jobs::Ledger::open(&db.url).await.unwrap().with_clock(clock.clone());
    let new = util::request_for(SEEDED_EMAIL, dsr_jobs::model::RequestKind::Erasure, &[Wix], clock.now());
    ledger
        .create_request("p1", &new, clock.now() + chrono::Duration::days(30))
        .await
        .unwrap();
    let take = |owner: &'static str| ledger.claim_task_within("p1", Wix, owner, LEASE, 2);
    let Claimed::Taken(first) = take("w1").await.unwrap() else {
        panic!("not taken")
    };
    let throttled = TaskResult::Throttled {
        error: dsr_jobs::ledger::TaskError::new("retry_later:429", "throttled"),
        next_retry_at: clock.now(),
    };
    assert!(ledger.finish_task("p1", Wix, "w1", first, &throttled).await.unwrap());
    assert_eq!(ledger.budget_used("p1", Wix).await.unwrap(), Some(0));
    // Two workers in turn die holding it.
    for (owner, budget) in [("w2", 1), ("w3", 2)] {
        let Claimed::Taken(claim) = take(owner).await.unwrap() else {
            panic!("{owner} did not take it")
        };
        assert_eq!(claim.budget_used, budget);
        clock.advance(chrono::Duration::seconds(61));
    }
    assert_eq!(take("w4").await.unwrap(), Claimed::Abandoned);
    let wix = ledger.task("p1", Wix).await.unwrap().unwrap();
    assert_eq!(wix.status, dsr_jobs::model::TaskStatus::Failed);
    assert!(
        wix.error.as_deref().unwrap_or("").contains("stopped 2 time(s)"),
        "{:?}",
        wix.error
    );
    assert_eq!(take("w5").await.unwrap(), Claimed::NotDue);
    ledger.purge_requests(&["p1".to_string()]).await.unwrap();
    ledger.close().await;
    db.drop_db().await;
}
