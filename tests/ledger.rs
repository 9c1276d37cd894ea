//! The ledger's guarantees, run against SQLite and PostgreSQL alike.

mod util;

use std::future::Future;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use dsr_connector::Processor;
use dsr_jobs::ledger::{Claim, TaskError, TaskResult};
use dsr_jobs::model::{Outcome, RequestKind, RequestStatus, TaskStatus};
use dsr_jobs::{Ledger, LedgerError, ListFilter};
use serde_json::json;

/// Runs `body` once on a fresh SQLite ledger and once on a fresh PostgreSQL database.
async fn on_both<F, Fut>(body: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    body(format!("sqlite://{}/ledger.db", dir.path().display())).await;
    let db = util::pg_database().await;
    body(db.url.clone()).await;
    db.drop_db().await;
}

async fn create(ledger: &Ledger, id: &str, processors: &[Processor]) {
    let new = util::request_for(util::SEEDED_EMAIL, RequestKind::Erasure, processors, Utc::now());
    let due = dsr_jobs::deadline::due_at(new.received_at, 1, chrono_tz::Europe::Oslo);
    ledger.create_request(id, &new, due).await.unwrap();
}

fn done(found: u64) -> TaskResult {
    TaskResult::Succeeded {
        outcome: Outcome::Done,
        found,
        changed: found,
        reason: None,
        evidence: json!({"ids": ["a"]}),
        spool: None,
    }
}

async fn task_of(ledger: &Ledger, id: &str, processor: Processor) -> dsr_jobs::model::Task {
    ledger.task(id, processor).await.unwrap().unwrap()
}

const LEASE: Duration = Duration::from_secs(60);

fn confirmation(location: &str) -> dsr_jobs::ledger::Written {
    dsr_jobs::ledger::Written::Confirmation {
        location: location.into(),
        sha256: "0".repeat(64),
    }
}

