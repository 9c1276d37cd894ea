//! The Google connector (Analytics, Gmail, People) against the fake Google APIs in
//! `fixtures/`: access, and every change as a plan the engine checks and then executes
//! (`dsr_connector::apply`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dsr_connector::{
    Action, Applied, Change, Connector, ConnectorError, Email, FieldChange, Identities, IdentityKind, ItemOutcome,
    ItemState, MemorySink, PlanRules, RectifyField, SharedPolicy, apply, check_plan,
};
use dsr_fixtures::google::{GoogleFake, GoogleState, TEST_PRIVATE_KEY};
use dsr_google::{Google, GoogleConfig};
use serde_json::{Value, json};

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

use dsr_fixtures::testing::{first_attempt as ctx, preview as dry};

fn rules(shared: SharedPolicy) -> PlanRules {
    PlanRules::new(shared)
}

/// The engine's default: shared items are kept.
fn retain() -> PlanRules {
    rules(SharedPolicy::Retain)
}

async fn erase(google: &Google, subject: &Identities, rules: &PlanRules) -> Result<Applied, ConnectorError> {
    apply(google, &ctx(), subject, &Change::Erasure, rules).await
}

fn remaining(applied: &Applied) -> Vec<String> {
    applied
        .verification
        .as_ref()
        .expect("executed, so verified")
        .remaining
        .clone()
}

fn family_name(value: &str) -> Change {
    Change::Rectification {
        changes: vec![FieldChange {
            field: RectifyField::FamilyName,
            value: value.into(),
        }],
    }
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
    assert!(matches!(
        google.capabilities().rectification,
        dsr_connector::Support::NotApplicable(_)
    ));
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

/// Everything the fake holds that a change could touch: messages with their labels,
/// contacts, other contacts and Analytics deletions.
fn snapshot(fake: &GoogleFake) -> String {
    fake.with(|s| {
        let mail: BTreeMap<String, Vec<String>> = s
            .gmail
            .iter()
            .map(|m| (format!("{}/{}", m.user, m.id), m.labels.clone()))
            .collect();
        let people: Vec<&Value> = s.people.iter().map(|p| &p.json).collect();
        let other: Vec<&Value> = s.other_contacts.iter().map(|c| &c.json).collect();
        json!({"mail": mail, "people": people, "other": other, "deletions": s.deletions.len()}).to_string()
    })
}

fn key(category: &str, mailbox: &str, id: &str) -> String {
    format!("{category} {mailbox}/{id}")
}

#[tokio::test]
async fn workspace_mail_is_exported_as_eml_that_parses_and_contacts_match_exactly() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let mut sink = MemorySink::checked(kari_in_workspace());
    google.access(&ctx(), &kari_in_workspace(), &mut sink).await.unwrap();
    let mail: BTreeSet<String> = sink.ids("mail");
    assert_eq!(
        mail,
        BTreeSet::from(["g-ola-1", "g-ola-2", "g-ola-4", "g-post-1", "g-post-3"].map(String::from)),
        "in Spam (g-post-3) and the Trash (g-ola-4) too: Gmail still holds them"
    );
    let other: BTreeSet<String> = sink.ids("other_contacts");
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
    let contacts: BTreeSet<String> = sink.ids("contacts");
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

/// A checked sink that also keeps each file's bytes, by the path it stored it under.
#[derive(Default)]
struct KeepingSink {
    inner: MemorySink,
    bytes: BTreeMap<String, Vec<u8>>,
}

#[async_trait::async_trait]
impl dsr_connector::RecordSink for KeepingSink {
    async fn accept(&mut self, record: dsr_connector::Record) -> Result<(), dsr_connector::SinkError> {
        self.inner.accept(record).await
    }

    async fn attach(
        &mut self,
        file: dsr_connector::FileMeta,
        mut body: dsr_connector::ByteStream<'_>,
    ) -> Result<dsr_connector::StoredFile, dsr_connector::SinkError> {
        use futures::StreamExt;
        let mut kept = Vec::new();
        while let Some(chunk) = body.next().await {
            kept.extend_from_slice(&chunk.map_err(|e| dsr_connector::SinkError(e.to_string()))?);
        }
        let again = bytes::Bytes::from(kept.clone());
        let stored = self
            .inner
            .attach(file, Box::pin(futures::stream::once(async move { Ok(again) })))
            .await?;
        self.bytes.insert(stored.path.clone(), kept);
        Ok(stored)
    }
}

#[tokio::test]
async fn exported_eml_bytes_parse_with_a_mime_parser_and_keep_their_attachments() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let mut sink = KeepingSink {
        inner: MemorySink::checked(kari_in_workspace()),
        ..Default::default()
    };
    google.access(&ctx(), &kari_in_workspace(), &mut sink).await.unwrap();
    let mut parsed = 0;
    for (path, bytes) in &sink.bytes {
        assert!(path.starts_with("mail/"), "{path}");
        let message = mail_parser::MessageParser::default()
            .parse(bytes)
            .expect("a valid MIME message");
        assert!(message.subject().is_some());
        if message.subject() == Some("Spørsmål om sensorer") {
            assert_eq!(message.attachment_count(), 1, "attachments stay inside the .eml");
            assert_eq!(message.attachment(0).unwrap().contents(), b"%PDF-1.4 tegning");
        }
        parsed += 1;
    }
    assert_eq!(parsed, 5);
    let records: BTreeSet<&str> = sink
        .inner
        .records
        .iter()
        .filter_map(|r| r.data["file"].as_str())
        .collect();
    assert_eq!(
        records,
        sink.bytes.keys().map(String::as_str).collect(),
        "each mail record names its stored file"
    );
}

