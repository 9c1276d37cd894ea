//! The Microsoft 365 connector against the fake Graph in `fixtures/`: what it finds, what it
//! erases and corrects, and how it behaves when Graph throttles, fails or expires tokens.

mod util;

use std::collections::BTreeSet;
use std::time::Duration;

use dsr_connector::{Connector, ConnectorError, Email, FieldChange, Identities, MemorySink, RectifyField, TaskContext};
use dsr_fixtures::graph::GraphFake;
use dsr_microsoft365::{Microsoft365, Microsoft365Config};
use sha2::Digest;

const KARI: &str = "kari.nordmann@example.no";
const LOOK_ALIKE: &str = "annkari.nordmann@example.no";

struct Setup {
    fake: GraphFake,
    _dir: tempfile::TempDir,
    connector: Microsoft365,
}

fn config_text(fake: &GraphFake, dir: &std::path::Path, extra: &str) -> String {
    let text = fake.connector_toml(&dir.join("graph-secret")).unwrap();
    format!("{text}page_size = 4\n{extra}")
}

async fn setup(extra: &str) -> Setup {
    let fake = GraphFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config: Microsoft365Config = toml::from_str(&config_text(&fake, dir.path(), extra)).unwrap();
    let connector = Microsoft365::new(config).unwrap();
    Setup {
        fake,
        _dir: dir,
        connector,
    }
}

fn subject(email: &str) -> Identities {
    Identities {
        emails: vec![Email::parse(email).unwrap()],
        ..Default::default()
    }
}

fn ctx(dry_run: bool) -> TaskContext {
    TaskContext::new("test", 1, dry_run)
}

async fn access_of(s: &Setup, email: &str) -> Result<MemorySink, ConnectorError> {
    let mut sink = MemorySink::checked(subject(email));
    s.connector
        .access(&ctx(false), &subject(email), &mut sink)
        .await
        .map(|_| sink)
}

fn ids(sink: &MemorySink, category: &str) -> BTreeSet<String> {
    sink.records
        .iter()
        .filter(|r| r.category == category)
        .filter_map(|r| r.id.clone())
        .collect()
}

fn kari_messages() -> BTreeSet<String> {
    let mut expected: BTreeSet<String> = ["m-ola-1", "m-ola-2", "m-ola-4", "m-post-1", "m-post-2", "m-salg-1"]
        .into_iter()
        .map(String::from)
        .collect();
    expected.extend((0..23).map(|i| format!("m-bulk-{i}")));
    expected
}

#[tokio::test]
async fn access_finds_exactly_the_subjects_mail_contacts_and_attachments() {
    let s = setup("").await;
    let mut sink = MemorySink::checked(subject(KARI));
    let summary = s
        .connector
        .access(&ctx(false), &subject(KARI), &mut sink)
        .await
        .unwrap();
    assert_eq!(
        ids(&sink, "mail"),
        kari_messages(),
        "across three mailboxes and many pages"
    );
    assert_eq!(
        ids(&sink, "contacts"),
        BTreeSet::from(["c-ola-1", "c-ola-3", "c-ola-4", "c-salg-1"].map(String::from)),
        "the default Contacts folder, a folder (Kunder) and its child folder (Kunder/2025)"
    );
    assert_eq!(summary.found, 33);
    assert!(
        summary.notes.iter().any(|n| n.contains("online archive")),
        "the bundle says what Graph cannot reach: {:?}",
        summary.notes
    );
    assert!(
        sink.records
            .iter()
            .filter(|r| r.category == "mail")
            .all(|r| r.data["body"]["content"].is_string()),
        "whole messages are exported, not the search's headers"
    );
    let everything = serde_json::to_string(&sink.records).unwrap();
    assert!(!everything.contains(LOOK_ALIKE), "the look-alike's data was exported");
    assert!(
        sink.refused > 0,
        "what the loose participants: search returned that is not hers reached the engine and was refused"
    );
    assert!(
        s.fake.calls().iter().any(|c| c.contains("/messages")),
        "mail was searched"
    );

    // Attachments byte for byte, each once, named safely.
    let files: Vec<(String, String)> = sink
        .files
        .iter()
        .map(|(m, f)| (m.name.clone(), f.sha256.clone()))
        .collect();
    let expect = |text: &str| hex_digest(text.as_bytes());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&(
        "kravspesifikasjon.pdf".into(),
        expect("%PDF-1.4 kravspesifikasjon for Kari Nordmann")
    )));
    assert!(files.contains(&("../tilbud 2026.xlsx".into(), expect("PK tilbud-regneark"))));
    let offer = sink
        .records
        .iter()
        .find(|r| r.id.as_deref() == Some("m-ola-2"))
        .unwrap();
    assert!(
        offer.data["attachments"][0]["file"]
            .as_str()
            .unwrap()
            .starts_with("attachments/")
    );
    assert!(
        offer.data["attachments"][0].get("contentBytes").is_none(),
        "no message is exported twice in two forms"
    );
    let sent = sink
        .records
        .iter()
        .find(|r| r.id.as_deref() == Some("m-post-1"))
        .unwrap();
    assert!(sent.provided_by_subject, "mail Kari wrote is data she provided");
    assert!(!offer.provided_by_subject);
}