#[tokio::test]
async fn a_request_moves_through_its_life_cycle_and_nowhere_else() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "r1", &[Processor::Google, Processor::Wix]).await;
        let r = ledger.get_request("r1").await.unwrap();
        assert_eq!(r.status, RequestStatus::Received);
        assert_eq!(r.identities.emails[0].as_str(), util::SEEDED_EMAIL);
        assert!(r.due_at > r.received_at + ChronoDuration::days(27));

        assert!(
            !ledger
                .complete_request(
                    "r1",
                    RequestStatus::Completed,
                    &confirmation("/x/c.json"),
                    false,
                    "w1",
                    false
                )
                .await
                .unwrap(),
            "a received request cannot complete before it is in progress"
        );
        assert!(ledger.start_request("r1").await.unwrap());
        assert!(!ledger.start_request("r1").await.unwrap(), "fan-out happens once");

        let claim = ledger
            .claim_task("r1", Processor::Google, "w1", LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            claim,
            Claim {
                attempt: 1,
                budget_used: 1
            }
        );
        assert!(
            ledger
                .finish_task("r1", Processor::Google, "w1", claim, &done(3))
                .await
                .unwrap()
        );
        ledger
            .settle_unstarted(
                "r1",
                Processor::Wix,
                &TaskResult::NotApplicable {
                    reason: "no API".into(),
                },
            )
            .await
            .unwrap();
        let tasks = ledger.tasks("r1").await.unwrap();
        assert_eq!(
            tasks.iter().map(|t| t.status).collect::<Vec<_>>(),
            [TaskStatus::Succeeded, TaskStatus::NotApplicable]
        );
        assert_eq!(tasks[0].found, 3);
        assert_eq!(tasks[0].evidence, json!({"ids": ["a"]}));
        assert_eq!(tasks[1].reason.as_deref(), Some("no API"));

        // One writer at a time: w2 can neither take the finalize w1 holds nor end the request.
        assert!(ledger.claim_finalize("r1", "w1", LEASE).await.unwrap());
        assert!(!ledger.claim_finalize("r1", "w2", LEASE).await.unwrap());
        assert!(
            !ledger
                .complete_request(
                    "r1",
                    RequestStatus::Completed,
                    &confirmation("/x/w2.json"),
                    false,
                    "w2",
                    false
                )
                .await
                .unwrap()
        );
        assert!(
            ledger
                .complete_request(
                    "r1",
                    RequestStatus::Completed,
                    &confirmation("/x/c.json"),
                    false,
                    "w1",
                    false
                )
                .await
                .unwrap()
        );
        assert!(
            !ledger
                .complete_request(
                    "r1",
                    RequestStatus::Failed,
                    &confirmation("/x/other.json"),
                    false,
                    "w1",
                    false
                )
                .await
                .unwrap(),
            "finalize records once"
        );
        let r = ledger.get_request("r1").await.unwrap();
        assert_eq!(r.status, RequestStatus::Completed);
        assert_eq!(r.confirmation.as_deref(), Some("/x/c.json"));
        assert!(
            matches!(ledger.cancel("r1", "test").await, Err(LedgerError::Refused(_))),
            "an ended request cannot be cancelled"
        );

        let events: Vec<String> = ledger
            .audit_events("r1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(
            events,
            [
                "request.received",
                "request.in_progress",
                "task.started",
                "task.succeeded",
                "task.not_applicable",
                "request.completed"
            ]
        );
        ledger.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_redelivered_task_neither_runs_again_nor_records_twice() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "r2", &[Processor::Google]).await;
        ledger.start_request("r2").await.unwrap();
        let claim = ledger
            .claim_task("r2", Processor::Google, "w1", LEASE)
            .await
            .unwrap()
            .unwrap();
        assert!(
            ledger
                .claim_task("r2", Processor::Google, "w2", LEASE)
                .await
                .unwrap()
                .is_none(),
            "a task held by a live worker is not taken by a second delivery"
        );
        assert!(
            ledger
                .finish_task("r2", Processor::Google, "w1", claim, &done(1))
                .await
                .unwrap()
        );
        assert!(
            !ledger
                .finish_task("r2", Processor::Google, "w1", claim, &done(1))
                .await
                .unwrap(),
            "the same result is recorded once"
        );
        assert!(
            ledger
                .claim_task("r2", Processor::Google, "w2", LEASE)
                .await
                .unwrap()
                .is_none(),
            "a succeeded task is never claimed again"
        );
        let events = ledger.audit_events("r2").await.unwrap();
        assert_eq!(events.iter().filter(|e| e.event == "task.succeeded").count(), 1);
        assert_eq!(events.iter().filter(|e| e.event == "task.started").count(), 1);
        assert_eq!(task_of(&ledger, "r2", Processor::Google).await.attempts, 1);
        ledger.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_dead_workers_task_is_taken_over_and_its_late_result_discarded() {
    on_both(|url| async move {
        // Time moves only when the test moves it: no sleeping for a lease to run out.
        let clock = dsr_jobs::clock::Clock::manual(Utc::now());
        let ledger = Ledger::open(&url).await.unwrap().with_clock(clock.clone());
        create(&ledger, "r3", &[Processor::Wix]).await;
        ledger.start_request("r3").await.unwrap();
        let first = ledger
            .claim_task("r3", Processor::Wix, "dead", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        let held = ledger
            .recoverable(clock.now(), Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(held.tasks.is_empty(), "a live lease is not taken over");
        assert!(
            ledger
                .claim_task("r3", Processor::Wix, "alive", LEASE)
                .await
                .unwrap()
                .is_none(),
            "nor claimed by another worker"
        );
        clock.advance(ChronoDuration::seconds(31));
        let recoverable = ledger
            .recoverable(clock.now(), Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(
            recoverable.tasks,
            [("r3".to_string(), Processor::Wix)],
            "an expired lease is recoverable"
        );
        let second = ledger
            .claim_task("r3", Processor::Wix, "alive", LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.attempt, 2);
        assert!(
            !ledger
                .finish_task("r3", Processor::Wix, "dead", first, &done(9))
                .await
                .unwrap(),
            "the dead worker's late result is discarded"
        );
        assert!(
            !ledger
                .renew_lease("r3", Processor::Wix, "dead", first, LEASE)
                .await
                .unwrap()
        );
        assert!(
            ledger
                .finish_task("r3", Processor::Wix, "alive", second, &done(2))
                .await
                .unwrap()
        );
        assert_eq!(task_of(&ledger, "r3", Processor::Wix).await.found, 2);
        ledger.close().await;
    })
    .await;
}

#[tokio::test]
async fn retrying_tasks_wait_for_their_backoff_and_failed_ones_can_be_retried() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "r4", &[Processor::Google, Processor::Superoffice]).await;
        ledger.start_request("r4").await.unwrap();
        let claim = ledger
            .claim_task("r4", Processor::Google, "w", LEASE)
            .await
            .unwrap()
            .unwrap();
        let later = Utc::now() + ChronoDuration::hours(1);
        ledger
            .finish_task(
                "r4",
                Processor::Google,
                "w",
                claim,
                &TaskResult::Retrying {
                    error: TaskError::new("retry_later:429", "throttled"),
                    next_retry_at: later,
                },
            )
            .await
            .unwrap();
        assert!(
            ledger
                .claim_task("r4", Processor::Google, "w", LEASE)
                .await
                .unwrap()
                .is_none(),
            "backoff not elapsed"
        );
        let due_now = ledger.recoverable(Utc::now(), Duration::from_secs(3600)).await.unwrap();
        assert!(!due_now.tasks.iter().any(|(_, p)| *p == Processor::Google));
        let due_later = ledger
            .recoverable(later + ChronoDuration::seconds(1), Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(due_later.tasks.contains(&("r4".to_string(), Processor::Google)));

        let claim = ledger
            .claim_task("r4", Processor::Superoffice, "w", LEASE)
            .await
            .unwrap()
            .unwrap();
        ledger
            .finish_task(
                "r4",
                Processor::Superoffice,
                "w",
                claim,
                &TaskResult::Failed {
                    error: TaskError::new("permanent:403", "forbidden"),
                },
            )
            .await
            .unwrap();
        assert!(matches!(
            ledger.retry("r4", Some(Processor::Google), "test").await,
            Err(LedgerError::Refused(_))
        ));
        assert_eq!(
            ledger.retry("r4", None, "test").await.unwrap(),
            [Processor::Superoffice]
        );
        let task = task_of(&ledger, "r4", Processor::Superoffice).await;
        assert_eq!((task.status, task.attempts, task.error), (TaskStatus::Pending, 1, None));
        let again = ledger
            .claim_task("r4", Processor::Superoffice, "w", LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            again,
            Claim {
                attempt: 2,
                budget_used: 1
            },
            "a manual retry gets a fresh budget; numbering goes on"
        );
        ledger.close().await;
    })
    .await;
}

