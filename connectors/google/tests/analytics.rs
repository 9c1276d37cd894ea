//! Google Analytics against the fake Google APIs in `fixtures/`: access through the GA4
//! BigQuery export, erasure and objection as user deletion requests, each a plan the engine
//! checks and then executes (`dsr_connector::apply`).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use dsr_connector::{
    Action, Change, Connector, ConnectorError, Email, Identities, IdentityKind, ItemState, MemorySink, apply,
};
use dsr_fixtures::google::{GoogleFake, TEST_PRIVATE_KEY};
use dsr_fixtures::testing::first_attempt as ctx;
use dsr_google::Google;

#[tokio::test]
async fn access_exports_the_subjects_bigquery_rows_and_nothing_of_a_look_alike() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "").await;
    let mut sink = MemorySink::checked(kari());
    let summary = google.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert_eq!(
        summary.found, 4,
        "three events under the client id, one under the user id; the event also in the day's \
         intraday table is counted once"
    );
    assert!(
        fake.bigquery_dataset().starts_with("example.com:"),
        "a domain-scoped project id"
    );
    let client_ids: BTreeSet<&str> = sink
        .records
        .iter()
        .filter_map(|r| r.data["user_pseudo_id"].as_str())
        .collect();
    assert!(
        !client_ids.contains(seeded(&["look_alike", "client_id"]).as_str()),
        "{client_ids:?}"
    );
    assert!(
        sink.records
            .iter()
            .all(|r| r.category == "analytics_events" && r.provided_by_subject)
    );
    assert_eq!(
        sink.records[0].data["geo"]["city"], "Oslo",
        "nested records are decoded by schema"
    );

    let query = fake.with(|s| s.queries[0].clone());
    let sql = query["query"].as_str().unwrap();
    assert!(
        !sql.contains(&seeded(&["subject", "client_id"])),
        "identifiers were spliced into SQL: {sql}"
    );
    assert_eq!(query["useLegacySql"], false);
    assert_eq!(query["queryParameters"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_bigquery_job_that_does_not_finish_within_the_wait_is_retried_later() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "bigquery_wait = \"1s\"\n").await;
    fake.with(|s| s.jobs_never_complete = true);
    let mut sink = MemorySink::checked(kari());
    let started = std::time::Instant::now();
    let err = google.access(&ctx(), &kari(), &mut sink).await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.code(), "retry_later:bigquery_timeout", "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("processors.google.bigquery_wait)"),
        "names the key to raise: {err}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)), "{err:?}");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(4),
        "waited the configured second, not the default two minutes: {waited:?}"
    );
    assert!(sink.records.is_empty());
    let polls: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("GET projects/") && c.contains("/queries/"))
        .collect();
    assert!(polls.len() >= 3, "polled while the second lasted: {polls:?}");
    let query = fake.with(|s| s.queries[0].clone());
    assert!(
        query["timeoutMs"].as_u64().is_some_and(|ms| ms <= 1000),
        "BigQuery is not asked to hold the call past the wait: {query}"
    );

    // Once the job can finish, the same connector exports the events.
    fake.with(|s| s.jobs_never_complete = false);
    let mut sink = MemorySink::checked(kari());
    assert_eq!(google.access(&ctx(), &kari(), &mut sink).await.unwrap().found, 4);
}

#[tokio::test]
async fn without_a_bigquery_export_access_says_so_plainly() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = section(&fake, dir.path(), TEST_PRIVATE_KEY, "").replace("bigquery_dataset", "# bigquery_dataset");
    let google = Google::new(toml::from_str(&text).unwrap()).unwrap();
    let mut sink = MemorySink::checked(kari());
    let summary = google.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert_eq!(summary.found, 0);
    assert!(
        summary.notes[0].contains("no export of one visitor's data"),
        "{:?}",
        summary.notes
    );
    assert!(
        summary.notes[0].contains(&seeded(&["subject", "client_id"])),
        "the identifiers searched are listed"
    );
}

