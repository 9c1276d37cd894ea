//! Helpers shared by the end-to-end tests: a scratch deployment with its own config, the
//! real `dsr` binary, and private PostgreSQL databases and Redis key prefixes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod browser;
pub mod server;

pub const SEEDED_EMAIL: &str = "kari.nordmann@example.no";

pub fn dsr_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dsr")
}

pub fn redis_url() -> String {
    std::env::var("DSRTEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn postgres_server() -> String {
    std::env::var("DSRTEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".into())
}

/// A loopback port free now (for a server whose address must be known before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid_like())
}

fn uuid_like() -> String {
    format!("{:016x}{:08x}", rand_u64(), std::process::id())
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A scratch deployment: a folder with `dsr.toml`, its ledger, queue and export storage.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Deployment {
    /// Embedded SQLite ledger and queue, fast sweeps, and `extra` TOML appended.
    pub fn sqlite(extra: &str) -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        let text = format!(
            "[store]\nurl = \"sqlite://{root}/data/ledger.db\"\n\
             [queue]\nurl = \"sqlite://{root}/data/queue.db\"\npoll = \"50ms\"\n\
             [export]\ndir = \"{root}/data/export\"\n\
             [worker]\nsweep_every = \"1s\"\nrecover_after = \"2s\"\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\ntask_lease = \"3s\"\n\
             {extra}\n"
        );
        Self::with_text(dir, &text)
    }

    /// A shared deployment: the given ledger and queue urls.
    pub fn shared(store_url: &str, queue_url: &str, prefix: &str, extra: &str) -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        let text = format!(
            "[store]\nurl = \"{store_url}\"\n\
             [queue]\nurl = \"{queue_url}\"\nprefix = \"{prefix}\"\npoll = \"50ms\"\nheartbeat = \"1s\"\nmissed_heartbeats = 2\n\
             [export]\ndir = \"{root}/data/export\"\n\
             [worker]\nsweep_every = \"1s\"\nrecover_after = \"2s\"\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\ntask_lease = \"3s\"\n\
             {extra}\n"
        );
        Self::with_text(dir, &text)
    }

    fn with_text(dir: tempfile::TempDir, text: &str) -> Deployment {
        let config = dir.path().join("dsr.toml");
        // Test requests are for fixtures, not people: nobody's identity to check (tests/subject.rs
        // covers the default, which requires --verified-by).
        let text = if text.contains("[subject]") {
            text.to_string()
        } else {
            format!("{text}\n[subject]\noperator_verification = \"optional\"\n")
        };
        std::fs::write(&config, text).expect("write config");
        Deployment { dir, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(dsr_bin());
        cmd.current_dir(self.path()).arg("--config").arg(&self.config);
        cmd.env_remove("DSR_CONFIG");
        cmd
    }

    pub fn dsr(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run dsr")
    }

    /// Runs dsr with --json and parses stdout.
    pub fn dsr_json(&self, args: &[&str]) -> (i32, Value) {
        let out = self.command().arg("--json").args(args).output().expect("run dsr");
        let code = out.status.code().unwrap_or(-1);
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "dsr {args:?} printed no JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, value)
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The task entry for `processor` in a status document.
pub fn task<'a>(status: &'a Value, processor: &str) -> &'a Value {
    status["processors"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["processor"] == processor))
        .unwrap_or_else(|| panic!("no task for {processor} in {status}"))
}

/// A private PostgreSQL database, dropped by `drop_db`.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
}

pub async fn pg_database() -> PgDatabase {
    let name = unique("dsr_test_");
    let admin = format!("{}/postgres", postgres_server());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {admin} is not reachable ({e}): run the suite with scripts/test, which starts it")
    });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&pool)
        .await
        .expect("create test database");
    pool.close().await;
    PgDatabase {
        url: format!("{}/{name}", postgres_server()),
        name,
    }
}

impl PgDatabase {
    pub async fn drop_db(&self) {
        let admin = format!("{}/postgres", postgres_server());
        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .execute(&pool)
            .await;
            pool.close().await;
        }
    }
}