#[tokio::test]
async fn cancel_extend_and_overdue_follow_the_rules() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        let zone = chrono_tz::Europe::Oslo;
        create(&ledger, "r5", &[Processor::Google]).await;
        let before = ledger.get_request("r5").await.unwrap().due_at;
        assert!(
            matches!(
                ledger.extend("r5", 1, " ", zone, Utc::now(), "test").await,
                Err(LedgerError::Refused(_))
            ),
            "a reason is required"
        );
        assert!(
            matches!(
                ledger.extend("r5", 3, "complex", zone, Utc::now(), "test").await,
                Err(LedgerError::Refused(_))
            ),
            "two months at most"
        );
        let after = ledger
            .extend("r5", 2, "many requests from this subject", zone, Utc::now(), "test")
            .await
            .unwrap();
        assert!(after > before + ChronoDuration::days(55), "{before} → {after}");
        assert!(
            matches!(
                ledger.extend("r5", 1, "again", zone, Utc::now(), "test").await,
                Err(LedgerError::Refused(_))
            ),
            "no more than two in all"
        );
        let late = after + ChronoDuration::days(1);
        create(&ledger, "r6", &[Processor::Google]).await;
        assert!(
            matches!(
                ledger.extend("r6", 1, "late", zone, late, "test").await,
                Err(LedgerError::Refused(_))
            ),
            "only before the deadline"
        );

        let overdue = ledger
            .list(&ListFilter {
                status: None,
                overdue_at: Some(late),
            })
            .await
            .unwrap();
        assert_eq!(overdue.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r5", "r6"]);
        ledger.cancel("r6", "test").await.unwrap();
        assert_eq!(ledger.get_request("r6").await.unwrap().status, RequestStatus::Cancelled);
        assert_eq!(
            task_of(&ledger, "r6", Processor::Google).await.status,
            TaskStatus::Cancelled
        );
        let overdue = ledger
            .list(&ListFilter {
                status: None,
                overdue_at: Some(late),
            })
            .await
            .unwrap();
        assert_eq!(overdue.len(), 1, "a cancelled request is not overdue");
        let received = ledger
            .list(&ListFilter {
                status: Some(RequestStatus::Received),
                overdue_at: None,
            })
            .await
            .unwrap();
        assert_eq!(received.len(), 1);

        let warned = ledger.deadline_warnings(late).await.unwrap();
        assert_eq!(warned.len(), 1);
        ledger.mark_warned("r5", "deadline.overdue", json!({})).await.unwrap();
        assert!(
            ledger.deadline_warnings(late).await.unwrap().is_empty(),
            "warned once per deadline"
        );
        ledger.close().await;
    })
    .await;
}

#[tokio::test]
async fn the_ledger_survives_a_restart_and_ticks_run_once() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "r7", &[Processor::Wix]).await;
        assert!(ledger.claim_tick("sweep@t1", "a").await.unwrap());
        assert!(
            !ledger.claim_tick("sweep@t1", "b").await.unwrap(),
            "one tick runs in one process"
        );
        ledger.close().await;
        drop(ledger);

        let reopened = Ledger::open(&url).await.unwrap();
        let r = reopened.get_request("r7").await.unwrap();
        assert_eq!(r.identities.emails[0].as_str(), util::SEEDED_EMAIL);
        assert_eq!(reopened.tasks("r7").await.unwrap().len(), 1);
        assert!(!reopened.claim_tick("sweep@t1", "c").await.unwrap());
        assert_eq!(reopened.audit_events("r7").await.unwrap().len(), 1);
        reopened.close().await;
    })
    .await;
}

async fn raw(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

async fn seq_of(pool: &sqlx::AnyPool, event: &str) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT seq FROM audit_log WHERE event = $1")
        .bind(event)
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0)
}

