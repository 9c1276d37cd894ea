//! Vendor limits shared by every worker on one Redis (issue 23): the Redis backend's places
//! in flight and rate are atomic across connections and expire when their holder dies, and
//! two `dsr worker` processes together keep to Graph's four concurrent requests per
//! mailbox, which each alone would keep to while the two together exceeded it.

mod util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use dsr_connector::Processor;
use dsr_connector::http::{Limits, SharedLimits};
use dsr_fixtures::graph::GraphFake;
use dsr_jobs::ListFilter;
use dsr_jobs::model::{RequestKind, RequestStatus};
use dsr_jobs::queue::limits::RedisLimits;
use util::RedisKeys;

const KARI: &str = "kari.nordmann@example.no";

async fn redis_limits(prefix: &str) -> RedisLimits {
    let settings = util::fast_settings(&util::redis_url(), prefix, &std::env::temp_dir());
    RedisLimits::connect(&settings.queue)
        .await
        .unwrap_or_else(|e| panic!("{e}: run the suite with scripts/test, which starts Redis"))
}

#[tokio::test]
async fn places_and_rate_in_redis_are_shared_by_two_connections_and_a_dead_holders_place_expires() {
    let prefix = util::unique("dsrtest:limits:");
    let keys = RedisKeys::new(&prefix);
    // Two workers: two connections to one Redis under one prefix.
    let (one, two) = (redis_limits(&prefix).await, redis_limits(&prefix).await);
    // Three in any 30 s.
    let limits = Limits {
        requests: 3,
        per: Duration::from_secs(30),
        concurrent: 4,
    };
    let key = format!("microsoft365/x/{KARI}");
    let lease = Duration::from_secs(30);

    for i in 0..4 {
        let backend = if i % 2 == 0 { &one } else { &two };
        assert!(backend.take_place(&key, &format!("h{i}"), limits, lease).await.unwrap());
    }
    assert!(
        !one.take_place(&key, "h4", limits, lease).await.unwrap(),
        "four held across both"
    );
    assert!(
        !two.take_place(&key, "h4", limits, lease).await.unwrap(),
        "four held across both"
    );
    assert!(
        two.take_place(&key, "h1", limits, lease).await.unwrap(),
        "a holder renews its own place"
    );
    one.release_place(&key, "h1").await.unwrap();
    assert!(
        two.take_place(&key, "h4", limits, lease).await.unwrap(),
        "a released place is free"
    );

    // A holder that stops renewing (its worker killed) loses its place when the lease ends.
    let other = format!("microsoft365/x/{KARI}/other");
    let single = Limits {
        concurrent: 1,
        ..limits
    };
    assert!(
        one.take_place(&other, "dead", single, Duration::from_millis(200))
            .await
            .unwrap()
    );
    assert!(!two.take_place(&other, "live", single, lease).await.unwrap());
    let started = Instant::now();
    while !two.take_place(&other, "live", single, lease).await.unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the dead holder's place never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    two.renew_place(&other, "live", lease).await.unwrap();

    // The window: three calls across both, then the next waits for the first to leave.
    assert_eq!(one.take_rate(&key, limits).await.unwrap(), None);
    assert_eq!(two.take_rate(&key, limits).await.unwrap(), None);
    assert_eq!(one.take_rate(&key, limits).await.unwrap(), None);
    let wait = two.take_rate(&key, limits).await.unwrap().expect("the window is full");
    assert!(
        wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );

    // Redis holds digests, never the mailbox; every key expires on its own.
    let stored = keys.keys().await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(!keys.dump().await.contains("kari"), "a mailbox reached Redis");
    let mut conn = keys.conn().await;
    for k in &stored {
        let ttl: i64 = redis::cmd("PTTL").arg(k).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0, "{k} never expires");
    }
    keys.delete_all().await;
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two workers, each taking one job at a time, export the same subject from the same
/// mailboxes at once. The fake holds every mailbox call until five are in flight (or 200 ms
/// pass): with each worker keeping its own limiter, the two together reach eight; with the
/// limits shared in Redis, never more than four, and four are reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_together_keep_to_four_calls_in_flight_per_mailbox() {
    let fake = GraphFake::start().await.unwrap();
    let db = util::pg_database().await;
    let prefix = util::unique("dsrtest:");
    let redis = RedisKeys::new(&prefix);
    let deployment = util::Deployment::shared(&db.url, &util::redis_url(), &prefix, "concurrency = 1\n");
    let section = fake.connector_toml(&deployment.path().join("graph-secret")).unwrap();
    let text = std::fs::read_to_string(&deployment.config).unwrap();
    std::fs::write(
        &deployment.config,
        format!("{text}[processors.microsoft365]\n{section}"),
    )
    .unwrap();
    let settings = util::fast_settings(&util::redis_url(), &prefix, &deployment.data().join("export"));
    let engine = util::engine(&db.url, settings).await;

    fake.hold_mailbox_calls_until(5, Duration::from_millis(200));
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            engine
                .enqueue(util::request_for(
                    KARI,
                    RequestKind::Access,
                    &[Processor::Microsoft365],
                    Utc::now(),
                ))
                .await
                .unwrap(),
        );
    }
    let mut workers = Workers(Vec::new());
    for _ in 0..2 {
        workers.0.push(
            deployment
                .command()
                .arg("worker")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start dsr worker"),
        );
    }

    let started = Instant::now();
    loop {
        let open = engine
            .ledger()
            .list(&ListFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|r| ids.contains(&r.id) && !r.status.is_terminal())
            .count();
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{open} requests still open"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(workers);

    let mut workers_seen = std::collections::BTreeSet::new();
    for id in &ids {
        let request = engine.ledger().get_request(id).await.unwrap();
        assert_eq!(request.status, RequestStatus::Completed, "{id}");
        for e in engine.ledger().audit_events(id).await.unwrap() {
            if e.event == "task.started" {
                workers_seen.insert(e.detail["worker"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    assert_eq!(
        workers_seen.len(),
        2,
        "each worker exported one request: {workers_seen:?}"
    );
    let most = fake.max_in_flight();
    assert!(
        most.values().all(|&n| n <= 4),
        "more than four calls in flight to one mailbox: {most:?}"
    );
    assert_eq!(
        most.values().max().copied(),
        Some(4),
        "the limit was used: four calls in flight together ({most:?})"
    );
    let stored = redis.dump().await;
    assert!(
        !stored.contains("@example.no") && !stored.contains("@racom.no"),
        "an address reached Redis"
    );
    redis.delete_all().await;
    engine.ledger().close().await;
    db.drop_db().await;
}
