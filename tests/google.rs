//! The Google connector (Analytics) against the fake Google APIs in `fixtures/`.

mod util;

use std::collections::BTreeSet;
use std::time::Duration;

use dsr_connector::{Connector, ConnectorError, Email, Identities, MemorySink, TaskContext};
use dsr_fixtures::google::{GoogleFake, GoogleState, TEST_PRIVATE_KEY, UNKNOWN_PRIVATE_KEY};
use dsr_google::{Google, GoogleConfig};

fn seeded(path: &[&str]) -> String {
    GoogleState::seed_value(path)
}

/// The `[processors.google]` keys for the fake, with the key file written under `dir`.
fn section(fake: &GoogleFake, dir: &std::path::Path, private_key: &str, extra: &str) -> String {
    let text = fake.connector_toml(&dir.join("google-sa.json"), private_key).unwrap();
    format!("{text}{extra}")
}

async fn connector(fake: &GoogleFake, dir: &std::path::Path, extra: &str) -> Google {
    let config: GoogleConfig = toml::from_str(&section(fake, dir, TEST_PRIVATE_KEY, extra)).unwrap();
    Google::new(config).unwrap()
}

fn kari() -> Identities {
    Identities {
        emails: vec![Email::parse("Kari.Nordmann@Gmail.com").unwrap()],
        ga_client_ids: vec![seeded(&["subject", "client_id"])],
        ga_user_ids: vec![seeded(&["subject", "user_id"])],
        ..Default::default()
    }
}

fn ctx() -> TaskContext {
    TaskContext {
        request_id: "t".into(),
        attempt: 1,
        dry_run: false,
    }
}

#[tokio::test]
async fn access_exports_the_subjects_bigquery_rows_and_nothing_of_a_look_alike() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "").await;
    let mut sink = MemorySink::default();
    let summary = google.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert_eq!(
        summary.found, 4,
        "three events under the client id, one under the user id"
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
async fn without_a_bigquery_export_access_says_so_plainly() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = section(&fake, dir.path(), TEST_PRIVATE_KEY, "").replace("bigquery_dataset", "# bigquery_dataset");
    let google = Google::new(toml::from_str(&text).unwrap()).unwrap();
    let mut sink = MemorySink::default();
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
    let report = google.erase(&ctx(), &kari()).await.unwrap();
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
    let evidence = &report.evidence[0].detail["requests"];
    let times: BTreeSet<&str> = evidence
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["deletionRequestTime"].as_str())
        .collect();
    let from_google: BTreeSet<&str> = deletions.iter().map(|d| d.deletion_request_time.as_str()).collect();
    assert_eq!(times, from_google, "deletionRequestTime recorded exactly as returned");
    assert_eq!(report.changed, 6);
}

#[tokio::test]
async fn a_daily_quota_schedules_the_retry_after_googles_reset() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = connector(&fake, dir.path(), "").await;
    fake.with(|s| s.daily_quota = 0);
    let err = google.erase(&ctx(), &kari()).await.unwrap_err();
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
    let err = google.erase(&ctx(), &kari()).await.unwrap_err();
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
    assert!(matches!(
        google.capabilities().rectification,
        dsr_connector::Support::NotApplicable(_)
    ));
    let report = google.withdraw_consent(&ctx(), &kari()).await.unwrap();
    assert_eq!(fake.deletions().len(), 4);
    assert!(report.notes[0].contains("only objection"), "{:?}", report.notes);
}

/// The real binary and queue with the connector configured against the fake.
struct Deployed {
    fake: GoogleFake,
    deployment: util::Deployment,
}

async fn deployed(private_key: &str) -> Deployed {
    let fake = GoogleFake::start().await.unwrap();
    let deployment = util::Deployment::sqlite("");
    let text = std::fs::read_to_string(&deployment.config).unwrap();
    let google = section(&fake, deployment.path(), private_key, "");
    std::fs::write(&deployment.config, format!("{text}[processors.google]\n{google}")).unwrap();
    Deployed { fake, deployment }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_burst_delays_but_completes_and_redelivery_submits_nothing_twice() {
    let d = deployed(TEST_PRIVATE_KEY).await;
    d.fake.throttle_next(6);
    let client_id = seeded(&["subject", "client_id"]);
    let args = [
        "run",
        "erasure",
        "--email",
        "kari.nordmann@example.no",
        "--ga-client-id",
        &client_id,
        "--timeout",
        "90s",
    ];
    let (code, status) = util::dsr_json_async(&d.deployment, &args).await;
    assert_eq!(code, 0, "{status}");
    let google = util::task(&status, "google");
    assert_eq!(google["status"], "succeeded");
    assert!(
        google["attempts"].as_u64().unwrap() >= 2,
        "the burst outlasted the call's own retries: {google}"
    );
    assert_eq!(d.fake.deletions().len(), 2, "one per property");

    // The same task delivered again changes nothing at Google.
    let id = status["id"].as_str().unwrap().to_string();
    let settings = util::fast_settings(
        &format!("sqlite://{}/data/queue.db", d.deployment.path().display()),
        "dsr",
        &d.deployment.data().join("export"),
    );
    let queue = dsr_jobs::Queue::connect(&settings.queue).await.unwrap();
    let job = dsr_jobs::Job::ProcessorTask {
        request_id: id,
        processor: dsr_connector::Processor::Google,
    };
    queue.push(job.clone()).await.unwrap();
    queue.push(job).await.unwrap();
    let mut worker = tokio::process::Command::new(util::dsr_bin())
        .arg("--config")
        .arg(&d.deployment.config)
        .arg("worker")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    worker.kill().await.ok();
    assert_eq!(
        d.fake.deletions().len(),
        2,
        "a re-delivered task submitted deletions again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_fails_the_task_naming_the_credential_without_endless_retries() {
    let d = deployed(UNKNOWN_PRIVATE_KEY).await;
    let client_id = seeded(&["subject", "client_id"]);
    let (code, status) = util::dsr_json_async(
        &d.deployment,
        &["run", "erasure", "--ga-client-id", &client_id, "--timeout", "60s"],
    )
    .await;
    assert_eq!(code, 1, "{status}");
    let google = util::task(&status, "google");
    assert_eq!(google["status"], "failed");
    assert_eq!(google["attempts"], 1, "refused credentials are not retried: {google}");
    let error = google["error"].as_str().unwrap();
    assert!(
        error.contains("dsr@racom-analytics.iam.gserviceaccount.com") && error.contains("Invalid JWT Signature"),
        "{error}"
    );
    assert!(error.contains("dsr retry"), "the error says what to do next: {error}");
    assert!(d.fake.deletions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_a_missing_property_permission() {
    let d = deployed(TEST_PRIVATE_KEY).await;
    let (code, report) = util::dsr_json_async(&d.deployment, &["doctor"]).await;
    assert_eq!(code, 0, "{report}");
    d.fake.deny_property("351234567");
    let (code, report) = util::dsr_json_async(&d.deployment, &["doctor"]).await;
    assert_eq!(code, 1, "{report}");
    let google = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "processor google")
        .unwrap();
    assert_eq!(google["ok"], false);
    assert!(
        google["detail"]
            .as_str()
            .unwrap()
            .contains("Editor role on GA4 property 351234567"),
        "{google}"
    );
}