#[tokio::test]
async fn hard_erasure_leaves_no_mail_or_contacts_and_a_rerun_finds_nothing() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    assert_eq!(fake.workspace_holdings_of(KARI, KARI_PHONE), (4, 1, 2));
    let applied = erase(&google, &kari_in_workspace(), &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    assert_eq!(
        fake.workspace_holdings_of(KARI, KARI_PHONE),
        (0, 0, 0),
        "mail in Spam and the Trash is deleted too"
    );
    let ola = "ola.hansen@racom.no";
    let post = "post@racom.no";
    let mut done = applied.keys("mail", "done");
    done.sort();
    assert_eq!(
        done,
        [
            key("mail", ola, "g-ola-1"),
            key("mail", ola, "g-ola-2"),
            key("mail", ola, "g-ola-4"),
            key("mail", post, "g-post-1"),
            key("mail", post, "g-post-3"),
        ]
    );
    assert_eq!(
        applied.keys("mail", "not_hers"),
        [key("mail", ola, "g-ola-3")],
        "Gmail's loose search also returned the look-alike's message; it was refused"
    );
    assert_eq!(
        applied.keys("contacts", "done"),
        [key("contacts", ola, "people/c1"), key("contacts", post, "people/c3")]
    );
    assert!(
        fake.calls().iter().all(|c| !c.contains("batchDelete")),
        "one messages.delete per item"
    );
    assert_eq!(fake.calls().iter().filter(|c| c.starts_with("DELETE gmail")).count(), 5);
    // Other contacts cannot be deleted through the API: reported as retained, with the step.
    let other = applied
        .plan
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
    assert!(remaining(&applied).is_empty(), "{:?}", remaining(&applied));
    assert_eq!(
        fake.with(|s| s.overlapping_mutations),
        0,
        "contact mutations went one at a time"
    );
    let again = erase(&google, &kari_in_workspace(), &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    assert_eq!(
        (again.plan.found(), again.changed()),
        (1, 0),
        "only the other contact, still retained"
    );
}

#[tokio::test]
async fn soft_erasure_counts_what_sits_in_the_trash() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "soft").await;
    let applied = erase(&google, &kari_in_workspace(), &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    assert_eq!(fake.workspace_holdings_of(KARI, KARI_PHONE), (0, 5, 0));
    let post = "post@racom.no";
    assert!(
        applied
            .keys("mail", "done")
            .contains(&key("mail", post, "g-post-3").as_str()),
        "what was in Spam went to the Trash too"
    );
    assert_eq!(applied.keys("mail", "done").len(), 4);
    let trashed = applied
        .item(&key("mail", "ola.hansen@racom.no", "g-ola-4"))
        .expect("the message already in the Trash is listed");
    assert_eq!(trashed.action, Action::Keep);
    assert_eq!(trashed.state.as_str(), "retained");
    assert!(trashed.reason.as_deref().unwrap().contains("30 days"), "{trashed:?}");
    assert!(
        fake.calls().iter().filter(|c| c.contains("/trash")).count() == 4,
        "no trash call for what is there already"
    );
    assert!(
        applied.plan.notes.iter().any(|n| n.contains("30 days")),
        "{:?}",
        applied.plan.notes
    );
    assert!(
        remaining(&applied).is_empty(),
        "planning again finds everything in the Trash, kept: {:?}",
        remaining(&applied)
    );
    let again = google
        .plan(&ctx(), &kari_in_workspace(), &Change::Erasure)
        .await
        .unwrap();
    assert_eq!(
        again
            .items
            .iter()
            .filter(|i| i.category == "mail" && i.action == Action::Keep)
            .count(),
        5
    );
}