fn hex_digest(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_search_at_graphs_result_cap_is_split_by_date_until_complete() {
    let s = setup("search_cap = 10\n").await;
    s.fake.with(|state| state.search_cap = 10);
    let mut sink = MemorySink::checked(subject(KARI));
    s.connector
        .access(&ctx(false), &subject(KARI), &mut sink)
        .await
        .unwrap();
    assert_eq!(
        ids(&sink, "mail"),
        kari_messages(),
        "a capped search would have lost mail"
    );
    let dated = s
        .fake
        .with(|st| st.searches.iter().filter(|q| q.contains("received>=")).count());
    assert!(dated >= 2, "the capped search was split into date ranges");
}

#[tokio::test]
async fn quotes_in_addresses_are_escaped_in_filter_and_search() {
    let s = setup("").await;
    let mut sink = MemorySink::checked(subject("o'hara@example.ie"));
    s.connector
        .access(&ctx(false), &subject("o'hara@example.ie"), &mut sink)
        .await
        .unwrap();
    assert_eq!(
        ids(&sink, "contacts"),
        BTreeSet::from(["c-post-1".to_string()]),
        "the ' was doubled in $filter"
    );
    assert_eq!(ids(&sink, "mail"), BTreeSet::from(["m-post-4".to_string()]));
    // A '"' in a quoted local part must not break the $search expression.
    let mut sink = MemorySink::checked(subject(r#""kari\"n"@example.no"#));
    s.connector
        .access(&ctx(false), &subject(r#""kari\"n"@example.no"#), &mut sink)
        .await
        .unwrap();
    assert!(sink.records.is_empty());
}

#[tokio::test]
async fn erasure_leaves_nothing_verifies_it_and_a_rerun_is_a_no_op() {
    let s = setup("").await;
    assert_eq!(s.fake.holdings_of(KARI), (29, 4));
    let report = s.connector.erase(&ctx(false), &subject(KARI)).await.unwrap();
    assert_eq!((report.found, report.changed), (33, 33));
    assert_eq!(s.fake.holdings_of(KARI), (0, 0), "the fake still holds Kari's data");
    assert_eq!(s.fake.holdings_of(LOOK_ALIKE), (1, 2), "the look-alike was touched");
    let verification = report
        .evidence
        .iter()
        .find(|e| e.kind == "verification_search")
        .unwrap();
    assert_eq!(verification.detail["remaining_outside_deleted_items"], 0);
    assert_eq!(verification.detail["in_deleted_items"], 0);
    assert!(
        s.fake.calls().iter().any(|c| c.ends_with("/permanentDelete")),
        "hard mode purges"
    );

    let again = s.connector.erase(&ctx(false), &subject(KARI)).await.unwrap();
    assert_eq!((again.found, again.changed), (0, 0));
}

#[tokio::test]
async fn soft_erasure_moves_mail_to_deleted_items_and_says_retention_purges_it() {
    let s = setup("delete_mode = \"soft\"\n").await;
    let report = s.connector.erase(&ctx(false), &subject(KARI)).await.unwrap();
    assert_eq!(s.fake.live_messages_of(KARI), 0);
    let (left_in_deleted_items, contacts) = s.fake.holdings_of(KARI);
    assert!(left_in_deleted_items > 0);
    assert_eq!(contacts, 0);
    let verification = report
        .evidence
        .iter()
        .find(|e| e.kind == "verification_search")
        .unwrap();
    assert_eq!(verification.detail["remaining_outside_deleted_items"], 0);
    assert!(
        report.notes.iter().any(|n| n.contains("retention policy")),
        "{:?}",
        report.notes
    );
}

#[tokio::test]
async fn a_dry_run_erases_nothing() {
    let s = setup("").await;
    let report = s.connector.erase(&ctx(true), &subject(KARI)).await.unwrap();
    assert_eq!((report.found, report.changed), (33, 0));
    assert_eq!(s.fake.holdings_of(KARI), (29, 4));
}

#[tokio::test]
async fn rectification_changes_only_the_named_fields() {
    let s = setup("").await;
    let changes = vec![
        FieldChange {
            field: RectifyField::FamilyName,
            value: "Hansen".into(),
        },
        FieldChange {
            field: RectifyField::JobTitle,
            value: "Styreleder".into(),
        },
    ];
    let report = s
        .connector
        .rectify(&ctx(false), &subject(KARI), &changes)
        .await
        .unwrap();
    assert_eq!((report.found, report.changed), (4, 4), "in every contact folder");
    let contacts = s.fake.with(|st| st.contacts.clone());
    let ola = contacts.iter().find(|c| c.json["id"] == "c-ola-1").unwrap();
    assert_eq!(ola.json["surname"], "Hansen");
    assert_eq!(ola.json["jobTitle"], "Styreleder");
    assert_eq!(ola.json["givenName"], "Kari");
    assert_eq!(ola.json["companyName"], "Nordmann Consulting");
    let other = contacts.iter().find(|c| c.json["id"] == "c-ola-2").unwrap();
    assert_eq!(other.json["surname"], "Nordmann", "the look-alike was corrected");
    let change = report.evidence.iter().find(|e| e.detail["id"] == "c-ola-1").unwrap();
    let surname = change.detail["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "surname")
        .unwrap();
    assert_eq!(
        (surname["before"].as_str(), surname["after"].as_str()),
        (Some("Nordmann"), Some("Hansen"))
    );
}

#[tokio::test]
async fn expired_tokens_throttling_and_outages_are_ridden_out() {
    let s = setup("").await;
    let mut sink = MemorySink::checked(subject(KARI));
    s.connector
        .access(&ctx(false), &subject(KARI), &mut sink)
        .await
        .unwrap();
    s.fake.expire_tokens();
    s.fake.throttle_next(2, "0.2");
    let mut sink = MemorySink::checked(subject(KARI));
    s.connector
        .access(&ctx(false), &subject(KARI), &mut sink)
        .await
        .unwrap();
    assert_eq!(ids(&sink, "mail"), kari_messages());
    s.fake.fail_next(2);
    let mut sink = MemorySink::checked(subject(KARI));
    s.connector
        .access(&ctx(false), &subject(KARI), &mut sink)
        .await
        .unwrap();
    assert_eq!(ids(&sink, "mail"), kari_messages());
    assert_eq!(
        s.fake.with(|st| st.issued),
        2,
        "one refresh after the expiry, not one per call"
    );
}

#[tokio::test]
async fn long_throttling_is_handed_back_with_graphs_retry_after() {
    let s = setup("").await;
    s.fake.throttle_next(10, "120");
    let err = access_of(&s, KARI).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn a_foreign_next_page_host_is_refused() {
    let s = setup("").await;
    s.fake
        .with(|st| st.faults.foreign_next_link = Some("http://127.0.0.2:9".into()));
    let err = access_of(&s, KARI).await.unwrap_err();
    assert_eq!(err.code(), "permanent:foreign_next_link", "{err}");
}

#[tokio::test]
async fn a_missing_permission_is_named() {
    let s = setup("").await;
    s.fake.revoke("Mail.Read");
    let err = access_of(&s, KARI).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Permanent { .. }), "{err}");
    assert!(err.to_string().contains("Mail.ReadWrite"), "{err}");
}

#[tokio::test]
async fn wrong_credentials_ask_for_new_ones() {
    let fake = GraphFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&fake, dir.path(), "");
    std::fs::write(dir.path().join("graph-secret"), "wrong").unwrap();
    let connector = Microsoft365::new(toml::from_str(&text).unwrap()).unwrap();
    let err = connector.check().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Reauthenticate { .. }), "{err}");
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
}

#[tokio::test]
async fn objection_is_not_applicable_with_the_reason() {
    let s = setup("").await;
    let caps = s.connector.capabilities();
    assert!(matches!(caps.objection, dsr_connector::Support::NotApplicable(ref r) if r.contains("SuperOffice")));
}

/// The real binary, a request through the queue against the fake, with Graph misbehaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_completes_through_token_expiry_429s_and_a_503() {
    let fake = GraphFake::start().await.unwrap();
    let deployment = util::Deployment::sqlite("");
    let section = config_text(&fake, deployment.path(), "");
    let text = std::fs::read_to_string(&deployment.config).unwrap();
    std::fs::write(
        &deployment.config,
        format!("{text}[processors.microsoft365]\n{section}"),
    )
    .unwrap();

    // Warm a token, then expire it and queue throttling and an outage for the real run.
    let (code, first) =
        util::dsr_json_async(&deployment, &["run", "access", "--email", KARI, "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{first}");
    assert_eq!(util::task(&first, "microsoft365")["records"]["found"], 33);
    // `dsr status` names the mailboxes that could not be searched, to the operator.
    let notes = util::task(&first, "microsoft365")["operator_notes"].to_string();
    assert!(
        notes.contains("eva.lund@racom.no") && notes.contains("hr@racom.no"),
        "{notes}"
    );
    let bundle = std::fs::read(first["bundle"].as_str().unwrap()).unwrap();
    assert!(
        !String::from_utf8_lossy(&bundle).contains("eva.lund") && !bundle.windows(10).any(|w| w == b"hr@racom.n"),
        "the subject's bundle names no colleague's account"
    );
    // So does `dsr doctor`.
    let (_, doctor) = util::dsr_json_async(&deployment, &["doctor"]).await;
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "processor microsoft365")
        .unwrap();
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["detail"].as_str().unwrap().contains("lars.berg@partner.example"),
        "{check}"
    );
    fake.expire_tokens();
    fake.throttle_next(3, "0.1");
    fake.fail_next(1);
    let (code, status) =
        util::dsr_json_async(&deployment, &["run", "erasure", "--email", KARI, "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["status"], "completed");
    assert_eq!(util::task(&status, "microsoft365")["records"]["changed"], 33);
    assert_eq!(fake.holdings_of(KARI), (0, 0));
    let confirmation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(status["confirmation"].as_str().unwrap()).unwrap()).unwrap();
    let evidence = &confirmation["processors"][0]["evidence"];
    assert!(
        evidence
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "verification_search"),
        "{confirmation}"
    );

    let (code, doctor) = util::dsr_json_async(&deployment, &["doctor"]).await;
    let m365 = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "processor microsoft365")
        .unwrap();
    assert_eq!(m365["ok"], true, "{doctor}");
    assert_eq!(code, 0, "doctor finds everything in order: {doctor}");

    let (code, objection) =
        util::dsr_json_async(&deployment, &["run", "objection", "--email", KARI, "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{objection}");
    assert_eq!(util::task(&objection, "microsoft365")["status"], "not_applicable");
}

