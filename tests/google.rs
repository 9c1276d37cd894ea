//! The Google connector through the `dsr` binary and the engine's spool, against the fake
//! Google APIs in `fixtures/`. Tests that drive the connector directly are in
//! `connectors/google/tests/google.rs`.

mod util;

use dsr_connector::{Connector, Email, Identities, TaskContext};
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

fn ctx() -> TaskContext {
    util::first_attempt()
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
    let job = dsr_jobs::Job::ProcessorTask {
        request_id: id,
        processor: dsr_connector::Processor::Google,
    };
    util::redeliver(&d.deployment, &[job.clone(), job]).await;
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
        error.contains("processors.google.service_account_key") && !error.contains("Invalid JWT Signature"),
        "the error names the credential to fix, in dsr's words: {error}"
    );
    // Google's own words are kept beside the audit chain, for the operator.
    let id = status["id"].as_str().unwrap();
    let (_, events) = util::dsr_json_async(&d.deployment, &["audit", "events", id]).await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "task.failed"
                && e["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("the vendor said: Invalid JWT Signature"))),
        "{events}"
    );
    assert!(
        !error.contains("@racom-analytics.iam.gserviceaccount.com"),
        "no identity in a stored error: {error}"
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
