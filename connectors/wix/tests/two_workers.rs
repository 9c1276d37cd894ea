//! Two workers' Wix calls, limited together: each connector takes its places in flight from
//! one shared backend (what `dsr worker` installs on a Redis queue), so the two together stay
//! within the site's limit. Its own test binary: the backend is process-wide.

use std::time::Duration;

use dsr_connector::{Connector, MemorySink};
use dsr_fixtures::testing::first_attempt as ctx;
use dsr_wix::Wix;
use dsr_wix::client::SITE_LIMITS;

mod setup;

use setup::{connector, kari};

/// Two workers (two connectors, each with its own limiter) taking their places from one shared
/// backend, as two workers on one Redis do: together they reach the site's limit and never
/// pass it, though each alone would send that many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_sharing_their_limits_stay_within_the_sites_together() {
    dsr_connector::http::share_limits(Some(std::sync::Arc::new(dsr_connector::http::MemoryLimits::default())));
    let (fake, dir, one) = connector().await;
    let text = fake.connector_toml(&dir.path().join("wix-key-2")).unwrap();
    let two = Wix::new(toml::from_str(&text).unwrap()).unwrap();
    let limit = SITE_LIMITS.concurrent;
    fake.hold_site_calls_until(limit, Duration::from_millis(200));
    let (mut a, mut b) = (MemorySink::checked(kari()), MemorySink::checked(kari()));
    let (context, subject) = (ctx(), kari());
    let (x, y) = tokio::join!(
        one.access(&context, &subject, &mut a),
        two.access(&context, &subject, &mut b)
    );
    dsr_connector::http::share_limits(None);
    x.unwrap();
    y.unwrap();
    let seen = fake.max_in_flight();
    assert_eq!(seen.values().max(), Some(&limit), "{seen:?}");
    assert!(
        seen.values().all(|n| *n <= limit),
        "two workers together never pass {limit}: {seen:?}"
    );
    assert_eq!(a.order(), b.order());
}