#[tokio::test]
async fn shared_mail_is_retained_unless_the_processor_deletes_shared_items() {
    let ola = "ola.hansen@racom.no";
    for (policy, left) in [(SharedPolicy::Retain, (1, 0, 0)), (SharedPolicy::Delete, (0, 0, 0))] {
        let fake = GoogleFake::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let google = workspace_connector(&fake, dir.path(), "hard").await;
        let applied = erase(&google, &kari_in_workspace(), &rules(policy)).await.unwrap();
        let cc = applied.item(&key("mail", ola, "g-ola-2")).unwrap();
        assert_eq!(
            cc.shared.as_deref(),
            Some("1 other participant"),
            "Per is on Cc: neither Kari nor the mailbox's owner"
        );
        let only_hers = applied.item(&key("mail", ola, "g-ola-1")).unwrap();
        assert_eq!(only_hers.shared, None, "between Kari and the mailbox's owner only");
        assert_eq!(fake.workspace_holdings_of(KARI, KARI_PHONE), left, "{policy:?}");
        let still_there = fake.with(|s| s.gmail.iter().any(|m| m.id == "g-ola-2"));
        match policy {
            SharedPolicy::Retain => {
                assert_eq!(cc.state.as_str(), "retained");
                assert!(still_there);
                assert_eq!(applied.keys("mail", "done").len(), 4);
            }
            SharedPolicy::Delete => {
                assert_eq!(cc.state.as_str(), "done");
                assert!(!still_there);
                assert_eq!(applied.keys("mail", "done").len(), 5);
            }
        }
        assert!(remaining(&applied).is_empty(), "{:?}", remaining(&applied));
    }
}

