//! The engine's paths that need no vendor, through the public library API:
//! - One bundle per request, whatever runs `finalize` at once: a worker's last two tasks
//!   each queue a `finalize`, and one worker with several slots runs both together. Only one
//!   of them may write the bundle, or the store keeps one bundle while the ledger records the
//!   hash of the other and `dsr verify` calls the subject's bundle altered.
//! - A task for a processor this deployment does not configure fails with `not_configured`;
//!   records that cannot be stored on dsr's side leave the task retrying with `storage`.

mod util;

use std::sync::Arc;

use dsr_connector::Processor;
use dsr_fixtures::scripted::{Script, ScriptedConnector};
use dsr_jobs::model::{RequestKind, RequestStatus};
use dsr_jobs::verification::{SignaturePolicy, verify_bundle};
use dsr_jobs::{Connectors, Engine, Ledger, Queue, flow};
use util::{Deployment, SEEDED_EMAIL};

async fn engine(d: &Deployment) -> Engine {
    let settings = util::fast_settings(
        &format!("sqlite://{}/queue.db", d.data().display()),
        "dsr",
        &d.data().join("export"),
    );
    let ledger = Ledger::open(&format!("sqlite://{}/ledger.db", d.data().display()))
        .await
        .expect("open ledger");
    let queue = Queue::connect(&settings.queue).await.expect("the SQLite queue");
    let mut connectors = Connectors::default();
    for processor in [Processor::Google, Processor::Wix] {
        let script = Script {
            records_per_email: 2,
            ..Default::default()
        };
        connectors.insert(Arc::new(ScriptedConnector::new(processor, script)));
    }
    Engine::new(ledger, queue, connectors, settings)
}

#[tokio::test]
async fn two_finalizes_at_once_on_one_worker_leave_the_bundle_the_ledger_recorded() {
    let d = Deployment::sqlite("");
    let engine = engine(&d).await;
    // Several rounds: which of two unguarded writers stores last and which records first
    // varies, so one round could pass by luck.
    for round in 0..6 {
        let new = util::request_for(
            SEEDED_EMAIL,
            RequestKind::Access,
            &[Processor::Google, Processor::Wix],
            chrono::Utc::now(),
        );
        let id = engine.enqueue(new).await.unwrap();
        flow::fan_out(&engine, &id).await.unwrap();
        for processor in [Processor::Google, Processor::Wix] {
            flow::processor_task(&engine, &id, processor).await.unwrap();
        }
        let (a, b) = tokio::join!(flow::finalize(&engine, &id), flow::finalize(&engine, &id));
        a.unwrap();
        b.unwrap();

        let request = engine.ledger().get_request(&id).await.unwrap();
        assert_eq!(request.status, RequestStatus::Completed, "round {round}");
        let bundle = request.bundle.expect("a bundle location");
        let verdict = verify_bundle(
            std::path::Path::new(&bundle),
            engine.ledger(),
            None,
            SignaturePolicy::UncheckedAllowed,
        )
        .await
        .unwrap();
        assert!(
            verdict.problems.is_empty(),
            "round {round}: {:?}",
            verdict.problems.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        let finalized = engine
            .ledger()
            .audit_events(&id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event == "request.completed")
            .count();
        assert_eq!(finalized, 1, "round {round}: one completion recorded");
    }
}

/// The code the audit log chained for the task's last event, and its note.
async fn last_code(engine: &Engine, id: &str, processor: Processor) -> (String, String) {
    let events = engine.ledger().audit_events(id).await.unwrap();
    let event = events
        .iter()
        .rev()
        .find(|e| e.processor.as_deref() == Some(processor.as_str()) && e.detail["code"].is_string())
        .unwrap_or_else(|| panic!("no event with a code for {processor}: {events:?}"));
    (
        event.detail["code"].as_str().unwrap_or_default().to_string(),
        event.note.clone().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_processor_not_configured_fails_its_task_and_a_full_store_retries_it() {
    let d = Deployment::sqlite("");
    let engine = engine(&d).await;
    let new = util::request_for(
        SEEDED_EMAIL,
        RequestKind::Access,
        &[Processor::Superoffice],
        chrono::Utc::now(),
    );
    let id = engine.enqueue(new).await.unwrap();
    flow::fan_out(&engine, &id).await.unwrap();
    flow::processor_task(&engine, &id, Processor::Superoffice)
        .await
        .unwrap();
    let task = engine
        .ledger()
        .task(&id, Processor::Superoffice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task.status, dsr_jobs::model::TaskStatus::Failed);
    assert!(
        task.error
            .unwrap_or_default()
            .contains("enable [processors.superoffice]")
    );
    let (code, note) = last_code(&engine, &id, Processor::Superoffice).await;
    assert_eq!(code, "not_configured");
    assert!(note.contains("not configured in this deployment"), "{note}");

    // The export storage is gone from under the worker (a file where its folder was).
    let new = util::request_for(SEEDED_EMAIL, RequestKind::Access, &[Processor::Wix], chrono::Utc::now());
    let id = engine.enqueue(new).await.unwrap();
    flow::fan_out(&engine, &id).await.unwrap();
    let export = d.data().join("export");
    let _ = std::fs::remove_dir_all(&export);
    std::fs::write(&export, "not a folder").unwrap();
    flow::processor_task(&engine, &id, Processor::Wix).await.unwrap();
    let task = engine.ledger().task(&id, Processor::Wix).await.unwrap().unwrap();
    assert_eq!(task.status, dsr_jobs::model::TaskStatus::Retrying, "{:?}", task.error);
    let (code, _) = last_code(&engine, &id, Processor::Wix).await;
    assert_eq!(code, "storage");
}
