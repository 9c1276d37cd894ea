//! The deadline drives escalation: a request whose task keeps failing reaches
//! `needs_attention` before its legal deadline (with an audit event naming nobody and a WARN
//! line), `dsr list --attention` shows it, and a request that completes is never flagged.
//! Time moves by the ledger's clock and the sweep's `now`; nothing waits. Run on SQLite and
//! on PostgreSQL.

mod util;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use dsr_connector::Processor;
use dsr_fixtures::scripted::{Script, ScriptedConnector};
use dsr_jobs::clock::Clock;
use dsr_jobs::model::{RequestKind, RequestStatus, TaskStatus};
use dsr_jobs::{Connectors, Engine, Ledger, Queue, flow, sweep};
use serde_json::Value;
use tracing::instrument::WithSubscriber;
use util::{Deployment, SEEDED_EMAIL};

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// What the test's tracing subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// An engine over `ledger_url` (read through `clock`) and the deployment's SQLite queue,
/// with a Google that fails every attempt, a Wix that always answers, and a SuperOffice that
/// fails its first attempt only.
async fn engine(d: &Deployment, ledger_url: &str, clock: Clock) -> Engine {
    let mut settings = util::fast_settings(
        &format!("sqlite://{}/queue.db", d.data().display()),
        "dsr",
        &d.data().join("export"),
    );
    settings.recover_after = Duration::from_secs(3600);
    let ledger = Ledger::open(ledger_url).await.expect("open ledger").with_clock(clock);
    let queue = Queue::connect(&settings.queue).await.expect("the SQLite queue");
    let mut connectors = Connectors::default();
    let failing = Script {
        fail_attempts: u32::MAX,
        records_per_email: 1,
        ..Default::default()
    };
    let flaky = Script {
        fail_attempts: 1,
        records_per_email: 1,
        ..Default::default()
    };
    let fine = Script {
        records_per_email: 1,
        ..Default::default()
    };
    connectors.insert(Arc::new(ScriptedConnector::new(Processor::Google, failing)));
    connectors.insert(Arc::new(ScriptedConnector::new(Processor::Superoffice, flaky)));
    connectors.insert(Arc::new(ScriptedConnector::new(Processor::Wix, fine)));
    Engine::new(ledger, queue, connectors, settings)
}

async fn enqueue(engine: &Engine, processor: Processor) -> String {
    let new = util::request_for(SEEDED_EMAIL, RequestKind::Access, &[processor], start());
    let id = engine.enqueue(new).await.unwrap();
    flow::fan_out(engine, &id).await.unwrap();
    id
}

/// One attempt at `processor`, and the finalize it may allow.
async fn attempt(engine: &Engine, id: &str, processor: Processor) {
    flow::processor_task(engine, id, processor).await.unwrap();
    flow::finalize(engine, id).await.unwrap();
}

