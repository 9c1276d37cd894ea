//! Setting the Google connector up: its key and config, the token Google gives for each
//! Workspace user, and `check`.

mod common;

use common::*;
use dsr_connector::{Connector, ConnectorError, MemorySink};
use dsr_fixtures::google::{GoogleFake, TEST_PRIVATE_KEY, UNKNOWN_PRIVATE_KEY};
use dsr_fixtures::testing::first_attempt as ctx;
use dsr_google::{Google, GoogleConfig};

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

/// The connector for the fake, its config text changed by `edit`.
fn built(
    fake: &GoogleFake,
    dir: &std::path::Path,
    private_key: &str,
    edit: &dyn Fn(String) -> String,
) -> Result<Google, dsr_connector::ConfigError> {
    let config: GoogleConfig = toml::from_str(&edit(section(fake, dir, private_key, ""))).unwrap();
    Google::new(config)
}

#[tokio::test]
async fn a_config_that_cannot_work_is_refused_naming_its_key() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let refused = |private_key: &str, edit: &dyn Fn(String) -> String| {
        built(&fake, dir.path(), private_key, edit).err().expect("refused")
    };

    let err = refused("not a key", &|text| text);
    assert_eq!(err.key, "service_account_key");
    assert!(
        err.to_string().starts_with("processors.google.service_account_key: "),
        "{err}"
    );
    let no_json = |text: String| {
        std::fs::write(dir.path().join("google-sa.json"), "no JSON").unwrap();
        text
    };
    assert_eq!(refused(TEST_PRIVATE_KEY, &no_json).key, "service_account_key");

    let property = |text: String| text.replace("ga4_property_ids = [", "ga4_property_ids = [\"G-123\", ");
    let err = refused(TEST_PRIVATE_KEY, &property);
    assert_eq!(err.key, "ga4_property_ids");
    assert!(err.to_string().contains("G-123"), "{err}");

    let dataset = |text: String| text.replace("bigquery_dataset = \"", "bigquery_dataset = \"`; DROP TABLE x; --.");
    assert_eq!(refused(TEST_PRIVATE_KEY, &dataset).key, "bigquery_dataset");
}

#[tokio::test]
async fn a_refused_key_is_named_without_the_accounts_identity() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = built(&fake, dir.path(), UNKNOWN_PRIVATE_KEY, &|text| text).unwrap();
    let err = dsr_connector::apply(&google, &ctx(), &kari(), &dsr_connector::Change::Erasure, &retain())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Reauthenticate { .. }), "{err}");
    assert_eq!(err.vendor_code(), Some("invalid_grant"), "{err}");
    let text = err.to_string();
    assert!(text.contains("Google refused the service-account key"), "{text}");
    let (email, key_id) = fake.with(|s| (s.client_email.clone(), s.private_key_id.clone()));
    assert!(
        !text.contains(&email) && !text.contains(&key_id),
        "no identity in a stored error: {text}"
    );
}