#[tokio::test]
async fn the_plan_changes_nothing_and_the_dry_run_lists_what_is_then_done() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let subject = Identities {
        ga_client_ids: vec![seeded(&["subject", "client_id"])],
        ..kari_in_workspace()
    };
    let before = snapshot(&fake);
    let plan = google.plan(&ctx(), &subject, &Change::Erasure).await.unwrap();
    assert_eq!(snapshot(&fake), before, "planning changed something");
    assert!(plan.items.iter().all(|i| i.state == ItemState::Pending));
    let rectified = google.plan(&ctx(), &subject, &family_name("Hansen")).await.unwrap();
    assert_eq!(snapshot(&fake), before, "planning a rectification changed something");
    let c1 = rectified
        .items
        .iter()
        .find(|i| i.key == key("contacts", "ola.hansen@racom.no", "people/c1"))
        .unwrap();
    assert_eq!(c1.action, Action::Patch);
    assert_eq!(c1.before.as_ref().unwrap()["names"][0]["familyName"], "Nordmann");
    assert_eq!(c1.after.as_ref().unwrap()["names"][0]["familyName"], "Hansen");

    let preview = apply(&google, &dry(), &subject, &Change::Erasure, &retain())
        .await
        .unwrap();
    assert_eq!(snapshot(&fake), before, "the dry run changed something");
    assert!(preview.verification.is_none());
    assert_eq!(preview.changed(), 0);
    assert!(
        preview.plan.items.iter().all(|i| i.data.is_null()),
        "records are not kept"
    );
    assert_eq!(
        preview.plan.count("pending"),
        2 + 4 + 2,
        "two deletion requests, four messages, two contacts"
    );

    let applied = erase(&google, &subject, &retain()).await.unwrap();
    let keys = |a: &Applied| {
        a.plan
            .items
            .iter()
            .map(|i| (i.key.clone(), i.state.as_str()))
            .collect::<Vec<_>>()
    };
    let previewed: Vec<_> = keys(&preview)
        .into_iter()
        .map(|(k, s)| (k, if s == "pending" { "done" } else { s }))
        .collect();
    assert_eq!(previewed, keys(&applied), "the preview is what was then done");
}

#[tokio::test]
async fn executing_a_plan_again_changes_nothing_more() {
    for mode in ["hard", "soft"] {
        let fake = GoogleFake::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let google = workspace_connector(&fake, dir.path(), mode).await;
        let subject = Identities {
            ga_client_ids: vec![seeded(&["subject", "client_id"])],
            ..kari_in_workspace()
        };
        let mut applied = erase(&google, &subject, &rules(SharedPolicy::Delete)).await.unwrap();
        let after = snapshot(&fake);
        let calls = fake.calls().len();
        // A re-delivered task: the engine skips what is recorded as done.
        dsr_connector::plan::execute_plan(
            &google,
            &ctx(),
            &subject,
            &Change::Erasure,
            &mut applied.plan,
            |_, _| async { Ok::<(), ()>(()) },
        )
        .await
        .unwrap();
        assert_eq!(fake.calls().len(), calls, "{mode}: a settled item was executed again");
        // And were a Workspace item's call made again, Google has nothing more to change.
        for item in applied.plan.items.iter().filter(|i| i.category != "analytics_user") {
            if !matches!(item.state, ItemState::Done { .. }) {
                continue;
            }
            let outcome = google.execute(&ctx(), &subject, &Change::Erasure, item).await.unwrap();
            match (mode, item.category.as_str()) {
                ("soft", "mail") => assert!(matches!(outcome, ItemOutcome::Done(_)), "trashing again: {outcome:?}"),
                _ => assert_eq!(outcome, ItemOutcome::AlreadyGone, "{}", item.key),
            }
        }
        assert_eq!(snapshot(&fake), after, "{mode}: executing again changed the fake");
    }
}

#[tokio::test]
async fn a_message_the_search_returns_that_is_not_hers_is_refused_and_untouched() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    fake.with(|s| s.faults.ignore_search_filter = true);
    let applied = erase(&google, &kari_in_workspace(), &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    let mut refused = applied.keys("mail", "not_hers");
    refused.sort();
    assert_eq!(
        refused,
        [
            key("mail", "ola.hansen@racom.no", "g-ola-3"),
            key("mail", "post@racom.no", "g-post-2")
        ],
        "every message of the mailbox came back; only hers are changed"
    );
    let left: BTreeSet<String> = fake.with(|s| s.gmail.iter().map(|m| m.id.clone()).collect());
    assert_eq!(left, BTreeSet::from(["g-ola-3".to_string(), "g-post-2".to_string()]));
    assert_eq!(applied.keys("mail", "done").len(), 5);
    assert!(
        fake.contact("ola.hansen@racom.no", "people/c2").is_some()
            && fake.contact("post@racom.no", "people/c4").is_some(),
        "contacts that are not hers stay"
    );
    // The engine, not the connector, is the one that refuses: the check on the raw plan.
    let fake2 = GoogleFake::start().await.unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let google2 = workspace_connector(&fake2, dir2.path(), "hard").await;
    fake2.with(|s| s.faults.ignore_search_filter = true);
    let mut plan = google2
        .plan(&ctx(), &kari_in_workspace(), &Change::Erasure)
        .await
        .unwrap();
    let faktura = plan
        .items
        .iter()
        .find(|i| i.key == key("mail", "post@racom.no", "g-post-2"))
        .expect("in the plan");
    assert!(faktura.claims.is_empty(), "no header names her");
    assert_eq!(faktura.action, Action::Delete);
    check_plan(&kari_in_workspace(), &mut plan, &retain());
    let faktura = plan
        .items
        .iter()
        .find(|i| i.key == key("mail", "post@racom.no", "g-post-2"))
        .unwrap();
    assert_eq!(faktura.state.as_str(), "not_hers");
}