#[tokio::test]
async fn users_without_a_mailbox_and_fenced_mailboxes_are_skipped_and_named_to_the_operator_only() {
    let s = setup("").await;
    let mut sink = MemorySink::checked(subject(KARI));
    let summary = s
        .connector
        .access(&ctx(false), &subject(KARI), &mut sink)
        .await
        .expect("one mailbox-less user does not fail the request");
    assert_eq!(ids(&sink, "mail"), kari_messages());
    let operator = summary.operator_notes.join("\n");
    for user in ["lars.berg@partner.example", "eva.lund@racom.no", "hr@racom.no"] {
        assert!(operator.contains(user), "the operator is told about {user}: {operator}");
    }
    let bundle = serde_json::to_string(&(&sink.records, &summary.notes)).unwrap();
    for user in ["lars.berg", "eva.lund", "hr@racom.no"] {
        assert!(
            !bundle.contains(user),
            "other people's accounts are not the subject's to see: {user}"
        );
    }
    assert!(
        summary.notes.iter().any(|n| n.contains("could not be")),
        "the subject learns that a mailbox could not be searched, not whose: {:?}",
        summary.notes
    );
    // Erasure and rectification skip them the same way.
    let report = s.connector.erase(&ctx(false), &subject(KARI)).await.unwrap();
    assert_eq!(report.operator_notes.len(), 2, "{:?}", report.operator_notes);
    assert_eq!(s.fake.holdings_of(KARI), (0, 0));
}

