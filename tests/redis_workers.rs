//! Several machines' worth of workers: `dsr worker` processes sharing one Redis queue and
//! one PostgreSQL ledger, killed and flushed under load, each task recorded exactly once,
//! and no personal data left in Redis.

mod util;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use dsr_connector::Processor;
use dsr_jobs::model::{RequestKind, RequestStatus, TaskStatus};
use dsr_jobs::{Engine, Ledger, ListFilter};
use util::{Deployment, PgDatabase, RedisKeys, SEEDED_EMAIL};

struct Cluster {
    db: PgDatabase,
    redis: RedisKeys,
    deployment: Deployment,
    engine: Engine,
    workers: Vec<Child>,
}

impl Cluster {
    async fn start(scripts: &str) -> Cluster {
        let db = util::pg_database().await;
        let prefix = util::unique("dsrtest:");
        let redis = RedisKeys::new(&prefix);
        let deployment = Deployment::shared(&db.url, &util::redis_url(), &prefix, "");
        let root = deployment.path().display().to_string();
        let text = std::fs::read_to_string(&deployment.config).unwrap();
        let scripts = scripts.replace("{root}", &root);
        std::fs::write(&deployment.config, format!("{text}{scripts}")).unwrap();

        let settings = util::fast_settings(&util::redis_url(), &prefix, &deployment.data().join("export"));
        let engine = util::engine(&db.url, settings).await;
        Cluster {
            db,
            redis,
            deployment,
            engine,
            workers: Vec::new(),
        }
    }

    fn spawn_worker(&mut self) -> usize {
        let child = self
            .deployment
            .command()
            .arg("worker")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dsr worker");
        self.workers.push(child);
        self.workers.len() - 1
    }

    fn kill_9(&mut self, index: usize) {
        let child = &mut self.workers[index];
        // Child::kill sends SIGKILL on Unix: no chance to clean up, as when a machine dies.
        child.kill().expect("kill -9");
        child.wait().ok();
    }

    async fn enqueue(&self, email: &str) -> String {
        self.engine
            .enqueue(util::request_for(
                email,
                RequestKind::Erasure,
                &[Processor::Google, Processor::Wix],
                Utc::now(),
            ))
            .await
            .unwrap()
    }

    fn ledger(&self) -> &Ledger {
        self.engine.ledger()
    }

