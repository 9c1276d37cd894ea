//! The Microsoft 365 connector's access (Art. 15) against the fake Graph in `fixtures/`: what
//! it finds and exports, which mailboxes it cannot search, and how it behaves when Graph
//! throttles, fails, expires tokens or refuses, or the configuration cannot work.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use dsr_connector::{Action, Change, Connector, ConnectorError, PlanItem, SharedPolicy};
use dsr_fixtures::graph::GraphFake;
use dsr_microsoft365::{Microsoft365, Microsoft365Config};
use serde_json::json;
use sha2::Digest;

#[tokio::test]
async fn access_finds_exactly_the_subjects_mail_contacts_and_attachments() {
    let s = setup("").await;
    let (sink, summary) = access_of(&s.connector, KARI).await.unwrap();
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
    let (sink, _) = access_of(&s.connector, KARI).await.unwrap();
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
    let (sink, _) = access_of(&s.connector, "o'hara@example.ie").await.unwrap();
    assert_eq!(
        sink.ids("contacts"),
        BTreeSet::from(["c-post-1".to_string()]),
        "the ' was doubled in $filter"
    );
    assert_eq!(sink.ids("mail"), BTreeSet::from(["m-post-4".to_string()]));
    // A '"' in a quoted local part must not break the $search expression.
    let (sink, _) = access_of(&s.connector, r#""kari\"n"@example.no"#).await.unwrap();
    assert!(sink.records.is_empty());
}

#[tokio::test]
async fn expired_tokens_throttling_and_outages_are_ridden_out() {
    let s = setup("").await;
    access_of(&s.connector, KARI).await.unwrap();
    s.fake.expire_tokens();
    s.fake.throttle_next(2, "0.2");
    let (sink, _) = access_of(&s.connector, KARI).await.unwrap();
    assert_eq!(sink.ids("mail"), kari_messages());
    s.fake.fail_next(2);
    let (sink, _) = access_of(&s.connector, KARI).await.unwrap();
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
    let err = access_of(&s.connector, KARI).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn a_foreign_next_page_host_is_refused() {
    let s = setup("").await;
    s.fake
        .with(|st| st.faults.foreign_next_link = Some("http://127.0.0.2:9".into()));
    let err = access_of(&s.connector, KARI).await.unwrap_err();
    assert_eq!(err.code(), "permanent:foreign_next_link", "{err}");
}

#[tokio::test]
async fn a_missing_permission_is_named() {
    let s = setup("").await;
    s.fake.revoke("Mail.Read");
    let err = access_of(&s.connector, KARI).await.unwrap_err();
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
    // Entra ID's own words (its AADSTS code) are the vendor's: beside dsr's text, not in it.
    assert!(!err.to_string().contains("AADSTS"), "{err}");
    assert!(err.said().is_some_and(|s| s.contains("AADSTS7000215")), "{err:?}");
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
    let (sink, _) = access_of(&connector, KARI).await.expect("no 400 from /users");
    assert_eq!(sink.ids("mail"), kari_messages());
}

fn hex_digest(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn users_without_a_mailbox_and_fenced_mailboxes_are_skipped_and_named_to_the_operator_only() {
    let s = setup("").await;
    let (sink, summary) = access_of(&s.connector, KARI)
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
    let rectified = correct(&s, &surname_and_title()).await.unwrap();
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
    let err = access_of(&s.connector, KARI).await.unwrap_err();
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
    assert!(err.to_string().contains("SuperOffice"), "{err:?}");
    let dsr_connector::Support::NotApplicable(reason) = s.connector.capabilities().objection else {
        panic!("objection is served")
    };
    let item = PlanItem::new("consents", "consents", Action::Delete, json!({}), json!({}), vec![]);
    let err = execute_for_kari(&s, &Change::Objection, &item).await.unwrap_err();
    assert_eq!(err.to_string(), format!("microsoft365 cannot do this: {reason}"));
    assert_eq!(s.fake.calls().len(), 0, "Graph was not asked: {:?}", s.fake.calls());
}

#[tokio::test]
async fn a_missing_secret_or_a_bad_tenant_is_named_when_the_connector_is_built() {
    let fake = GraphFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&fake, dir.path(), "");
    let built = |text: &str| Microsoft365::new(toml::from_str(text).unwrap()).err();
    assert!(built(&text).is_none());
    let tenant = format!("tenant_id = \"{}\"", fake.tenant_id());
    let err = built(&text.replace(&tenant, "tenant_id = \"racom tenant/..\"")).unwrap();
    assert_eq!(err.key, "tenant_id", "{err}");
    std::fs::remove_file(dir.path().join("graph-secret")).unwrap();
    let err = built(&text).unwrap();
    assert_eq!(err.key, "client_secret", "{err}");
    assert!(
        err.to_string()
            .starts_with("processors.microsoft365.client_secret: cannot read secret file"),
        "{err}"
    );
    assert_eq!(fake.with(|st| st.issued), 0, "nothing was asked of Graph");
}

/// Graph allows an app four concurrent requests per mailbox. The fake holds each mailbox call
/// until four to that mailbox are in flight (or a short while passed): the most it ever saw at
/// once is four only if the connector really sends four together, and never more.
#[tokio::test]
async fn a_mailboxs_messages_are_read_four_at_a_time_never_more_and_in_order() {
    let s = setup("").await;
    let (sequential, _) = access_of(&s.connector, KARI).await.unwrap();
    let fake = GraphFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = fake.connector_toml(&dir.path().join("graph-secret")).unwrap();
    let connector = Microsoft365::new(toml::from_str(&format!("{text}page_size = 4\n")).unwrap()).unwrap();
    fake.hold_mailbox_calls_until(4, Duration::from_millis(150));
    let (overlapped, summary) = access_of(&connector, KARI).await.unwrap();
    let seen = fake.max_in_flight();
    assert_eq!(
        seen.values().max(),
        Some(&4),
        "four calls to one mailbox at once: {seen:?}"
    );
    assert!(seen.values().all(|n| *n <= 4), "never more than Graph allows: {seen:?}");
    // The same records in the same order, whatever order Graph answered in.
    assert_eq!(summary.found, 33);
    let ids = |sink: &dsr_connector::MemorySink| sink.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&overlapped), ids(&sequential));
}

