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
    util::first_attempt()
}

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

const KARI: &str = "kari.nordmann@example.no";
const KARI_PHONE: &str = "+4791234567";

/// Kari as known to Workspace: her address and her mobile number.
fn kari_in_workspace() -> Identities {
    Identities {
        emails: vec![Email::parse(KARI).unwrap()],
        phones: vec![dsr_connector::Phone::parse("912 34 567", "NO").unwrap()],
        ..Default::default()
    }
}

async fn workspace_connector(fake: &GoogleFake, dir: &std::path::Path, mode: &str) -> Google {
    let users: Vec<String> = fake.workspace_users().iter().map(|u| format!("\"{u}\"")).collect();
    let extra = format!(
        "workspace = {{ mailboxes = [{}], delete_mode = \"{mode}\" }}\n",
        users.join(", ")
    );
    connector(fake, dir, &extra).await
}

#[tokio::test]
async fn workspace_mail_is_exported_as_eml_that_parses_and_contacts_match_exactly() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let mut sink = MemorySink::checked(kari_in_workspace());
    google.access(&ctx(), &kari_in_workspace(), &mut sink).await.unwrap();
    let mail: BTreeSet<String> = sink
        .records
        .iter()
        .filter(|r| r.category == "mail")
        .filter_map(|r| r.id.clone())
        .collect();
    assert_eq!(
        mail,
        BTreeSet::from(["g-ola-1", "g-ola-2", "g-ola-4", "g-post-1", "g-post-3"].map(String::from)),
        "in Spam (g-post-3) and the Trash (g-ola-4) too: Gmail still holds them"
    );
    let other: BTreeSet<String> = sink
        .records
        .iter()
        .filter(|r| r.category == "other_contacts")
        .filter_map(|r| r.id.clone())
        .collect();
    assert_eq!(
        other,
        BTreeSet::from(["otherContacts/oc1".to_string()]),
        "the address Gmail saved from mail, not the look-alike's"
    );
    // Addresses are matched on the headers (format=metadata); the raw message is fetched
    // once, and only for the subject's messages.
    let raw_fetches: Vec<String> = fake.calls().into_iter().filter(|c| c.contains("format=raw")).collect();
    assert_eq!(
        raw_fetches.len(),
        5,
        "one raw fetch per message of hers: {raw_fetches:?}"
    );
    assert!(
        fake.calls().iter().any(|c| c.contains("format=metadata")),
        "candidates are checked on their headers first"
    );
    let contacts: BTreeSet<String> = sink
        .records
        .iter()
        .filter(|r| r.category == "contacts")
        .filter_map(|r| r.id.clone())
        .collect();
    assert_eq!(
        contacts,
        BTreeSet::from(["people/c1".to_string(), "people/c3".to_string()]),
        "by address and by phone"
    );
    assert!(
        !serde_json::to_string(&sink.records).unwrap().contains("annkari"),
        "the look-alike was exported"
    );
    assert_eq!(sink.files.len(), 5, "one .eml per message");
    assert!(
        sink.files
            .iter()
            .all(|(meta, file)| meta.media_type == "message/rfc822" && file.path.starts_with("mail/"))
    );
}

#[tokio::test]
async fn exported_eml_bytes_parse_with_a_mime_parser_and_keep_their_attachments() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    // Through the real spool on the export storage, so the stored bytes are the ones checked.
    let store = dsr_jobs::storage::ExportStore::local(dir.path().join("export")).unwrap();
    let key = dsr_jobs::spool::spool_key("r1", dsr_connector::Processor::Google, 1);
    let mut spool = dsr_jobs::spool::SpoolWriter::create(&store, key);
    google.access(&ctx(), &kari_in_workspace(), &mut spool).await.unwrap();
    let committed = spool.commit().await.unwrap();
    let mut mail = Vec::new();
    dsr_jobs::spool::read_spool(&store, &committed, |entry| {
        if let dsr_jobs::spool::SpoolEntry::File(file) = entry {
            mail.push(file.path);
        }
        Ok(())
    })
    .await
    .unwrap();
    let mut parsed = 0;
    for path in mail {
        assert!(path.starts_with("mail/"), "{path}");
        let bytes = store.get(&dsr_jobs::spool::file_key(&committed, &path)).await.unwrap();
        let message = mail_parser::MessageParser::default()
            .parse(&bytes)
            .expect("a valid MIME message");
        assert!(message.subject().is_some());
        if message.subject() == Some("Spørsmål om sensorer") {
            assert_eq!(message.attachment_count(), 1, "attachments stay inside the .eml");
            assert_eq!(message.attachment(0).unwrap().contents(), b"%PDF-1.4 tegning");
        }
        parsed += 1;
    }
    assert_eq!(parsed, 5);
}