#[tokio::test]
async fn a_refusal_on_every_mailbox_is_a_missing_permission_not_a_completed_search() {
    let s = setup("").await;
    s.fake.forbid_mail_for_all(true);
    let err = access_of(&s, KARI).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("Mail.ReadWrite"),
        "names the permission to grant: {err}"
    );
    let err = s.connector.erase(&ctx(false), &subject(KARI)).await.unwrap_err();
    assert!(err.to_string().contains("Mail.ReadWrite"), "{err}");
    assert_eq!(s.fake.holdings_of(KARI), (29, 4), "nothing was touched");
}

#[tokio::test]
async fn the_user_list_is_never_asked_for_more_than_graph_allows() {
    // Graph refuses `$top` above 999 on /users (the fake answers 400): a larger configured
    // page size is capped there, so the listing still works.
    let fake = GraphFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = fake.connector_toml(&dir.path().join("graph-secret")).unwrap();
    let config: Microsoft365Config = toml::from_str(&format!("{text}page_size = 1000\n")).unwrap();
    let connector = Microsoft365::new(config).unwrap();
    let mut sink = MemorySink::checked(subject(KARI));
    connector
        .access(&ctx(false), &subject(KARI), &mut sink)
        .await
        .expect("no 400 from /users");
    assert_eq!(ids(&sink, "mail"), kari_messages());
}