/// `n` more messages to Kari in Ola's mailbox, each with two file attachments of its own.
fn add_mail_with_attachments(fake: &GraphFake, n: usize) {
    fake.with(|s| {
        let template = s
            .messages
            .iter()
            .find(|m| m.json["id"] == "m-ola-2")
            .expect("the seed's offer")
            .clone();
        for i in 0..n {
            let mut message = template.clone();
            message.json["id"] = json!(format!("m-vedlegg-{i}"));
            message.attachments = (0..2)
                .map(|k| dsr_fixtures::graph::Attachment {
                    id: format!("a-vedlegg-{i}-{k}"),
                    name: format!("vedlegg {k}.txt"),
                    content_type: "text/plain".into(),
                    content: dsr_fixtures::graph::Content::Bytes(
                        format!("vedlegg {i}.{k} ").repeat(i + k + 1).into_bytes(),
                    ),
                })
                .collect();
            s.messages.push(message);
        }
    });
}

/// A connector with `page_size = 4` on its own fake with eight more messages with attachments.
async fn with_attachments() -> (GraphFake, Microsoft365, tempfile::TempDir) {
    let fake = GraphFake::start().await.unwrap();
    add_mail_with_attachments(&fake, 8);
    let dir = tempfile::tempdir().unwrap();
    let text = fake.connector_toml(&dir.path().join("graph-secret")).unwrap();
    let connector = Microsoft365::new(toml::from_str(&format!("{text}page_size = 4\n")).unwrap()).unwrap();
    (fake, connector, dir)
}

/// Attachment downloads go beside the reads of other messages, within the same four: the
/// fake holds each call until four to its mailbox are in flight, so a download is seen among
/// four only if it was sent together with other calls to that mailbox.
#[tokio::test]
async fn attachment_downloads_overlap_with_reads_within_a_mailboxs_four() {
    let (fake, connector, _dir) = with_attachments().await;
    fake.hold_mailbox_calls_until(4, Duration::from_millis(150));
    let (sink, _) = access_of(&connector, KARI).await.unwrap();
    assert_eq!(sink.files.len(), 2 + 16, "every file once");
    let with_downloads = fake.max_in_flight_with_downloads();
    assert_eq!(
        with_downloads.get("u-ola"),
        Some(&4),
        "a download among four calls to the mailbox at once: {with_downloads:?}"
    );
    let downloads = fake.max_downloads_in_flight();
    assert!(
        downloads.get("u-ola").is_some_and(|n| *n >= 2),
        "downloads overlap one another: {downloads:?}"
    );
    let seen = fake.max_in_flight();
    assert!(seen.values().all(|n| *n <= 4), "never more than Graph allows: {seen:?}");
}

/// Mailboxes are searched at once: held until four calls to their own mailbox are in flight
/// (which a lone search never makes), calls to different mailboxes are seen together only if
/// they were sent together.
#[tokio::test]
async fn mailboxes_are_worked_on_at_once() {
    let s = setup("").await;
    s.fake.hold_mailbox_calls_until(4, Duration::from_millis(100));
    let (sink, _) = access_of(&s.connector, KARI).await.unwrap();
    assert_eq!(sink.ids("mail"), kari_messages());
    let mailboxes = s.fake.max_mailboxes_in_flight();
    assert!(mailboxes >= 2, "calls to {mailboxes} mailbox(es) at once");
    let seen = s.fake.max_in_flight();
    assert!(seen.values().all(|n| *n <= 4), "never more than Graph allows: {seen:?}");
}

/// The export is the same — records, their order, file names, sizes and hashes — whether
/// Graph answers in the order it was asked or in another.
#[tokio::test]
async fn the_export_is_the_same_whatever_order_graph_answers_in() {
    let (fake, connector, _dir) = with_attachments().await;
    let (in_order, _) = access_of(&connector, KARI).await.unwrap();
    let asked = fake.calls();
    fake.answer_out_of_order(Duration::from_millis(60));
    let (scrambled, summary) = access_of(&connector, KARI).await.unwrap();
    assert_eq!(summary.found, 33 + 8);
    assert_eq!(scrambled.files.len(), 18);
    let ids = |sink: &dsr_connector::MemorySink| sink.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&scrambled), ids(&in_order));
    assert!(scrambled.records == in_order.records, "the same records");
    assert_eq!(scrambled.files, in_order.files);
    assert_eq!(scrambled.refused, in_order.refused);
    let paths: Vec<&str> = scrambled.files.iter().map(|(_, f)| f.path.as_str()).collect();
    let numbered: Vec<String> = (1..=18).map(|n| format!("attachments/{n:04}-")).collect();
    assert!(
        paths.iter().zip(&numbered).all(|(p, n)| p.starts_with(n.as_str())),
        "numbered in the order the bundle lists them: {paths:?}"
    );
    // Answered out of order indeed: Graph saw the calls in another order than the first time.
    let second = fake.calls().split_off(asked.len());
    assert_eq!(second.len(), asked.len(), "the same calls");
    assert_ne!(second, asked, "in another order");
}