async fn exec(pool: &sqlx::AnyPool, sql: &str, seq: i64) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(seq)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_audit_chain_names_the_first_event_altered_or_removed() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "c1", &[Processor::Google]).await;
        ledger.start_request("c1").await.unwrap();
        for (event, n) in [("note.one", 1), ("note.two", 2), ("note.three", 3)] {
            ledger.audit(Some("c1"), None, event, json!({ "n": n })).await.unwrap();
        }
        let whole = ledger.verify_audit_chain().await.unwrap();
        assert_eq!(whole.problem, None);
        assert_eq!(whole.events, 5, "received, in_progress and three notes");
        assert_eq!(whole.head.seq, seq_of(&raw(&url).await, "note.three").await);

        let pool = raw(&url).await;
        let two = seq_of(&pool, "note.two").await;
        let three = seq_of(&pool, "note.three").await;
        // One edited row: named, as altered.
        exec(&pool, r#"UPDATE audit_log SET detail = '{"n":20}' WHERE seq = $1"#, two).await;
        let problem = ledger.verify_audit_chain().await.unwrap().problem.unwrap();
        assert!(
            problem.contains(&format!("event #{two} (note.two, request c1) was altered")),
            "{problem}"
        );
        exec(&pool, r#"UPDATE audit_log SET detail = '{"n":2}' WHERE seq = $1"#, two).await;
        assert_eq!(ledger.verify_audit_chain().await.unwrap().problem, None, "restored");

        // The last event removed: the head still remembers it.
        exec(&pool, "DELETE FROM audit_log WHERE seq = $1", three).await;
        let problem = ledger.verify_audit_chain().await.unwrap().problem.unwrap();
        assert!(problem.contains("the last events were removed"), "{problem}");

        // A middle event removed: the next one no longer links.
        ledger
            .audit(Some("c1"), None, "note.four", json!({"n": 4}))
            .await
            .unwrap();
        let four = seq_of(&pool, "note.four").await;
        exec(&pool, "DELETE FROM audit_log WHERE seq = $1", two).await;
        let problem = ledger.verify_audit_chain().await.unwrap().problem.unwrap();
        let one = seq_of(&pool, "note.one").await;
        assert!(
            problem.contains(&format!(
                "event #{four} (note.four, request c1) does not follow event #{one}"
            )),
            "{problem}"
        );
        assert!(!problem.contains(&format!("#{three}")), "{problem}");
        pool.close().await;
        ledger.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_pseudonymised_request_names_nobody_and_cannot_be_retried() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "p1", &[Processor::Wix]).await;
        ledger.start_request("p1").await.unwrap();
        let failed = TaskResult::Failed {
            error: TaskError {
                code: "permanent:400:invalid".into(),
                text: "wix failed permanently (400:invalid)".into(),
                said: Some("no contact kari.nordmann@example.no".into()),
            },
        };
        ledger.settle_unstarted("p1", Processor::Wix, &failed).await.unwrap();
        // The chain holds the code and the note's hash; the words are beside it.
        let failed_event = |events: Vec<dsr_jobs::ledger::AuditEvent>| {
            events
                .into_iter()
                .find(|e| e.event == "task.failed")
                .expect("a task.failed event")
        };
        let event = failed_event(ledger.audit_events("p1").await.unwrap());
        assert_eq!(event.detail["code"], "permanent:400:invalid");
        assert!(!event.detail.to_string().contains("kari"), "{}", event.detail);
        assert_eq!(
            event.note.as_deref(),
            Some("wix failed permanently (400:invalid)\nthe vendor said: no contact kari.nordmann@example.no")
        );
        assert!(
            ledger
                .claim_finalize("p1", "w1", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            ledger
                .complete_request(
                    "p1",
                    RequestStatus::Failed,
                    &confirmation("/x/p1.json"),
                    false,
                    "w1",
                    false
                )
                .await
                .unwrap()
        );
        let tasks = ledger.task_texts("p1").await.unwrap();
        let pseudonyms = json!({"pseudonyms": ["pseudonym:0123"]});
        assert!(
            ledger
                .pseudonymise("p1", &pseudonyms, &json!([]), &tasks, &[])
                .await
                .unwrap()
        );
        assert!(
            !ledger
                .pseudonymise("p1", &pseudonyms, &json!([]), &tasks, &[])
                .await
                .unwrap(),
            "once"
        );
        let request = ledger.get_request("p1").await.unwrap();
        assert!(request.identities.emails.is_empty() && request.pseudonymised_at.is_some());
        match ledger.retry("p1", None, "test").await {
            Err(LedgerError::Refused(message)) => assert!(message.contains("pseudonymised"), "{message}"),
            other => panic!("a retry would run with no identities: {other:?}"),
        }
        // Pseudonymised: the note's words are gone, its hash still chained and verifying.
        let event = failed_event(ledger.audit_events("p1").await.unwrap());
        assert_eq!(event.note, None);
        assert!(event.detail["note"].is_string(), "{}", event.detail);
        assert_eq!(ledger.verify_audit_chain().await.unwrap().problem, None);
        ledger.close().await;
    })
    .await;
}

fn plan_of(keys: &[&str]) -> dsr_connector::Plan {
    let mut plan = dsr_connector::Plan::default();
    for key in keys {
        plan.items.push(
            dsr_connector::PlanItem::new(
                *key,
                "contacts",
                dsr_connector::Action::Patch,
                json!({"id": key}),
                json!({"email": util::SEEDED_EMAIL}),
                vec![dsr_connector::MatchClaim::email("/email")],
            )
            .before(json!({"family_name": "Nordmann"}))
            .after(json!({"family_name": "Nordmann-Lie"})),
        );
    }
    dsr_connector::check_plan(
        &util::subject(util::SEEDED_EMAIL),
        &mut plan,
        &dsr_connector::PlanRules::default(),
    );
    plan
}

/// Claims the task and stores a plan for it, as a worker's first attempt does.
async fn planned(
    ledger: &Ledger,
    id: &str,
    processor: Processor,
    keys: &[&str],
) -> (Claim, dsr_jobs::ledger::StoredPlan) {
    let claim = ledger.claim_task(id, processor, "w1", LEASE).await.unwrap().unwrap();
    let stored = ledger
        .store_plan(id, processor, "w1", claim, &plan_of(keys), Utc::now())
        .await
        .unwrap()
        .expect("the worker holds the task");
    (claim, stored)
}

