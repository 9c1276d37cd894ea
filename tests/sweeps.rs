//! The scheduled sweeps through the public API: the deadline watch flags what is due within
//! a week and what is overdue, once; a tick runs in one process however many fire it.

mod util;

use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use dsr_connector::Processor;
use dsr_jobs::model::{NewRequest, RequestKind};
use dsr_jobs::{Engine, ListFilter, sweep};

async fn engine(dir: &std::path::Path) -> Engine {
    let mut settings = util::fast_settings(
        &format!("sqlite://{}/queue.db", dir.display()),
        "dsr",
        &dir.join("export"),
    );
    settings.recover_after = Duration::from_secs(3600);
    util::engine(&format!("sqlite://{}/ledger.db", dir.display()), settings).await
}

fn received(days_ago: i64) -> NewRequest {
    let at = Utc::now() - ChronoDuration::days(days_ago);
    util::request_for(util::SEEDED_EMAIL, RequestKind::Access, &[Processor::Google], at)
}

#[tokio::test]
async fn the_deadline_watch_flags_due_and_overdue_requests_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let overdue = engine.enqueue(received(45)).await.unwrap();
    let soon = engine.enqueue(received(27)).await.unwrap();
    let fresh = engine.enqueue(received(0)).await.unwrap();

    assert_eq!(sweep::watch_deadlines(&engine, Utc::now()).await.unwrap(), 2);
    assert_eq!(
        sweep::watch_deadlines(&engine, Utc::now()).await.unwrap(),
        0,
        "each deadline is flagged once"
    );
    let events = |id: String| {
        let ledger = engine.ledger().clone();
        async move {
            ledger
                .audit_events(&id)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event)
                .collect::<Vec<_>>()
        }
    };
    assert!(events(overdue.clone()).await.contains(&"deadline.overdue".to_string()));
    assert!(events(soon.clone()).await.contains(&"deadline.approaching".to_string()));
    assert!(!events(fresh.clone()).await.iter().any(|e| e.starts_with("deadline.")));

    let listed = engine
        .ledger()
        .list(&ListFilter {
            status: None,
            overdue_at: Some(Utc::now()),
        })
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [overdue.as_str()]
    );

    // An extension moves the deadline; the new one is watched afresh.
    let zone = chrono_tz::Europe::Oslo;
    engine
        .ledger()
        .extend(&soon, 1, "complex", zone, Utc::now(), "test")
        .await
        .unwrap();
    assert_eq!(
        sweep::watch_deadlines(&engine, Utc::now()).await.unwrap(),
        0,
        "a month away now"
    );
}

#[tokio::test]
async fn a_tick_runs_in_one_process_however_many_fire_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = engine(dir.path()).await;
    let second = engine(dir.path()).await;
    let at = Utc::now();
    assert!(sweep::run_tick(&first, at).await.unwrap());
    assert!(!sweep::run_tick(&second, at).await.unwrap(), "the same tick ran twice");
    assert!(sweep::run_tick(&second, at + ChronoDuration::seconds(1)).await.unwrap());
}