#[tokio::test]
async fn erasure_submits_one_deletion_per_identifier_and_property_with_googles_time() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "use_user_provided_data = true\n").await;
    let applied = erase(&google, &kari(), &retain()).await.unwrap();
    let deletions = fake.deletions();
    assert_eq!(
        deletions.len(),
        6,
        "(client id, user id, e-mail) × two properties: {deletions:?}"
    );
    let pairs: BTreeSet<(String, String)> = deletions.iter().map(|d| (d.property.clone(), d.id.clone())).collect();
    assert_eq!(pairs.len(), 6, "nothing was submitted twice");
    let upd: Vec<_> = deletions.iter().filter(|d| d.api == "admin").collect();
    assert!(
        upd.iter().all(|d| d.id == "karinordmann@gmail.com"),
        "normalised as Google documents: {upd:?}"
    );
    assert!(
        deletions
            .iter()
            .filter(|d| d.id_type == "CLIENT_ID")
            .all(|d| d.api == "v3")
    );
    let times: BTreeSet<&str> = applied
        .plan
        .items
        .iter()
        .filter_map(|i| match &i.state {
            ItemState::Done { receipt } => receipt["deletionRequestTime"].as_str(),
            _ => None,
        })
        .collect();
    let from_google: BTreeSet<&str> = deletions.iter().map(|d| d.deletion_request_time.as_str()).collect();
    assert_eq!(times, from_google, "deletionRequestTime recorded exactly as returned");
    assert_eq!(applied.changed(), 6);
    assert_eq!(applied.keys("analytics_user", "done").len(), 6);
    let client_id = seeded(&["subject", "client_id"]);
    let item = applied
        .item(&format!("analytics_user 351234567 CLIENT_ID {client_id}"))
        .expect("keyed by property, type and identifier");
    assert_eq!(item.action, Action::Delete);
    assert_eq!(item.claims[0].identity, IdentityKind::GaClientId);
    let kinds: BTreeSet<String> = applied
        .plan
        .items
        .iter()
        .map(|i| format!("{:?}", i.claims[0].identity))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["Email", "GaClientId", "GaUserId"].map(String::from)),
        "each request claims the subject's own identifier it is made from"
    );
    // Keyed by the address she gave; the form sent to userProvidedData (dots removed) is
    // only in the call's target, never in a key or a receipt.
    for property in ["351234567", "351234568"] {
        let key = format!("analytics_user {property} userProvidedData kari.nordmann@gmail.com");
        let item = applied
            .item(&key)
            .unwrap_or_else(|| panic!("{key}: {:?}", applied.plan.items));
        assert_eq!(item.target["value"], "karinordmann@gmail.com", "the call is as before");
        let ItemState::Done { receipt } = &item.state else {
            panic!("{item:?}")
        };
        assert!(receipt["deletionRequestTime"].is_string(), "{receipt}");
    }
    for item in &applied.plan.items {
        let receipt = serde_json::to_string(&item.state).unwrap();
        assert!(
            !item.key.contains("karinordmann") && !receipt.contains("karinordmann"),
            "{item:?}"
        );
    }
    assert!(
        applied.plan.notes.iter().any(|n| n.contains("72 hours")),
        "{:?}",
        applied.plan.notes
    );
    // Analytics shows no deletion request once made: planning again finds the same
    // identifiers, and a request made is not a deletion left undone.
    assert!(remaining(&applied).is_empty(), "{:?}", remaining(&applied));
}

#[tokio::test]
async fn without_an_analytics_identifier_the_plan_says_what_to_give() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "").await;
    let subject = Identities {
        emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
        ..Default::default()
    };
    let plan = google.plan(&ctx(), &subject, &Change::Erasure).await.unwrap();
    assert!(plan.items.is_empty());
    assert!(plan.notes[0].contains("--ga-client-id"), "{:?}", plan.notes);
}

#[tokio::test]
async fn a_daily_quota_schedules_the_retry_after_googles_reset() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "").await;
    fake.with(|s| s.daily_quota = 0);
    let err = erase(&google, &kari(), &retain()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.retry_after().is_some_and(|d| d > Duration::from_secs(60)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_property_role_is_named() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "").await;
    fake.deny_property("351234568");
    let err = erase(&google, &kari(), &retain()).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Permanent { .. }), "{err}");
    assert!(
        err.to_string().contains("Editor role on GA4 property 351234568"),
        "{err}"
    );
}

#[tokio::test]
async fn rectification_is_not_applicable_and_objection_deletes() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "").await;
    let dsr_connector::Support::NotApplicable(reason) = google.capabilities().rectification else {
        panic!("rectification without Workspace")
    };
    // Asked anyway: the reason its capabilities give, and nothing planned.
    let err = google.plan(&ctx(), &kari(), &family_name("Hansen")).await.unwrap_err();
    assert!(
        matches!(&err, ConnectorError::NotSupported { reason: why, .. } if *why == reason),
        "{err}"
    );
    let applied = apply(&google, &ctx(), &kari(), &Change::Objection, &retain())
        .await
        .unwrap();
    assert_eq!(fake.deletions().len(), 4);
    assert_eq!(applied.keys("analytics_user", "done").len(), 4);
    assert!(applied.plan.items.iter().all(|i| i.action == Action::Delete));
    assert!(
        applied.plan.notes[0].contains("only objection"),
        "{:?}",
        applied.plan.notes
    );
}