#[tokio::test]
async fn a_plan_is_stored_approved_by_its_hash_and_refused_once_made_again() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "a1", &[Processor::Wix, Processor::Google]).await;
        ledger.start_request("a1").await.unwrap();
        let (claim, wix) = planned(&ledger, "a1", Processor::Wix, &["c-1", "c-2"]).await;
        assert_eq!(
            ledger
                .store_plan("a1", Processor::Wix, "w2", claim, &plan_of(&["c-9"]), Utc::now())
                .await
                .unwrap(),
            None,
            "only the worker holding the task stores its plan"
        );
        let stored = ledger.current_plan("a1", Processor::Wix).await.unwrap().unwrap();
        assert_eq!(stored, wix, "stored as made: items, values, states");
        let planned_result = TaskResult::Planned { found: 2 };
        assert!(
            ledger
                .finish_task("a1", Processor::Wix, "w1", claim, &planned_result)
                .await
                .unwrap()
        );
        assert_eq!(
            ledger.await_approval("a1").await.unwrap(),
            None,
            "google has not planned yet"
        );
        let (gclaim, _) = planned(&ledger, "a1", Processor::Google, &["g-1"]).await;
        assert!(
            ledger
                .finish_task("a1", Processor::Google, "w1", gclaim, &planned_result)
                .await
                .unwrap()
        );
        let hash = ledger.await_approval("a1").await.unwrap().expect("every task planned");
        assert_eq!(
            ledger.get_request("a1").await.unwrap().status,
            RequestStatus::AwaitingApproval
        );
        assert_eq!(
            hash,
            dsr_jobs::ledger::request_plan_hash(&ledger.plans("a1").await.unwrap())
        );

        // Made again (a retry): the old hash no longer approves anything.
        let retried = ledger.retry("a1", None, "test").await.unwrap();
        assert_eq!(retried.len(), 2);
        assert_eq!(
            ledger.current_plan("a1", Processor::Wix).await.unwrap(),
            None,
            "superseded"
        );
        let (c2, _) = planned(&ledger, "a1", Processor::Wix, &["c-1", "c-2"]).await;
        ledger
            .finish_task("a1", Processor::Wix, "w1", c2, &planned_result)
            .await
            .unwrap();
        let (g2, _) = planned(&ledger, "a1", Processor::Google, &["g-1"]).await;
        ledger
            .finish_task("a1", Processor::Google, "w1", g2, &planned_result)
            .await
            .unwrap();
        let fresh = ledger.await_approval("a1").await.unwrap().unwrap();
        assert_ne!(fresh, hash, "the same findings planned again are another plan");
        match ledger.approve("a1", &hash, "kari.operator", false).await {
            Err(LedgerError::Refused(m)) => assert!(m.contains("made again") && m.contains(&fresh), "{m}"),
            other => panic!("a stale plan hash was accepted: {other:?}"),
        }
        let approved = ledger.approve("a1", &fresh, "per.operator", false).await.unwrap();
        assert_eq!(approved.len(), 2);
        assert_eq!(
            ledger.get_request("a1").await.unwrap().status,
            RequestStatus::InProgress
        );
        assert_eq!(task_of(&ledger, "a1", Processor::Wix).await.status, TaskStatus::Pending);
        let wix = ledger.current_plan("a1", Processor::Wix).await.unwrap().unwrap();
        assert_eq!(wix.approved_by.as_deref(), Some("per.operator"));
        let events = ledger.audit_events("a1").await.unwrap();
        let approval = events.iter().find(|e| e.event == "request.approved").unwrap();
        assert_eq!(approval.detail["plan"], json!(fresh));
        assert_eq!(approval.detail["by"], "per.operator");
        assert_eq!(
            events.iter().filter(|e| e.event == "plan.made").count(),
            4,
            "each plan's hash is in the chain"
        );
        assert!(
            matches!(
                ledger.approve("a1", &fresh, "x", false).await,
                Err(LedgerError::Refused(_))
            ),
            "once"
        );
        assert_eq!(ledger.verify_audit_chain().await.unwrap().problem, None);
        ledger.close().await;
    })
    .await;
}