#[tokio::test]
async fn hard_erasure_leaves_no_mail_or_contacts_and_a_rerun_finds_nothing() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    assert_eq!(fake.workspace_holdings_of(KARI, KARI_PHONE), (4, 1, 2));
    let report = google.erase(&ctx(), &kari_in_workspace()).await.unwrap();
    assert_eq!(
        fake.workspace_holdings_of(KARI, KARI_PHONE),
        (0, 0, 0),
        "mail in Spam and the Trash is deleted too"
    );
    // Other contacts cannot be deleted through the API: reported as retained, with the step.
    let other = report
        .retained
        .iter()
        .find(|r| r.category == "other_contacts")
        .expect("reported as retained");
    assert_eq!(other.count, 1);
    assert!(
        other.reason.contains("Google Contacts") && other.reason.contains("post@racom.no"),
        "{}",
        other.reason
    );
    assert!(
        fake.unknown_method_calls().is_empty(),
        "no call to a method Google does not have: {:?}",
        fake.unknown_method_calls()
    );
    assert_eq!(
        fake.workspace_holdings_of("annkari.nordmann@example.no", ""),
        (1, 0, 1),
        "the look-alike is untouched"
    );
    let verification = report
        .evidence
        .iter()
        .find(|e| e.kind == "verification_search")
        .unwrap();
    assert_eq!(verification.detail["mail_outside_trash"], 0);
    assert_eq!(verification.detail["mail_in_trash"], 0);
    assert_eq!(
        fake.with(|s| s.overlapping_mutations),
        0,
        "contact mutations went one at a time"
    );
    let again = google.erase(&ctx(), &kari_in_workspace()).await.unwrap();
    assert_eq!(
        (again.found, again.changed),
        (1, 0),
        "only the other contact, still retained"
    );
}

#[tokio::test]
async fn soft_erasure_counts_what_sits_in_the_trash() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "soft").await;
    let report = google.erase(&ctx(), &kari_in_workspace()).await.unwrap();
    assert_eq!(fake.workspace_holdings_of(KARI, KARI_PHONE), (0, 5, 0));
    let verification = report
        .evidence
        .iter()
        .find(|e| e.kind == "verification_search")
        .unwrap();
    assert_eq!(
        verification.detail["mail_in_trash"], 5,
        "what was in Spam went to the Trash too"
    );
    assert!(report.notes.iter().any(|n| n.contains("30 days")), "{:?}", report.notes);
}

#[tokio::test]
async fn rectification_survives_a_stale_etag_once() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    fake.with(|s| s.stale_etag_next = 1);
    let changes = vec![dsr_connector::FieldChange {
        field: dsr_connector::RectifyField::FamilyName,
        value: "Hansen".into(),
    }];
    let report = google.rectify(&ctx(), &kari_in_workspace(), &changes).await.unwrap();
    assert_eq!((report.found, report.changed), (2, 2));
    let people = fake.with(|s| s.people.clone());
    let c1 = people.iter().find(|p| p.json["resourceName"] == "people/c1").unwrap();
    assert_eq!(c1.json["names"][0]["familyName"], "Hansen");
    assert_eq!(c1.json["names"][0]["givenName"], "Kari", "only the named field changed");
    let c2 = people.iter().find(|p| p.json["resourceName"] == "people/c2").unwrap();
    assert_eq!(
        c2.json["names"][0]["familyName"], "Nordmann",
        "the look-alike was corrected"
    );
    let patches = fake.calls().iter().filter(|c| c.contains(":updateContact")).count();
    assert_eq!(
        patches, 3,
        "one stale attempt, then a re-read and a retry, then the second contact"
    );
}

#[tokio::test]
async fn check_reads_each_workspace_mailbox() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let report = google.check().await.unwrap();
    assert!(report.ok);
    assert!(
        report.details.iter().any(|d| d.contains("post@racom.no readable")),
        "{:?}",
        report.details
    );
}

#[tokio::test]
async fn a_token_for_one_user_cannot_read_anothers_mailbox() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = section(
        &fake,
        dir.path(),
        TEST_PRIVATE_KEY,
        "workspace = { mailboxes = [\"stranger@elsewhere.example\"] }\n",
    );
    let google = Google::new(toml::from_str(&text).unwrap()).unwrap();
    let mut sink = MemorySink::checked(kari_in_workspace());
    let err = google
        .access(&ctx(), &kari_in_workspace(), &mut sink)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::Reauthenticate { .. }),
        "a user outside the domain cannot be impersonated: {err}"
    );
}

#[tokio::test]
async fn rectification_replaces_the_subjects_phone_and_keeps_the_contacts_other_number() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let changes = vec![dsr_connector::FieldChange {
        field: dsr_connector::RectifyField::Phone,
        value: "+47 987 65 432".into(),
    }];
    google.rectify(&ctx(), &kari_in_workspace(), &changes).await.unwrap();
    let c3 = fake.contact("post@racom.no", "people/c3").expect("people/c3");
    let phones: Vec<&str> = c3["phoneNumbers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["canonicalForm"].as_str())
        .collect();
    assert!(phones.contains(&"+4798765432"), "the new number: {phones:?}");
    assert!(
        !phones.contains(&"+4791234567"),
        "her old number is gone, not kept beside the new: {phones:?}"
    );
    assert!(
        phones.contains(&"+4722000000"),
        "the switchboard number is not hers and stays: {phones:?}"
    );
}
