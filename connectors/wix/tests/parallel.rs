//! Wix calls overlap within the per-site limit dsr allows itself (`SITE_LIMITS`): the fake
//! holds each API call until that many calls for the site are in flight, so the test passes
//! only when they really are in flight together, never more, and the bundle and the plan come
//! out as a run in call order would make them.

use std::time::{Duration, Instant};

use dsr_connector::{Change, Connector, MemorySink};
use dsr_fixtures::testing::first_attempt as ctx;
use dsr_wix::client::SITE_LIMITS;

mod setup;

use setup::{connector, kari};

#[tokio::test]
async fn a_sites_queries_overlap_up_to_the_limit_never_more_and_keep_their_order() {
    let (_, _dir, free) = connector().await;
    let mut unheld = MemorySink::checked(kari());
    free.access(&ctx(), &kari(), &mut unheld).await.unwrap();
    let unheld_plan = free.plan(&ctx(), &kari(), &Change::Erasure).await.unwrap();

    let (fake, _dir2, wix) = connector().await;
    let limit = SITE_LIMITS.concurrent;
    fake.hold_site_calls_until(limit, Duration::from_millis(200));
    let mut held = MemorySink::checked(kari());
    wix.access(&ctx(), &kari(), &mut held).await.unwrap();
    let seen = fake.max_in_flight();
    assert_eq!(seen.len(), 1, "one site: {seen:?}");
    assert_eq!(
        seen.values().max(),
        Some(&limit),
        "{limit} calls for the site at once: {seen:?}"
    );
    assert!(seen.values().all(|n| *n <= limit), "never more than {limit}: {seen:?}");

    // The same records in the same order, whatever order Wix answered in: contacts, members,
    // submissions, comments and subscriptions, as a run in call order lists them.
    assert_eq!(held.order(), unheld.order());
    let categories: Vec<String> = held.order().into_iter().map(|(c, _)| c).collect();
    for kind in [
        "contacts",
        "members",
        "form_submissions",
        "comments",
        "email_subscriptions",
    ] {
        assert!(categories.iter().any(|c| c == kind), "{kind} exported: {categories:?}");
    }
    let last_submission = categories.iter().rposition(|c| c == "form_submissions");
    assert!(last_submission < categories.iter().position(|c| c == "email_subscriptions"));

    // An erasure's plan lists the same items in the same (Wix's required) order too.
    let plan = wix.plan(&ctx(), &kari(), &Change::Erasure).await.unwrap();
    let keys = |p: &dsr_connector::Plan| p.items.iter().map(|i| i.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&plan), keys(&unheld_plan));
    assert!(fake.max_in_flight().values().all(|n| *n <= limit));
}

/// Calls and wall time of one access request with every API call answered after 40 ms, and
/// with none delayed (`cargo test -p dsr-wix --test parallel -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn measure_one_access_request_at_40_ms_a_call() {
    for latency in [Duration::ZERO, Duration::from_millis(40)] {
        let (fake, _dir, wix) = connector().await;
        fake.slow_down(latency);
        let mut sink = MemorySink::checked(kari());
        let started = Instant::now();
        wix.access(&ctx(), &kari(), &mut sink).await.unwrap();
        let wall = started.elapsed();
        let calls = fake.calls();
        let delayed = calls.iter().filter(|c| !c.contains("oauth2/token")).count();
        println!(
            "wix at {latency:?}: {} calls logged ({delayed} API), {} ms wall, {} records: {calls:?}",
            calls.len(),
            wall.as_millis(),
            sink.records.len()
        );
        assert!(wall < latency * delayed as u32 + Duration::from_secs(1));
    }
}
