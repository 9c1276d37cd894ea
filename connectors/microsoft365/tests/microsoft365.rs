//! The Microsoft 365 connector against the fake Graph in `fixtures/`: what it finds, what it
//! plans and carries out for an erasure or a rectification, and how it behaves when Graph
//! throttles, fails or expires tokens.

use std::collections::BTreeSet;
use std::time::Duration;

use dsr_connector::{
    Action, Applied, Change, Connector, ConnectorError, FieldChange, ItemOutcome, ItemState, MemorySink, Plan,
    PlanRules, RectifyField, SharedPolicy, TaskContext, apply, check_plan,
};
use dsr_fixtures::graph::GraphFake;
use dsr_microsoft365::{Microsoft365, Microsoft365Config};
use serde_json::{Value, json};
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

use dsr_fixtures::testing::subject;

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

fn kari_messages() -> BTreeSet<String> {
    let mut expected: BTreeSet<String> = ["m-ola-1", "m-ola-2", "m-ola-4", "m-post-1", "m-post-2", "m-salg-1"]
        .into_iter()
        .map(String::from)
        .collect();
    expected.extend((0..23).map(|i| format!("m-bulk-{i}")));
    expected
}

fn rules(shared: SharedPolicy) -> PlanRules {
    PlanRules::new(shared)
}

async fn erase(s: &Setup, shared: SharedPolicy, dry_run: bool) -> Result<Applied, ConnectorError> {
    apply(
        &s.connector,
        &ctx(dry_run),
        &subject(KARI),
        &Change::Erasure,
        &rules(shared),
    )
    .await
}

fn rectification(changes: &[(RectifyField, &str)]) -> Change {
    Change::Rectification {
        changes: changes
            .iter()
            .map(|(field, value)| FieldChange {
                field: *field,
                value: value.to_string(),
            })
            .collect(),
    }
}

fn surname_and_title() -> Change {
    rectification(&[
        (RectifyField::FamilyName, "Hansen"),
        (RectifyField::JobTitle, "Styreleder"),
    ])
}

/// Everything the fake holds, mail and contacts, as Graph would return it.
fn holdings(fake: &GraphFake) -> Value {
    fake.with(|s| {
        json!({
            "messages": s.messages.iter().map(|m| json!([m.mailbox, m.json])).collect::<Vec<_>>(),
            "contacts": s.contacts.iter().map(|c| json!([c.mailbox, c.json])).collect::<Vec<_>>(),
        })
    })
}

/// The calls that change something at Graph (PATCH, DELETE, permanentDelete).
fn writes(fake: &GraphFake) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| c.starts_with("DELETE ") || c.starts_with("PATCH ") || c.ends_with("/permanentDelete"))
        .collect()
}

fn keys(plan: &Plan) -> Vec<&str> {
    plan.items.iter().map(|i| i.key.as_str()).collect()
}

fn message_ids(fake: &GraphFake) -> BTreeSet<String> {
    fake.with(|s| {
        s.messages
            .iter()
            .filter_map(|m| m.json["id"].as_str().map(String::from))
            .collect()
    })
}

fn contact(fake: &GraphFake, id: &str) -> Option<Value> {
    fake.with(|s| s.contacts.iter().find(|c| c.json["id"] == id).map(|c| c.json.clone()))
}

fn set(keys: Vec<&str>) -> BTreeSet<&str> {
    keys.into_iter().collect()
}