#[tokio::test]
async fn an_item_outcome_is_recorded_once_and_a_rejection_ends_the_request() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "r1", &[Processor::Wix]).await;
        ledger.start_request("r1").await.unwrap();
        let (claim, stored) = planned(&ledger, "r1", Processor::Wix, &["c-1", "c-2"]).await;
        let done = dsr_connector::ItemState::Done {
            receipt: json!({"status": 204}),
        };
        assert!(
            !ledger.record_item(&stored.hash, 0, &done, "w2", claim).await.unwrap(),
            "a worker that does not hold the task records nothing (and stops executing)"
        );
        assert!(ledger.record_item(&stored.hash, 0, &done, "w1", claim).await.unwrap());
        assert!(
            !ledger
                .record_item(&stored.hash, 0, &dsr_connector::ItemState::AlreadyGone, "w1", claim)
                .await
                .unwrap(),
            "a re-delivered execution cannot overwrite an outcome"
        );
        let now = ledger.current_plan("r1", Processor::Wix).await.unwrap().unwrap();
        assert_eq!(now.plan.items[0].state, done);
        assert!(now.plan.items[1].is_due(), "the second item is still to do");
        ledger
            .finish_task("r1", Processor::Wix, "w1", claim, &TaskResult::Planned { found: 2 })
            .await
            .unwrap();
        ledger.await_approval("r1").await.unwrap().unwrap();
        assert!(
            matches!(ledger.reject("r1", " ", "x").await, Err(LedgerError::Refused(_))),
            "a reason is required"
        );
        ledger
            .reject("r1", "the subject withdrew the request by phone", "per.operator")
            .await
            .unwrap();
        let request = ledger.get_request("r1").await.unwrap();
        assert_eq!(request.status, RequestStatus::Rejected);
        assert!(request.status.is_terminal() && request.finished_at.is_some());
        assert_eq!(
            task_of(&ledger, "r1", Processor::Wix).await.status,
            TaskStatus::Cancelled
        );
        let events = ledger.audit_events("r1").await.unwrap();
        let rejected = events.iter().find(|e| e.event == "request.rejected").unwrap();
        assert_eq!(rejected.detail["by"], "per.operator");
        assert!(rejected.detail["plan"].is_string());
        ledger.close().await;
    })
    .await;
}

