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
    let listed = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("GET gmail") && c.ends_with("/messages"))
        .count();
    assert_eq!(listed, 2, "stopped at the first repeated token: {:?}", fake.calls());
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