/// Every Redis key under `prefix`, with the values of the string and hash keys, for leak
/// checks; and removal of them all.
pub struct RedisKeys {
    pub client: redis::Client,
    pub prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> RedisKeys {
        let client = redis::Client::open(redis_url()).expect("redis url");
        RedisKeys {
            client,
            prefix: prefix.to_string(),
        }
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "Redis at {} is not reachable ({e}): run the suite with scripts/test, which starts it",
                    redis_url()
                )
            })
    }

    pub async fn keys(&self) -> Vec<String> {
        let mut conn = self.conn().await;
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }

    /// Every byte stored under every key of this prefix, as text.
    pub async fn dump(&self) -> String {
        let mut conn = self.conn().await;
        let mut text = String::new();
        for key in self.keys().await {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Vec<u8>>(&mut conn)
                    .await
                    .map(|v| vec![v])
                    .unwrap_or_default(),
                "hash" => redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default(),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default(),
                "set" => redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default(),
                _ => vec![],
            };
            text.push_str(&key);
            text.push('\n');
            for v in values {
                text.push_str(&String::from_utf8_lossy(&v));
                text.push('\n');
            }
        }
        text
    }

    pub async fn delete_all(&self) {
        let keys = self.keys().await;
        if keys.is_empty() {
            return;
        }
        let mut conn = self.conn().await;
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

/// A request for `email` as the library receives it.
pub fn request_for(
    email: &str,
    kind: dsr_jobs::model::RequestKind,
    processors: &[dsr_connector::Processor],
    received_at: chrono::DateTime<chrono::Utc>,
) -> dsr_jobs::model::NewRequest {
    dsr_jobs::model::NewRequest {
        kind,
        identities: dsr_connector::Identities {
            emails: vec![dsr_connector::Email::parse(email).expect("valid e-mail")],
            ..Default::default()
        },
        changes: vec![],
        lang: dsr_jobs::model::Lang::Nb,
        dry_run: false,
        processors: processors.to_vec(),
        received_at,
        verified_by: None,
        verified_at: None,
    }
}

/// Fast-moving settings for tests: short leases, backoff and sweeps.
pub fn fast_settings(queue_url: &str, prefix: &str, export_dir: &Path) -> dsr_jobs::Settings {
    use std::time::Duration;
    dsr_jobs::Settings {
        zone: chrono_tz::Europe::Oslo,
        export: dsr_jobs::storage::ExportStore::local(export_dir).expect("a local export directory"),
        task_lease: Duration::from_secs(3),
        max_attempts: 8,
        task_timeout: Duration::from_secs(1800),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        sweep_every: Duration::from_secs(1),
        recover_after: Duration::from_secs(2),
        deadline_warning_days: 7,
        heartbeat_every: Duration::from_secs(1),
        log_key: b"test".to_vec(),
        queue: dsr_jobs::QueueSettings {
            url: queue_url.to_string(),
            prefix: prefix.to_string(),
            poll_interval: Duration::from_millis(50),
            heartbeat: Duration::from_secs(1),
            missed_heartbeats: 2,
            response_timeout: Duration::from_secs(5),
            concurrency: 2,
        },
        processing_info: dsr_jobs::bundle::ProcessingInfo::example(),
        signer: None,
        retention: chrono::Duration::days(30),
        pseudonymise_after: chrono::Duration::days(90),
        pseudonym_key: b"test-pseudonyms".to_vec(),
        changes: Default::default(),
        give_up_after: Duration::from_secs(300),
        deliver: false,
    }
}

/// An engine over `ledger_url` and the queue in `settings`, with no connectors (for
/// enqueueing and sweeping from a test).
pub async fn engine(ledger_url: &str, settings: dsr_jobs::Settings) -> dsr_jobs::Engine {
    let ledger = dsr_jobs::Ledger::open(ledger_url).await.expect("open ledger");
    let queue = dsr_jobs::Queue::connect(&settings.queue)
        .await
        .unwrap_or_else(|e| panic!("{e}: run the suite with scripts/test, which starts Redis"));
    dsr_jobs::Engine::new(ledger, queue, dsr_jobs::Connectors::default(), settings)
}

/// `dsr --json ARGS` against `deployment`, from async tests (a fake runs on this runtime).
pub async fn dsr_json_async(deployment: &Deployment, args: &[&str]) -> (i32, Value) {
    let out = tokio::process::Command::new(dsr_bin())
        .current_dir(deployment.path())
        .arg("--config")
        .arg(&deployment.config)
        .arg("--json")
        .args(args)
        .output()
        .await
        .expect("run dsr");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "dsr {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), value)
}

/// A subject by address, and the context of a first real attempt (shared with the connector tests).
#[allow(unused_imports)] // not every test binary uses both
pub use dsr_fixtures::testing::{first_attempt, subject};

/// The deployment's queue, as its config names it (url and prefix).
pub async fn queue_of(d: &Deployment) -> dsr_jobs::Queue {
    let text = std::fs::read_to_string(&d.config).expect("the deployment's config");
    let config: toml::Table = toml::from_str(&text).expect("the deployment's config is TOML");
    let queue = config.get("queue").and_then(|q| q.as_table());
    let field = |name: &str| queue.and_then(|q| q.get(name)).and_then(|v| v.as_str());
    let url = field("url").expect("[queue] url in the deployment's config");
    // The same default as `dsr` itself when the config leaves it out.
    let prefix = field("prefix").unwrap_or("dsr");
    let settings = fast_settings(url, prefix, &d.data().join("export"));
    dsr_jobs::Queue::connect(&settings.queue)
        .await
        .expect("the deployment's queue")
}

/// Delivers `jobs` again, as an at-least-once queue may, and runs `dsr worker` until the
/// queue says it has handled every one of them (its own count of finished jobs, so a worker
/// that never took them fails here instead of passing unnoticed); then stops the worker.
pub async fn redeliver(d: &Deployment, jobs: &[dsr_jobs::Job]) {
    use std::time::{Duration, Instant};
    let queue = queue_of(d).await;
    let before = queue.stats().await.expect("queue stats").handled();
    for job in jobs {
        queue.push(job.clone()).await.expect("push a job again");
    }
    let mut worker = d
        .command()
        .arg("worker")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a worker");
    let started = Instant::now();
    let handled = loop {
        let stats = queue.stats().await.expect("queue stats");
        if stats.handled() >= before + jobs.len() as u64 {
            break stats;
        }
        if started.elapsed() > Duration::from_secs(60) {
            worker.kill().ok();
            worker.wait().ok();
            panic!(
                "the worker did not handle the {} re-delivered jobs within 60 s: {stats:?}",
                jobs.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    worker.kill().ok();
    worker.wait().ok();
    assert_eq!(handled.pending, 0, "nothing left waiting: {handled:?}");
}

/// Every job a request's flow has: its fan-out, a task per processor and its finalize.
pub fn all_jobs(id: &str) -> Vec<dsr_jobs::Job> {
    let mut jobs = vec![dsr_jobs::Job::FanOut { request_id: id.into() }];
    for processor in dsr_connector::Processor::ALL {
        jobs.push(dsr_jobs::Job::ProcessorTask {
            request_id: id.into(),
            processor,
        });
    }
    jobs.push(dsr_jobs::Job::Finalize { request_id: id.into() });
    jobs
}

/// The first column of the first row `sql` finds in the SQLite ledger, as text.
pub fn ledger_value(d: &Deployment, sql: &str) -> String {
    let db = d.data().join("ledger.db");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])",
        ])
        .arg(&db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs SQL on the SQLite ledger (Python's sqlite3), for states a test cannot wait for.
pub fn ledger_sql(d: &Deployment, sql: &str) {
    let db = d.data().join("ledger.db");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
        ])
        .arg(&db)
        .arg(sql)
        .status()
        .unwrap();
    assert!(status.success(), "{sql}");
}