#[tokio::test]
async fn opendsr_callbacks_are_queued_once_per_change_superseded_taken_once_and_requests_claimed_once() {
    use dsr_jobs::ledger::Origin;
    use dsr_jobs::ledger::opendsr::OpenDsrOrigin;
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        let new = util::request_for(util::SEEDED_EMAIL, RequestKind::Access, &[Processor::Wix], Utc::now());
        let due = Utc::now() + ChronoDuration::days(30);
        let origin = |token: &str, body: &str| Origin {
            actor: Some("token:cdp".into()),
            idempotency: None,
            opendsr: Some(OpenDsrOrigin {
                subject_request_id: "a7551968-d5d6-44b2-9831-815ac9017798".into(),
                token_id: token.into(),
                controller_id: "cdp".into(),
                request_type: "access".into(),
                regulation: "gdpr".into(),
                callback_urls: vec!["https://cdp.example.no/a".into(), "https://cdp.example.no/b".into()],
                body_sha256: body.into(),
                status: "pending".into(),
            }),
            submission: None,
        };
        assert_eq!(
            ledger
                .create_request_from("r1", &new, due, &origin("t1", "b1"))
                .await
                .unwrap(),
            None
        );
        // The same body from the same token is the first request; anything else is refused.
        assert_eq!(
            ledger
                .create_request_from("r2", &new, due, &origin("t1", "b1"))
                .await
                .unwrap(),
            Some("r1".into())
        );
        for (token, body) in [("t1", "other"), ("t2", "b1")] {
            let refused = ledger.create_request_from("r3", &new, due, &origin(token, body)).await;
            assert!(matches!(refused, Err(LedgerError::Refused(_))), "{refused:?}");
        }
        assert!(
            ledger.request("r2").await.unwrap().is_none(),
            "nothing stored for a replay"
        );

        let unsettled = ledger.opendsr_unsettled().await.unwrap();
        assert_eq!(unsettled.len(), 1);
        let (stored, status) = &unsettled[0];
        assert_eq!(*status, RequestStatus::Received);
        assert!(ledger.opendsr_status_changed(stored, "in_progress").await.unwrap());
        assert!(
            !ledger.opendsr_status_changed(stored, "in_progress").await.unwrap(),
            "a second process sees the change made"
        );
        let due_now = ledger.opendsr_due_callbacks(Utc::now(), 10).await.unwrap();
        assert_eq!(due_now.len(), 2, "one per URL");

        // Taken once: a second taker of the same row gets nothing.
        let lease = Utc::now() + ChronoDuration::seconds(20);
        assert!(ledger.opendsr_take_callback(&due_now[0], lease).await.unwrap());
        assert!(!ledger.opendsr_take_callback(&due_now[0], lease).await.unwrap());
        assert!(
            ledger
                .opendsr_callback_done("r1", &due_now[0], lease, Ok(()))
                .await
                .unwrap()
        );
        // A result reported under a lease that is not the row's is not recorded.
        let stale = lease - ChronoDuration::seconds(5);
        assert!(ledger.opendsr_take_callback(&due_now[1], lease).await.unwrap());
        let retry = Utc::now() + ChronoDuration::seconds(10);
        assert!(
            !ledger
                .opendsr_callback_done("r1", &due_now[1], stale, Err(("answered 503".into(), Some(retry))))
                .await
                .unwrap()
        );
        assert!(
            ledger
                .opendsr_callback_done("r1", &due_now[1], lease, Err(("answered 503".into(), Some(retry))))
                .await
                .unwrap()
        );

        // The next status supersedes the one not yet delivered.
        let (stored, _) = ledger.opendsr_unsettled().await.unwrap().remove(0);
        assert!(ledger.opendsr_status_changed(&stored, "completed").await.unwrap());
        let all = ledger
            .opendsr_callbacks("a7551968-d5d6-44b2-9831-815ac9017798")
            .await
            .unwrap();
        let state = |url: &str, status: &str| {
            all.iter()
                .find(|c| c.url.ends_with(url) && c.request_status == status)
                .map(|c| (c.sent_at.is_some(), c.given_up_at.is_some(), c.last_error.clone()))
                .unwrap()
        };
        assert_eq!(state("/a", "in_progress"), (true, false, None));
        assert_eq!(
            state("/b", "in_progress"),
            (false, true, Some("superseded by a later status".into()))
        );
        assert_eq!(state("/a", "completed"), (false, false, None));
        assert_eq!(state("/b", "completed"), (false, false, None));
        assert!(
            ledger.opendsr_unsettled().await.unwrap().is_empty(),
            "completed is final"
        );
        let events: Vec<String> = ledger
            .audit_events("r1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(
            events.iter().filter(|e| *e == "opendsr.status").count(),
            2,
            "{events:?}"
        );
        assert_eq!(
            events.iter().filter(|e| *e == "opendsr.callback_sent").count(),
            1,
            "{events:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_completed_request_is_queued_for_its_email_and_its_links_count_codes_and_downloads() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "d1", &[Processor::Wix]).await;
        ledger.start_request("d1").await.unwrap();
        let claim = ledger
            .claim_task("d1", Processor::Wix, "w1", LEASE)
            .await
            .unwrap()
            .unwrap();
        ledger
            .finish_task("d1", Processor::Wix, "w1", claim, &done(1))
            .await
            .unwrap();
        assert!(ledger.claim_finalize("d1", "w1", LEASE).await.unwrap());
        let written = confirmation("/x/d1.json");
        assert!(
            ledger
                .complete_request("d1", RequestStatus::Completed, &written, false, "w1", true)
                .await
                .unwrap()
        );

        // Queued with the result; one worker takes it at a time.
        let now = ledger.now();
        let due = ledger.deliveries_due(now, 10).await.unwrap();
        assert_eq!(due.iter().map(|d| d.request_id.as_str()).collect::<Vec<_>>(), ["d1"]);
        assert!(
            ledger
                .take_delivery("d1", now + ChronoDuration::minutes(2))
                .await
                .unwrap()
        );
        assert!(
            !ledger
                .take_delivery("d1", now + ChronoDuration::minutes(2))
                .await
                .unwrap()
        );

        // The first mail fails: its link is withdrawn, the outbox waits, then retries.
        ledger
            .create_delivery("l1", "d1", "t1", now + ChronoDuration::days(7), 2)
            .await
            .unwrap();
        let later = now + ChronoDuration::seconds(30);
        ledger
            .delivery_send_failed(Some("l1"), "d1", "smtp down", Some(later))
            .await
            .unwrap();
        assert!(ledger.delivery_by_token("t1").await.unwrap().is_none());
        assert!(ledger.deliveries_due(now, 10).await.unwrap().is_empty());
        let due = ledger.deliveries_due(later, 10).await.unwrap();
        assert_eq!(due[0].attempts, 1);

        // Sent; a second link (a resend) replaces the first only once it is sent.
        ledger
            .create_delivery("l2", "d1", "t2", now + ChronoDuration::days(7), 2)
            .await
            .unwrap();
        let l2 = ledger.delivery_by_token("t2").await.unwrap().unwrap();
        ledger.delivery_sent(&l2, None).await.unwrap();
        assert!(ledger.deliveries_due(later, 10).await.unwrap().is_empty());
        ledger
            .create_delivery("l3", "d1", "t3", now + ChronoDuration::days(7), 2)
            .await
            .unwrap();
        assert!(
            ledger
                .delivery_by_token("t2")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );
        ledger
            .delivery_send_failed(Some("l3"), "d1", "smtp down", Some(later))
            .await
            .unwrap();
        assert!(
            ledger
                .delivery_by_token("t2")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none(),
            "a failed resend leaves the old link"
        );
        assert_eq!(
            ledger.deliveries_due(later, 10).await.unwrap().len(),
            1,
            "and the worker tries again"
        );

        // Codes: one a minute at most; a wrong one counted; the right one gives one download.
        let gap = ChronoDuration::seconds(60);
        let expires = now + ChronoDuration::minutes(15);
        assert!(ledger.delivery_code_sent(&l2, "c1", expires, 10, gap).await.unwrap());
        assert!(
            !ledger.delivery_code_sent(&l2, "c2", expires, 10, gap).await.unwrap(),
            "too soon"
        );
        assert!(!ledger.delivery_wrong_code(&l2, 5).await.unwrap());
        let l2 = ledger.delivery_by_token("t2").await.unwrap().unwrap();
        assert_eq!((l2.codes_sent, l2.code_tries), (1, 1));
        assert!(
            !ledger.delivery_unlocked(&l2, "c2", "g1", expires).await.unwrap(),
            "not the code sent"
        );
        assert!(ledger.delivery_unlocked(&l2, "c1", "g1", expires).await.unwrap());
        assert!(!ledger.delivery_download(&l2, "g-other", None).await.unwrap());
        assert!(ledger.delivery_download(&l2, "g1", None).await.unwrap());
        assert!(
            !ledger.delivery_download(&l2, "g1", None).await.unwrap(),
            "one download per code"
        );
        let l2 = ledger.delivery_by_token("t2").await.unwrap().unwrap();
        assert!(ledger.delivery_resumed(&l2, "g1", "bytes=100-").await.unwrap());
        assert_eq!(l2.downloads, 1);
        let events: Vec<_> = ledger
            .audit_events("d1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        for e in [
            "delivery.send_failed",
            "delivery.sent",
            "delivery.code_sent",
            "delivery.code_failed",
            "delivery.unlocked",
            "delivery.downloaded",
            "delivery.resumed",
        ] {
            assert!(events.iter().any(|x| x == e), "{e} missing from {events:?}");
        }
        assert!(ledger.verify_audit_chain().await.unwrap().problem.is_none());
    })
    .await;
}