async fn events(engine: &Engine, id: &str) -> Vec<dsr_jobs::ledger::AuditEvent> {
    engine.ledger().audit_events(id).await.unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("no requests in {list}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn a_failing_task_reaches_needs_attention_before_the_deadline(d: Deployment, ledger_url: String) {
    let clock = Clock::manual(start());
    let engine = engine(&d, &ledger_url, clock.clone()).await;
    let failing = enqueue(&engine, Processor::Google).await;
    let completing = enqueue(&engine, Processor::Wix).await;
    let recovering = enqueue(&engine, Processor::Superoffice).await;
    let due_at = engine.ledger().get_request(&failing).await.unwrap().due_at;

    // Day one: Google fails, Wix answers, SuperOffice fails once; a month is left, so the
    // failure is retried quietly.
    for (id, p) in [
        (&failing, Processor::Google),
        (&completing, Processor::Wix),
        (&recovering, Processor::Superoffice),
    ] {
        attempt(&engine, id, p).await;
    }
    assert_eq!(
        engine.ledger().get_request(&completing).await.unwrap().status,
        RequestStatus::Completed
    );
    let report = sweep::escalate(&engine, clock.now()).await.unwrap();
    assert!(report.flagged.is_empty(), "a month before the deadline: {report:?}");

    // Six days before the deadline Google still fails: the sweep escalates instead of
    // retrying quietly into the deadline.
    clock.set(due_at - ChronoDuration::days(6));
    attempt(&engine, &failing, Processor::Google).await;
    assert_eq!(
        engine
            .ledger()
            .task(&failing, Processor::Google)
            .await
            .unwrap()
            .unwrap()
            .status,
        TaskStatus::Retrying
    );
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .finish();
    let flagged_at = clock.now();
    assert!(flagged_at < due_at, "flagged before the deadline");
    assert!(
        sweep::run_tick(&engine, flagged_at)
            .with_subscriber(subscriber)
            .await
            .unwrap(),
        "the tick ran"
    );
    let request = engine.ledger().get_request(&failing).await.unwrap();
    assert_eq!(
        request.status,
        RequestStatus::InProgress,
        "a flag, not a status: the life cycle is untouched"
    );
    assert_eq!(
        engine.ledger().attention_since(&failing).await.unwrap(),
        Some(flagged_at)
    );
    let flagged: Vec<_> = events(&engine, &failing)
        .await
        .into_iter()
        .filter(|e| e.event == "request.needs_attention")
        .collect();
    assert_eq!(flagged.len(), 1, "one event");
    assert_eq!(flagged[0].detail["tasks"][0]["processor"], "google");
    assert_eq!(flagged[0].detail["tasks"][0]["status"], "retrying");
    assert_eq!(flagged[0].detail["tasks"][0]["attempts"], 2);
    assert!(
        !flagged[0].detail.to_string().contains("kari"),
        "the event names nobody: {}",
        flagged[0].detail
    );
    let log = log.text();
    assert!(
        log.contains("WARN") && log.contains("request.needs_attention") && log.contains(&failing),
        "a WARN line names the request: {log}"
    );
    assert!(!log.contains("kari"), "the log names nobody: {log}");

    // Once per request, however many sweeps see it.
    let again = sweep::escalate(&engine, clock.now()).await.unwrap();
    assert!(again.flagged.is_empty() && again.cleared.is_empty(), "{again:?}");

    // SuperOffice, failing its first attempt, is as close to the deadline: flagged too.
    assert_eq!(
        engine.ledger().attention_since(&recovering).await.unwrap(),
        Some(flagged_at)
    );

    // The operator sees them: in `dsr list --attention` (and nothing else there), in
    // `dsr list` and `dsr status`.
    let (code, attention) = util::dsr_json_async(&d, &["list", "--attention"]).await;
    assert_eq!(code, 0, "{attention}");
    let mut want = vec![failing.clone(), recovering.clone()];
    want.sort();
    assert_eq!(ids(&attention), want, "{attention}");
    assert!(
        attention["requests"]
            .as_array()
            .is_some_and(|a| a.iter().all(|r| r["needs_attention"] == true)),
        "{attention}"
    );
    let (_, all) = util::dsr_json_async(&d, &["list"]).await;
    let entry = |id: &str| {
        all["requests"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == id).cloned())
            .unwrap_or_else(|| panic!("{id} not listed: {all}"))
    };
    assert_eq!(entry(&failing)["needs_attention"], true);
    assert_eq!(entry(&completing)["needs_attention"], false);
    let (_, status) = util::dsr_json_async(&d, &["status", &failing]).await;
    assert_eq!(status["needs_attention"], true, "{status}");
    assert!(status["attention_since"].is_string(), "{status}");
    let text = d.dsr(&["list", "--attention"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&failing) && text.contains("NEEDS ATTENTION"), "{text}");

    // SuperOffice answers the next attempt: that request completes and its flag is cleared.
    // The request that completed on day one was never flagged, however close its deadline.
    clock.set(due_at - ChronoDuration::days(5));
    attempt(&engine, &recovering, Processor::Superoffice).await;
    assert_eq!(
        engine.ledger().get_request(&recovering).await.unwrap().status,
        RequestStatus::Completed
    );
    let report = sweep::escalate(&engine, clock.now()).await.unwrap();
    assert!(report.flagged.is_empty(), "{report:?}");
    assert_eq!(report.cleared, [recovering.as_str()]);
    assert_eq!(engine.ledger().attention_since(&recovering).await.unwrap(), None);
    assert_eq!(engine.ledger().attention_since(&completing).await.unwrap(), None);
    assert!(
        !events(&engine, &completing)
            .await
            .iter()
            .any(|e| e.event.starts_with("request.needs_attention") || e.event.starts_with("request.attention")),
        "the completed request was flagged"
    );
    assert_eq!(
        ids(&util::dsr_json_async(&d, &["list", "--attention"]).await.1),
        [failing.as_str()]
    );

    // Overdue and still failing: it stays flagged, and is cleared once it ends.
    clock.set(due_at + ChronoDuration::days(1));
    let report = sweep::escalate(&engine, clock.now()).await.unwrap();
    assert_eq!(report, sweep::Escalation::default(), "still flagged, once");
    assert_eq!(
        ids(&util::dsr_json_async(&d, &["list", "--attention"]).await.1),
        [failing.as_str()]
    );
    engine.ledger().cancel(&failing, "test").await.unwrap();
    let report = sweep::escalate(&engine, clock.now()).await.unwrap();
    assert_eq!(report.cleared, [failing.as_str()]);
    let cleared: Vec<_> = events(&engine, &failing)
        .await
        .into_iter()
        .filter(|e| e.event == "request.attention_cleared")
        .collect();
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].detail["reason"], "ended");
    assert!(ids(&util::dsr_json_async(&d, &["list", "--attention"]).await.1).is_empty());
    engine.ledger().close().await;
}

#[tokio::test]
async fn a_failing_task_reaches_needs_attention_before_the_deadline_on_sqlite() {
    let d = Deployment::sqlite("");
    let url = format!("sqlite://{}/ledger.db", d.data().display());
    a_failing_task_reaches_needs_attention_before_the_deadline(d, url).await;
}

#[tokio::test]
async fn a_failing_task_reaches_needs_attention_before_the_deadline_on_postgres() {
    let db = util::pg_database().await;
    // `dsr list` and `dsr status` read the ledger only; the engine's queue is the
    // deployment's SQLite file.
    let d = Deployment::shared(&db.url, "sqlite://data/queue.db", "dsr", "");
    std::fs::create_dir_all(d.data()).unwrap();
    // Run apart, so the database is dropped even when an assertion fails.
    let run = tokio::spawn(a_failing_task_reaches_needs_attention_before_the_deadline(
        d,
        db.url.clone(),
    ))
    .await;
    db.drop_db().await;
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
}