const SHARED: [&str; 3] = [
    "messages ola.hansen@racom.no/m-ola-2",
    "messages ola.hansen@racom.no/m-ola-4",
    "messages salg@racom.no/m-salg-1",
];

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
        sink.ids("mail"),
        kari_messages(),
        "across three mailboxes and many pages"
    );
    assert_eq!(
        sink.ids("contacts"),
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
        sink.ids("mail"),
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
        sink.ids("contacts"),
        BTreeSet::from(["c-post-1".to_string()]),
        "the ' was doubled in $filter"
    );
    assert_eq!(sink.ids("mail"), BTreeSet::from(["m-post-4".to_string()]));
    // A '"' in a quoted local part must not break the $search expression.
    let mut sink = MemorySink::checked(subject(r#""kari\"n"@example.no"#));
    s.connector
        .access(&ctx(false), &subject(r#""kari\"n"@example.no"#), &mut sink)
        .await
        .unwrap();
    assert!(sink.records.is_empty());
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
    assert_eq!(sink.ids("mail"), kari_messages());
    s.fake.fail_next(2);
    let mut sink = MemorySink::checked(subject(KARI));
    s.connector
        .access(&ctx(false), &subject(KARI), &mut sink)
        .await
        .unwrap();
    assert_eq!(sink.ids("mail"), kari_messages());
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
    assert_eq!(sink.ids("mail"), kari_messages());
}

fn hex_digest(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn erasure_leaves_nothing_verifies_it_and_a_rerun_is_a_no_op() {
    let s = setup("").await;
    assert_eq!(s.fake.holdings_of(KARI), (29, 4));
    let applied = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!((applied.plan.found(), applied.changed()), (33, 33));
    assert_eq!(applied.keys("messages", "done").len(), 29);
    assert_eq!(
        applied.keys("contacts", "done"),
        [
            "contacts ola.hansen@racom.no/c-ola-1",
            "contacts ola.hansen@racom.no/c-ola-3",
            "contacts ola.hansen@racom.no/c-ola-4",
            "contacts salg@racom.no/c-salg-1",
        ],
        "in every contact folder"
    );
    assert_eq!(
        applied.keys("messages", "not_hers"),
        ["messages ola.hansen@racom.no/m-ola-3"],
        "the look-alike the loose participants: search returned was refused"
    );
    assert_eq!(s.fake.holdings_of(KARI), (0, 0), "the fake still holds Kari's data");
    assert_eq!(s.fake.holdings_of(LOOK_ALIKE), (1, 2), "the look-alike was touched");
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
    assert!(
        s.fake.calls().iter().any(|c| c.ends_with("/permanentDelete")),
        "hard mode purges"
    );
    assert!(
        !s.fake.calls().iter().any(|c| c.starts_with("DELETE ")),
        "hard mode never moves to Deleted Items"
    );
    assert!(
        applied.plan.notes.iter().any(|n| n.contains("Recoverable Items")),
        "{:?}",
        applied.plan.notes
    );

    let again = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!((again.plan.found(), again.changed()), (0, 0));
}

#[tokio::test]
async fn soft_erasure_moves_mail_to_deleted_items_and_says_retention_purges_it() {
    let s = setup("delete_mode = \"soft\"\n").await;
    let applied = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!(s.fake.live_messages_of(KARI), 0);
    assert_eq!(
        s.fake.holdings_of(KARI),
        (29, 0),
        "every message in Deleted Items, the one already there not purged"
    );
    let already = applied.item("messages post@racom.no/m-post-2").unwrap();
    assert_eq!(already.action, Action::Keep);
    assert!(
        matches!(&already.state, ItemState::Retained { reason } if reason.contains("Deleted Items")),
        "{:?}",
        already.state
    );
    assert_eq!(applied.changed(), 32, "28 messages and 4 contacts");
    assert!(s.fake.calls().iter().any(|c| c.starts_with("DELETE ")));
    assert!(!s.fake.calls().iter().any(|c| c.ends_with("/permanentDelete")));
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
    assert!(
        applied.plan.notes.iter().any(|n| n.contains("retention policy")),
        "{:?}",
        applied.plan.notes
    );

    // Planned again: every message of hers is in Deleted Items, kept for retention, none due.
    let mut again = s
        .connector
        .plan(&ctx(false), &subject(KARI), &Change::Erasure)
        .await
        .unwrap();
    check_plan(&subject(KARI), &mut again, &rules(SharedPolicy::Delete));
    let hers: Vec<_> = again
        .items
        .iter()
        .filter(|i| !matches!(i.state, ItemState::NotHers { .. }))
        .collect();
    assert_eq!(hers.len(), 29);
    assert!(
        hers.iter()
            .all(|i| i.action == Action::Keep && i.state.as_str() == "retained"),
        "{hers:?}"
    );
}

#[tokio::test]
async fn a_plan_and_a_dry_run_change_nothing_and_list_what_the_run_does() {
    let s = setup("").await;
    let before = holdings(&s.fake);
    let plan = s
        .connector
        .plan(&ctx(false), &subject(KARI), &Change::Erasure)
        .await
        .unwrap();
    assert_eq!(holdings(&s.fake), before, "planning changed the fake");
    let dry = erase(&s, SharedPolicy::Delete, true).await.unwrap();
    assert!(dry.verification.is_none());
    assert_eq!((dry.plan.found(), dry.changed()), (33, 0));
    assert_eq!(dry.plan.count("pending"), 33, "all of hers would be deleted");
    assert_eq!(holdings(&s.fake), before, "the dry run changed the fake");
    assert_eq!(s.fake.holdings_of(KARI), (29, 4));
    let rectify_dry = apply(
        &s.connector,
        &ctx(true),
        &subject(KARI),
        &surname_and_title(),
        &rules(SharedPolicy::Retain),
    )
    .await
    .unwrap();
    assert_eq!(rectify_dry.plan.count("pending"), 4);
    assert_eq!(
        holdings(&s.fake),
        before,
        "the rectification's dry run changed the fake"
    );
    assert!(writes(&s.fake).is_empty(), "{:?}", writes(&s.fake));

    let executed = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!(keys(&plan), keys(&dry.plan));
    assert_eq!(
        keys(&dry.plan),
        keys(&executed.plan),
        "the preview is the plan carried out"
    );
    assert_eq!(executed.changed(), 33);
}

#[tokio::test]
async fn shared_mail_is_retained_unless_the_company_deletes_it() {
    let s = setup("").await;
    let retained = erase(&s, SharedPolicy::Retain, false).await.unwrap();
    assert_eq!(set(retained.keys("messages", "retained")), set(SHARED.to_vec()));
    for (key, with) in SHARED
        .iter()
        .zip(["1 other participant", "1 other participant", "2 other participants"])
    {
        let item = retained.item(key).unwrap();
        assert_eq!(item.shared.as_deref(), Some(with), "{key}");
        assert_eq!(
            item.state,
            ItemState::Retained {
                reason: "it also concerns other people".into()
            }
        );
    }
    assert!(
        retained
            .plan
            .items
            .iter()
            .filter_map(|i| i.shared.as_deref())
            .all(|s| !s.contains('@')),
        "a count, never who"
    );
    assert_eq!(
        retained.item("messages ola.hansen@racom.no/m-ola-1").unwrap().shared,
        None,
        "between her and the mailbox's owner only"
    );
    assert_eq!(retained.changed(), 30);
    assert_eq!(s.fake.holdings_of(KARI), (3, 0), "the shared messages stay");
    assert!(retained.verification.as_ref().unwrap().remaining.is_empty());

    let deleted = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!(set(deleted.keys("messages", "done")), set(SHARED.to_vec()));
    assert_eq!(s.fake.holdings_of(KARI), (0, 0));
}

#[tokio::test]
async fn a_redelivered_execution_changes_nothing_more() {
    let s = setup("").await;
    let kari = subject(KARI);
    let mut plan = s.connector.plan(&ctx(false), &kari, &Change::Erasure).await.unwrap();
    check_plan(&kari, &mut plan, &rules(SharedPolicy::Delete));
    let due: Vec<_> = plan.items.iter().filter(|i| i.is_due()).cloned().collect();
    assert_eq!(due.len(), 33);
    for item in &due {
        let outcome = s
            .connector
            .execute(&ctx(false), &kari, &Change::Erasure, item)
            .await
            .unwrap();
        assert!(matches!(outcome, ItemOutcome::Done(_)), "{}: {outcome:?}", item.key);
    }
    let after = holdings(&s.fake);
    for item in &due {
        let outcome = s
            .connector
            .execute(&ctx(false), &kari, &Change::Erasure, item)
            .await
            .unwrap();
        assert_eq!(outcome, ItemOutcome::AlreadyGone, "{}", item.key);
    }
    assert_eq!(holdings(&s.fake), after);

    let s = setup("").await;
    let change = surname_and_title();
    let mut plan = s.connector.plan(&ctx(false), &kari, &change).await.unwrap();
    check_plan(&kari, &mut plan, &rules(SharedPolicy::Retain));
    let due: Vec<_> = plan.items.iter().filter(|i| i.is_due()).cloned().collect();
    assert_eq!(due.len(), 4);
    for item in &due {
        s.connector.execute(&ctx(false), &kari, &change, item).await.unwrap();
    }
    let after = holdings(&s.fake);
    for item in &due {
        let outcome = s.connector.execute(&ctx(false), &kari, &change, item).await.unwrap();
        let ItemOutcome::Done(receipt) = outcome else {
            panic!("{}: {outcome:?}", item.key)
        };
        assert!(receipt["fields"].as_array().is_some_and(|f| f.len() == 2), "{receipt}");
    }
    assert_eq!(holdings(&s.fake), after, "the same values again: nothing changed");
}

#[tokio::test]
async fn what_a_search_ignoring_its_filter_returns_that_is_not_hers_is_refused_and_untouched() {
    let s = setup("").await;
    s.fake.with(|st| st.faults.ignore_search_filter = true);
    let applied = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    let refused: BTreeSet<_> = applied.keys("messages", "not_hers").into_iter().collect();
    assert_eq!(
        refused,
        BTreeSet::from([
            "messages ola.hansen@racom.no/m-ola-3",
            "messages post@racom.no/m-post-3",
            "messages post@racom.no/m-post-4",
        ])
    );
    let refused: BTreeSet<_> = applied.keys("contacts", "not_hers").into_iter().collect();
    assert_eq!(
        refused,
        BTreeSet::from([
            "contacts ola.hansen@racom.no/c-ola-2",
            "contacts ola.hansen@racom.no/c-ola-5",
            "contacts post@racom.no/c-post-1",
            "contacts salg@racom.no/c-salg-2",
        ])
    );
    assert!(
        applied
            .plan
            .items
            .iter()
            .filter(|i| i.state.as_str() == "not_hers")
            .all(|i| matches!(&i.state, ItemState::NotHers { reason } if reason.starts_with("not the subject's")))
    );
    assert_eq!(applied.changed(), 33);
    assert_eq!(s.fake.holdings_of(KARI), (0, 0));
    assert_eq!(s.fake.holdings_of(LOOK_ALIKE), (1, 2));
    assert_eq!(s.fake.holdings_of("o'hara@example.ie"), (1, 1));
    let left = message_ids(&s.fake);
    for id in ["m-ola-3", "m-post-3", "m-post-4", "m-hr-1"] {
        assert!(left.contains(id), "{id} was deleted");
    }
    assert!(contact(&s.fake, "c-salg-2").is_some());

    let s = setup("").await;
    s.fake.with(|st| st.faults.ignore_search_filter = true);
    let applied = apply(
        &s.connector,
        &ctx(false),
        &subject(KARI),
        &surname_and_title(),
        &rules(SharedPolicy::Retain),
    )
    .await
    .unwrap();
    assert_eq!(applied.keys("contacts", "not_hers").len(), 4);
    assert_eq!(applied.changed(), 4);
    for (id, surname) in [
        ("c-ola-2", "Nordmann"),
        ("c-ola-5", "Nordmann"),
        ("c-salg-2", "Olsen"),
        ("c-post-1", "O'Hara"),
    ] {
        let other = contact(&s.fake, id).unwrap();
        assert_eq!(other["surname"], surname, "{id} was corrected");
        assert!(other["jobTitle"] != "Styreleder", "{id} was corrected");
    }
}

#[tokio::test]
async fn rectification_changes_only_the_named_fields() {
    let s = setup("").await;
    let applied = apply(
        &s.connector,
        &ctx(false),
        &subject(KARI),
        &surname_and_title(),
        &rules(SharedPolicy::Retain),
    )
    .await
    .unwrap();
    assert_eq!(
        (applied.plan.found(), applied.changed()),
        (4, 4),
        "in every contact folder"
    );
    let ola = contact(&s.fake, "c-ola-1").unwrap();
    assert_eq!(ola["surname"], "Hansen");
    assert_eq!(ola["jobTitle"], "Styreleder");
    assert_eq!(ola["givenName"], "Kari");
    assert_eq!(ola["companyName"], "Nordmann Consulting");
    for id in ["c-ola-3", "c-ola-4", "c-salg-1"] {
        assert_eq!(contact(&s.fake, id).unwrap()["surname"], "Hansen", "{id}");
    }
    let other = contact(&s.fake, "c-ola-2").unwrap();
    assert_eq!(other["surname"], "Nordmann", "the look-alike was corrected");

    let key = "contacts ola.hansen@racom.no/c-ola-1";
    let item = applied.item(key).unwrap();
    assert_eq!(item.action, Action::Patch);
    assert_eq!(item.before.as_ref().unwrap()["surname"], "Nordmann");
    assert_eq!(item.after.as_ref().unwrap()["surname"], "Hansen");
    let ItemState::Done { receipt } = &item.state else {
        panic!("{:?}", item.state)
    };
    let surname = receipt["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "surname")
        .unwrap();
    assert_eq!(
        (surname["before"].as_str(), surname["after"].as_str()),
        (Some("Nordmann"), Some("Hansen")),
        "as Graph answered"
    );
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
    assert_eq!(verification.after[key]["surname"], "Hansen");

    // Planned again: every contact is already as requested, with its values now.
    let mut again = s
        .connector
        .plan(&ctx(false), &subject(KARI), &surname_and_title())
        .await
        .unwrap();
    check_plan(&subject(KARI), &mut again, &rules(SharedPolicy::Retain));
    assert_eq!(again.items.len(), 4);
    for item in &again.items {
        assert_eq!(item.action, Action::Keep, "{}", item.key);
        assert_eq!(item.reason.as_deref(), Some("already as requested"));
        assert_eq!(
            item.before,
            Some(json!({"surname": "Hansen", "jobTitle": "Styreleder"}))
        );
    }

    // A field Graph keeps structured is left, and said so.
    let address = apply(
        &s.connector,
        &ctx(false),
        &subject(KARI),
        &rectification(&[(RectifyField::Address, "Storgata 1")]),
        &rules(SharedPolicy::Retain),
    )
    .await
    .unwrap();
    assert_eq!((address.plan.count("retained"), address.changed()), (4, 0));
    assert!(
        address.plan.notes.iter().any(|n| n.contains("Outlook")),
        "{:?}",
        address.plan.notes
    );
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
    assert_eq!(sink.ids("mail"), kari_messages());
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
    let applied = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!(
        applied.plan.operator_notes.len(),
        2,
        "{:?}",
        applied.plan.operator_notes
    );
    let told = applied.plan.notes.join("\n");
    assert!(told.contains("could not be"), "{told}");
    for user in ["lars.berg", "eva.lund", "hr@racom.no"] {
        assert!(!told.contains(user), "{user}: {told}");
    }
    assert_eq!(s.fake.holdings_of(KARI), (0, 0));
    let rectified = apply(
        &s.connector,
        &ctx(false),
        &subject(KARI),
        &surname_and_title(),
        &rules(SharedPolicy::Retain),
    )
    .await
    .unwrap();
    assert_eq!(
        rectified.plan.operator_notes.len(),
        2,
        "{:?}",
        rectified.plan.operator_notes
    );
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
    let err = erase(&s, SharedPolicy::Delete, false).await.unwrap_err();
    assert!(err.to_string().contains("Mail.ReadWrite"), "{err}");
    assert_eq!(s.fake.holdings_of(KARI), (29, 4), "nothing was touched");
}

#[tokio::test]
async fn objection_is_planned_nowhere() {
    let s = setup("").await;
    let err = s
        .connector
        .plan(&ctx(false), &subject(KARI), &Change::Objection)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::NotSupported { .. }), "{err}");
    assert!(
        err.to_string().contains("SuperOffice") || format!("{err:?}").contains("SuperOffice"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_correction_is_sent_only_while_the_contact_holds_what_the_plan_read() {
    let s = setup("").await;
    let kari = subject(KARI);
    let change = rectification(&[
        (RectifyField::Email, "kari.hansen@example.no"),
        (RectifyField::FamilyName, "Hansen"),
    ]);
    let mut plan = s.connector.plan(&ctx(false), &kari, &change).await.unwrap();
    check_plan(&kari, &mut plan, &rules(SharedPolicy::Retain));
    let item = |id: &str| {
        plan.items
            .iter()
            .find(|i| i.key.ends_with(&format!("/{id}")))
            .unwrap_or_else(|| panic!("{id} in {:?}", keys(&plan)))
            .clone()
    };
    let edit = |id: &str, f: &dyn Fn(&mut Value)| {
        s.fake
            .with(|st| f(&mut st.contacts.iter_mut().find(|c| c.json["id"] == id).unwrap().json))
    };
    let patches = || writes(&s.fake).iter().filter(|c| c.starts_with("PATCH ")).count();
    let ola = item("c-ola-1");
    assert_eq!(ola.action, Action::Patch);

    // Someone adds an address while the plan waits: the planned list would drop it.
    edit("c-ola-1", &|c| {
        c["emailAddresses"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "Jobb", "address": "kari@jobb.example"}))
    });
    let err = s
        .connector
        .execute(&ctx(false), &kari, &change, &ola)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert!(
        err.to_string().contains("dsr retry test --processor microsoft365"),
        "{err}"
    );
    let now = contact(&s.fake, "c-ola-1").unwrap();
    assert_eq!(
        now["emailAddresses"].as_array().unwrap().len(),
        2,
        "the added address is kept"
    );
    assert_eq!(now["surname"], "Nordmann");

    // Someone made exactly the correction asked for: done, nothing sent.
    edit("c-ola-1", &|c| {
        c["emailAddresses"] = json!([{"name": "Kari Nordmann", "address": "kari.hansen@example.no"}]);
        c["surname"] = json!("Hansen");
    });
    let outcome = s.connector.execute(&ctx(false), &kari, &change, &ola).await.unwrap();
    assert!(
        matches!(&outcome, ItemOutcome::Done(r) if r["already_as_requested"] == true),
        "{outcome:?}"
    );

    // Deleted (or moved) since the plan: not found where planned, nothing sent.
    let in_folder = item("c-ola-3");
    assert!(in_folder.target["folder"].is_string(), "{in_folder:?}");
    s.fake.with(|st| st.contacts.retain(|c| c.json["id"] != "c-ola-3"));
    let err = s
        .connector
        .execute(&ctx(false), &kari, &change, &in_folder)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert_eq!(patches(), 0);

    // Unchanged since the plan, in a folder too: sent as planned.
    let outcome = s
        .connector
        .execute(&ctx(false), &kari, &change, &item("c-ola-4"))
        .await
        .unwrap();
    assert!(matches!(outcome, ItemOutcome::Done(_)), "{outcome:?}");
    assert_eq!(contact(&s.fake, "c-ola-4").unwrap()["surname"], "Hansen");
    assert_eq!(patches(), 1);
}
