//! Google listings that never move on: Gmail's and People's page tokens repeated forever. The
//! task fails at once with `paging_stuck`, naming the list method.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dsr_connector::{Connector, MemorySink};
use dsr_fixtures::google::GoogleFake;
use dsr_fixtures::testing::first_attempt as ctx;

#[tokio::test]
async fn a_page_token_repeated_forever_fails_the_task_at_once() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    fake.with(|s| s.faults.repeat_page_token = true);
    let started = Instant::now();
    let mut sink = MemorySink::checked(kari_in_workspace());
    let err = google
        .access(&ctx(), &kari_in_workspace(), &mut sink)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(
        (err.code().as_str(), err.is_retryable()),
        ("permanent:paging_stuck", false),
        "{message}"
    );
    assert!(message.contains("users.messages.list"), "names the listing: {message}");
    // Every mailbox is searched at once: each listing stops at its first repeated token.
    for mailbox in fake.workspace_users() {
        let listed = fake
            .calls()
            .iter()
            .filter(|c| *c == &format!("GET gmail {mailbox}/messages"))
            .count();
        assert!(listed <= 2, "stopped at the first repeated token: {:?}", fake.calls());
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[tokio::test]
async fn contacts_whose_page_token_repeats_fail_the_same_way() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    fake.with(|s| s.faults.repeat_page_token = true);
    // Known by her phone only: no mail is searched, her contacts are listed.
    let by_phone = dsr_connector::Identities {
        emails: vec![],
        ..kari_in_workspace()
    };
    let mut sink = MemorySink::checked(by_phone.clone());
    let err = google.access(&ctx(), &by_phone, &mut sink).await.unwrap_err();
    assert_eq!(err.code(), "permanent:paging_stuck", "{err}");
    assert!(
        err.to_string().contains("people.connections.list") || err.to_string().contains("otherContacts.list"),
        "names the People listing: {err}"
    );
    assert!(
        !fake.calls().iter().any(|c| c.starts_with("GET gmail")),
        "{:?}",
        fake.calls()
    );
}

/// A contact's resource name is Google's data: whatever it holds, the delete goes to that one
/// contact's `:deleteContact`, never elsewhere on the host.
#[tokio::test]
async fn a_hostile_resource_name_stays_one_path_segment() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let hostile = "people/x/../../admin?permanent=false#";
    let mailbox = "ola.hansen@racom.no";
    let item = dsr_connector::PlanItem::new(
        format!("contacts {mailbox}/{hostile}"),
        "contacts",
        dsr_connector::Action::Delete,
        serde_json::json!({"call": "people.deleteContact", "mailbox": mailbox, "resourceName": hostile}),
        serde_json::Value::Null,
        vec![],
    );
    let before = fake.calls().len();
    let outcome = dsr_fixtures::testing::execute(&google, &kari_in_workspace(), &dsr_connector::Change::Erasure, &item)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        dsr_connector::ItemOutcome::AlreadyGone,
        "the fake has no such contact"
    );
    let mut calls = fake.calls().split_off(before);
    calls.retain(|c| !c.contains("token"));
    assert_eq!(
        calls,
        ["DELETE people/x/../../admin?permanent=false#:deleteContact"],
        "one call, to the contact named, whole"
    );
}