#[tokio::test]
async fn operator_accounts_lock_after_five_wrong_passwords_and_sessions_end_idle_or_disabled() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        ledger
            .add_operator("kari", dsr_jobs::model::Role::Approver, "$argon2id$hash", "os:test")
            .await
            .unwrap();
        assert!(matches!(
            ledger
                .add_operator("kari", dsr_jobs::model::Role::Viewer, "x", "os:test")
                .await,
            Err(LedgerError::Refused(_))
        ));
        let until = ledger.now() + ChronoDuration::minutes(15);
        for n in 1..=5 {
            assert!(ledger.signin_claim("kari").await.unwrap(), "attempt {n} is claimed");
            ledger.signin_failed("kari", true, until).await.unwrap();
            let kari = ledger.operator("kari").await.unwrap().unwrap();
            assert_eq!(kari.locked_until.is_some(), n == 5, "after {n} wrong passwords");
        }
        // Locked: no attempt is claimed (so none is checked), and an unknown name is none.
        assert!(!ledger.signin_claim("kari").await.unwrap());
        assert!(!ledger.signin_claim("nobody").await.unwrap());
        ledger.signin_failed("nobody", false, until).await.unwrap();
        // Signing in clears the lock and starts a session that idles out.
        ledger.signed_in("kari", "token-hash", "csrf", None).await.unwrap();
        assert!(ledger.operator("kari").await.unwrap().unwrap().locked_until.is_none());
        let minutes = ChronoDuration::minutes;
        let session = ledger
            .session("token-hash", minutes(30), minutes(600))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (session.operator.name.as_str(), session.csrf.as_str()),
            ("kari", "csrf")
        );
        assert!(
            ledger
                .session("other", minutes(30), minutes(600))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            ledger
                .session("token-hash", ChronoDuration::zero(), minutes(600))
                .await
                .unwrap()
                .is_none(),
            "idle"
        );
        ledger
            .signed_in("kari", "second", "csrf2", Some("token-hash"))
            .await
            .unwrap();
        assert!(
            ledger
                .session("token-hash", minutes(30), minutes(600))
                .await
                .unwrap()
                .is_none(),
            "replaced"
        );
        ledger.disable_operator("kari", "os:test").await.unwrap();
        assert!(
            ledger
                .session("second", minutes(30), minutes(600))
                .await
                .unwrap()
                .is_none(),
            "disabled"
        );
        // Added, six failures, two sign-ins, disabled: each an event in an intact chain.
        let verdict = ledger.verify_audit_chain().await.unwrap();
        assert!(verdict.problem.is_none());
        assert_eq!(verdict.events, 10);
    })
    .await;
}

#[tokio::test]
async fn each_processors_last_call_is_its_latest_finished_attempt() {
    on_both(|url| async move {
        let ledger = Ledger::open(&url).await.unwrap();
        create(&ledger, "l1", &[Processor::Google, Processor::Wix]).await;
        ledger.start_request("l1").await.unwrap();
        assert!(ledger.last_calls().await.unwrap().is_empty(), "nothing tried yet");
        let claim = ledger
            .claim_task("l1", Processor::Google, "w", LEASE)
            .await
            .unwrap()
            .unwrap();
        ledger
            .finish_task("l1", Processor::Google, "w", claim, &done(1))
            .await
            .unwrap();
        let claim = ledger
            .claim_task("l1", Processor::Wix, "w", LEASE)
            .await
            .unwrap()
            .unwrap();
        let throttled = TaskResult::Retrying {
            error: TaskError::new("retry_later:429", "throttled"),
            next_retry_at: Utc::now() + ChronoDuration::hours(1),
        };
        ledger
            .finish_task("l1", Processor::Wix, "w", claim, &throttled)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // A later request's Google task fails: that is Google's last call now.
        create(&ledger, "l2", &[Processor::Google]).await;
        ledger.start_request("l2").await.unwrap();
        let claim = ledger
            .claim_task("l2", Processor::Google, "w", LEASE)
            .await
            .unwrap()
            .unwrap();
        let failed = TaskResult::Failed {
            error: TaskError::new("permanent:403", "forbidden"),
        };
        ledger
            .finish_task("l2", Processor::Google, "w", claim, &failed)
            .await
            .unwrap();
        let last: Vec<_> = ledger
            .last_calls()
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.processor.clone(), c.request_id.clone(), c.status.clone(), c.failed()))
            .collect();
        assert_eq!(
            last,
            [
                ("google".to_string(), "l2".to_string(), "failed".to_string(), true),
                ("wix".to_string(), "l1".to_string(), "retrying".to_string(), true),
            ]
        );
        ledger.close().await;
    })
    .await;
}