    async fn wait_until_all_ended(&self, ids: &[String], within: Duration) {
        let started = Instant::now();
        loop {
            let open = self
                .ledger()
                .list(&ListFilter::default())
                .await
                .unwrap()
                .into_iter()
                .filter(|r| ids.contains(&r.id) && !r.status.is_terminal())
                .count();
            if open == 0 {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{open} of {} requests still open after {within:?}",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn effects(&self) -> Vec<String> {
        std::fs::read_to_string(self.deployment.path().join("effects.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    async fn stop(mut self) {
        for child in &mut self.workers {
            child.kill().ok();
            child.wait().ok();
        }
        self.engine.ledger().close().await;
        let stored = self.redis.dump().await;
        assert!(
            !stored.contains("@example.no"),
            "personal data reached Redis:\n{stored}"
        );
        self.redis.delete_all().await;
        assert!(self.redis.keys().await.is_empty(), "test keys left in Redis");
        self.db.drop_db().await;
    }
}

/// A failed assertion must not leave worker processes running.
impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const SCRIPTS: &str = "[test_connector.google]\neffects_log = \"{root}/effects.log\"\n\
                       [test_connector.wix]\neffects_log = \"{root}/effects.log\"\ndelay_ms = 5\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_drain_200_requests_recording_every_task_exactly_once() {
    let mut cluster = Cluster::start(SCRIPTS).await;
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(cluster.enqueue(&format!("kari.nordmann+{i}@example.no")).await);
    }
    cluster.spawn_worker();
    cluster.spawn_worker();
    cluster.wait_until_all_ended(&ids, Duration::from_secs(240)).await;

    let effects = cluster.effects();
    let unique: BTreeSet<&String> = effects.iter().collect();
    assert_eq!(effects.len(), 400, "every task's side effect happens once");
    if unique.len() != 400 {
        let mut seen = BTreeSet::new();
        let twice: Vec<&String> = effects.iter().filter(|e| !seen.insert(*e)).collect();
        for line in &twice {
            let id = line.split(' ').nth(1).unwrap_or_default();
            for e in cluster.ledger().audit_events(id).await.unwrap() {
                eprintln!("{} {} {:?} {}", e.at, e.event, e.processor, e.detail);
            }
        }
        panic!("side effects happened twice: {twice:?}");
    }

    let mut workers_seen = BTreeSet::new();
    for id in &ids {
        let request = cluster.ledger().get_request(id).await.unwrap();
        assert_eq!(request.status, RequestStatus::Completed, "{id}");
        assert!(request.confirmation.is_some());
        let events = cluster.ledger().audit_events(id).await.unwrap();
        for p in ["google", "wix"] {
            let recorded = events
                .iter()
                .filter(|e| e.event == "task.succeeded" && e.processor.as_deref() == Some(p))
                .count();
            assert_eq!(recorded, 1, "request {id} at {p} recorded {recorded} times");
        }
        assert_eq!(events.iter().filter(|e| e.event == "request.completed").count(), 1);
        for e in events.iter().filter(|e| e.event == "task.started") {
            workers_seen.insert(e.detail["worker"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(workers_seen.len(), 2, "both workers took tasks: {workers_seen:?}");

    let everything = cluster.redis.dump().await;
    assert!(!everything.is_empty(), "the queue used Redis under its prefix");
    assert!(!everything.contains("@example.no"), "personal data reached Redis");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_request_is_finished_by_another() {
    let slow = "[test_connector.google]\neffects_log = \"{root}/effects.log\"\n\
                [test_connector.wix]\neffects_log = \"{root}/effects.log\"\ndelay_ms = 4000\n";
    let mut cluster = Cluster::start(slow).await;
    let first = cluster.spawn_worker();
    let id = cluster.enqueue(SEEDED_EMAIL).await;
    let started = Instant::now();
    loop {
        let wix = cluster.ledger().task(&id, Processor::Wix).await.unwrap().unwrap();
        let google = cluster.ledger().task(&id, Processor::Google).await.unwrap().unwrap();
        if wix.status == TaskStatus::Running && google.status == TaskStatus::Succeeded {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "wix never started: {wix:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.kill_9(first);
    cluster.spawn_worker();
    cluster
        .wait_until_all_ended(std::slice::from_ref(&id), Duration::from_secs(60))
        .await;

    let request = cluster.ledger().get_request(&id).await.unwrap();
    assert_eq!(request.status, RequestStatus::Completed);
    let wix = cluster.ledger().task(&id, Processor::Wix).await.unwrap().unwrap();
    assert_eq!(wix.status, TaskStatus::Succeeded);
    assert_eq!(wix.attempts, 2, "the killed attempt counts, the second finished it");
    let mut effects = cluster.effects();
    effects.sort();
    assert_eq!(
        effects,
        [format!("erase {id} google google-0"), format!("erase {id} wix wix-0")]
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_lost_from_redis_is_recovered_by_the_sweep() {
    let mut cluster = Cluster::start(SCRIPTS).await;
    let id = cluster.enqueue(SEEDED_EMAIL).await;
    assert!(!cluster.redis.keys().await.is_empty(), "enqueue wrote the job to Redis");
    // Redis loses everything (a flush, a failover without persistence) before any worker ran.
    cluster.redis.delete_all().await;
    cluster.spawn_worker();
    cluster
        .wait_until_all_ended(std::slice::from_ref(&id), Duration::from_secs(60))
        .await;
    let request = cluster.ledger().get_request(&id).await.unwrap();
    assert_eq!(request.status, RequestStatus::Completed);
    assert_eq!(cluster.effects().len(), 2);
    cluster.stop().await;
}
