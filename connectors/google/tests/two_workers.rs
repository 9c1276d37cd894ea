//! Two workers' Gmail and People calls, limited together: each connector takes its places in
//! flight from one shared backend (what `dsr worker` installs on a Redis queue), so the two
//! together stay within each user's limits. Its own test binary: the backend is process-wide.

mod common;

use std::time::Duration;

use common::*;
use dsr_connector::{Connector, MemorySink};
use dsr_fixtures::google::GoogleFake;
use dsr_fixtures::testing::first_attempt as ctx;
use dsr_google::client::{GMAIL_LIMITS, PEOPLE_LIMITS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_sharing_their_limits_stay_within_each_users_together() {
    dsr_connector::http::share_limits(Some(std::sync::Arc::new(dsr_connector::http::MemoryLimits::default())));
    let fake = GoogleFake::start().await.unwrap();
    fake.with(|s| {
        let model = s.gmail.iter().find(|m| m.id == "g-ola-1").cloned().unwrap();
        for n in 0..12 {
            let mut copy = model.clone();
            copy.id = format!("g-ola-bulk-{n:02}");
            s.gmail.push(copy);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let one = workspace_connector(&fake, dir.path(), "hard").await;
    let two = workspace_connector(&fake, dir.path(), "hard").await;
    fake.hold_user_calls_until(GMAIL_LIMITS.concurrent, Duration::from_millis(200));
    let (context, subject) = (ctx(), kari_in_workspace());
    let (mut a, mut b) = (
        MemorySink::checked(subject.clone()),
        MemorySink::checked(subject.clone()),
    );
    let (x, y) = tokio::join!(
        one.access(&context, &subject, &mut a),
        two.access(&context, &subject, &mut b)
    );
    dsr_connector::http::share_limits(None);
    x.unwrap();
    y.unwrap();
    let seen = fake.max_in_flight();
    assert_eq!(
        seen.get("gmail:ola.hansen@racom.no"),
        Some(&GMAIL_LIMITS.concurrent),
        "{seen:?}"
    );
    for (key, n) in &seen {
        let limit = if key.starts_with("gmail:") {
            GMAIL_LIMITS.concurrent
        } else {
            PEOPLE_LIMITS.concurrent
        };
        assert!(
            *n <= limit,
            "two workers together never pass {limit} for {key}: {seen:?}"
        );
    }
    let ids = |sink: &MemorySink| sink.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
}