#[tokio::test]
async fn rectification_survives_a_stale_etag_once() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    fake.with(|s| s.stale_etag_next = 1);
    let applied = apply(&google, &ctx(), &kari_in_workspace(), &family_name("Hansen"), &retain())
        .await
        .unwrap();
    assert_eq!((applied.plan.found(), applied.changed()), (2, 2));
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
    let c1_key = key("contacts", "ola.hansen@racom.no", "people/c1");
    let item = applied.item(&c1_key).unwrap();
    assert_eq!(item.action, Action::Patch);
    assert_eq!(item.before.as_ref().unwrap()["names"][0]["familyName"], "Nordmann");
    assert_eq!(item.after.as_ref().unwrap()["names"][0]["familyName"], "Hansen");
    let ItemState::Done { receipt } = &item.state else {
        panic!("{item:?}")
    };
    assert_eq!(receipt["fields"]["names"][0]["familyName"], "Hansen");
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{verification:?}");
    assert_eq!(
        verification.after[&c1_key]["names"][0]["familyName"], "Hansen",
        "planning again reads the value as it now is"
    );
    assert!(applied.plan.notes.iter().any(|n| n.contains("pseudonymous ids")));

    // Asked again: every contact is already as requested, and nothing is sent.
    let again = apply(&google, &ctx(), &kari_in_workspace(), &family_name("Hansen"), &retain())
        .await
        .unwrap();
    assert_eq!(again.changed(), 0);
    assert!(
        again
            .plan
            .items
            .iter()
            .all(|i| i.action == Action::Keep && i.reason.as_deref() == Some("already as requested")),
        "{:?}",
        again.plan.items
    );
    assert_eq!(fake.calls().iter().filter(|c| c.contains(":updateContact")).count(), 3);
}

#[tokio::test]
async fn a_contact_that_stops_naming_her_before_the_update_is_left_alone_and_the_plan_made_again() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let subject = Identities {
        emails: vec![Email::parse(KARI).unwrap()],
        ..Default::default()
    };
    let change = family_name("Hansen");
    let mut plan = google.plan(&ctx(), &subject, &change).await.unwrap();
    check_plan(&subject, &mut plan, &retain());
    // Someone corrects the address meanwhile: the etag the plan holds is stale, and the
    // contact read again is no longer hers.
    fake.with(|s| {
        let c1 = s
            .people
            .iter_mut()
            .find(|p| p.json["resourceName"] == "people/c1")
            .unwrap();
        c1.json["emailAddresses"] = json!([{"value": "kari@elsewhere.example"}]);
        c1.version += 1;
        c1.stamp();
    });
    let item = plan.items.iter().find(|i| i.key.ends_with("people/c1")).unwrap();
    // Not a refusal by Google: the plan no longer fits the contact, and is made again.
    let err = google.execute(&ctx(), &subject, &change, item).await.unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert!(err.to_string().contains("dsr retry test --processor google"), "{err}");
    assert_eq!(
        fake.contact("ola.hansen@racom.no", "people/c1").unwrap()["names"][0]["familyName"],
        "Nordmann"
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
    let change = Change::Rectification {
        changes: vec![FieldChange {
            field: RectifyField::Phone,
            value: "+47 987 65 432".into(),
        }],
    };
    let applied = apply(&google, &ctx(), &kari_in_workspace(), &change, &retain())
        .await
        .unwrap();
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
    assert_eq!(applied.changed(), 2);
    assert!(
        remaining(&applied).is_empty(),
        "the contact still found by her address holds the new number once: {:?}",
        remaining(&applied)
    );
    let c1 = fake.contact("ola.hansen@racom.no", "people/c1").unwrap();
    assert_eq!(c1["phoneNumbers"].as_array().unwrap().len(), 1, "{c1}");
}

#[tokio::test]
async fn after_a_stale_etag_only_the_planned_change_is_sent_and_only_to_a_contact_as_the_plan_read_it() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let subject = kari_in_workspace();
    let change = Change::Rectification {
        changes: vec![FieldChange {
            field: RectifyField::Email,
            value: "kari.hansen@example.no".into(),
        }],
    };
    let mut plan = google.plan(&ctx(), &subject, &change).await.unwrap();
    check_plan(&subject, &mut plan, &retain());
    let item = plan
        .items
        .iter()
        .find(|i| i.key.ends_with("people/c1"))
        .unwrap()
        .clone();
    assert_eq!(item.action, Action::Patch);
    // An edit in Google Contacts while the plan waits: a new etag, so the planned update is stale.
    let edit = |f: &dyn Fn(&mut Value)| {
        fake.with(|s| {
            let c1 = s
                .people
                .iter_mut()
                .find(|p| p.json["resourceName"] == "people/c1")
                .unwrap();
            f(&mut c1.json);
            c1.version += 1;
            c1.stamp();
        })
    };
    let emails = || fake.contact("ola.hansen@racom.no", "people/c1").unwrap()["emailAddresses"].clone();
    let updates = || {
        fake.calls()
            .iter()
            .filter(|c| c.contains("people/c1:updateContact"))
            .count()
    };
    let original = emails();
    assert!(original.to_string().contains(KARI), "{original}");

    // Someone adds an address: the planned list would drop it.
    edit(&|c| {
        c["emailAddresses"]
            .as_array_mut()
            .unwrap()
            .push(json!({"value": "kari@styre.example", "type": "work"}))
    });
    let err = google.execute(&ctx(), &subject, &change, &item).await.unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert!(!err.is_retryable());
    assert_eq!(updates(), 1, "the stale attempt only");
    assert_eq!(
        emails().as_array().unwrap().len(),
        original.as_array().unwrap().len() + 1
    );

    // Someone made exactly the correction asked for: done, nothing more sent.
    let corrected: Vec<Value> = original
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if e["value"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(KARI)) {
                e["value"] = json!("kari.hansen@example.no");
            }
            e
        })
        .collect();
    edit(&|c| c["emailAddresses"] = json!(corrected));
    let outcome = google.execute(&ctx(), &subject, &change, &item).await.unwrap();
    assert!(
        matches!(&outcome, ItemOutcome::Done(r) if r["already_as_requested"] == true),
        "{outcome:?}"
    );
    assert_eq!(updates(), 2);

    // Back as the plan read it, under a new etag: the planned body once more, fresh etag.
    edit(&|c| c["emailAddresses"] = original.clone());
    let outcome = google.execute(&ctx(), &subject, &change, &item).await.unwrap();
    let ItemOutcome::Done(receipt) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(updates(), 4, "a stale attempt, a re-read and the planned body again");
    let now = emails();
    assert_eq!(now.as_array().unwrap().len(), original.as_array().unwrap().len());
    assert!(now.to_string().contains("kari.hansen@example.no"), "{now}");
    assert!(!now.to_string().contains(KARI), "{now}");
    assert_eq!(receipt["fields"]["emailAddresses"], now);
}
