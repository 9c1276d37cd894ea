//! Workers outlive their queue and their ledger going away: two `dsr worker` processes
//! working through 40 erasures against the Microsoft 365 fake while a Redis server of the
//! test's own is SIGKILLed and restarted empty, or while a PostgreSQL cluster of the test's
//! own is stopped (immediate mode, as in a crash) and started again under the ledger; and a
//! worker whose queue never comes back exits non-zero within `[worker] give_up_after`.
//!
//! The servers are the test's own, on free loopback ports (never the machine's shared ones),
//! and are stopped by a guard even when an assertion fails. `redis-server` and PostgreSQL's
//! `initdb`/`pg_ctl` must be installed (scripts/test installs them); without them the test
//! is skipped with a reason, except under `CI`, where that is a failure.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use dsr_connector::Processor;
use dsr_fixtures::graph::{GraphFake, GraphState, folder_id};
use dsr_jobs::model::{RequestKind, RequestStatus};
use dsr_jobs::{Engine, ListFilter};
use serde_json::json;
use util::{Deployment, free_port};

const REQUESTS: usize = 40;

/// A required server binary is missing: a failure under CI, a skip (with the reason) elsewhere.
fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} (CI is set, so this is a failure: .ci/run installs it)");
    }
    eprintln!("skipped: {what}");
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Polls `check` every 50 ms until it gives a value, or panics naming `what` after `within`.
async fn wait_for<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// A Redis server of the test's own.

struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Keeps its data across a restart (an append-only file synced on every write).
    persistent: bool,
}

impl RedisServer {
    /// Starts `redis-server` without persistence on a free port, or None when it is not
    /// installed.
    fn start() -> Option<RedisServer> {
        Self::start_with(false)
    }

    /// Starts `redis-server`, keeping its data across restarts if `persistent`.
    fn start_with(persistent: bool) -> Option<RedisServer> {
        if !on_path("redis-server") {
            missing("redis-server is not installed");
            return None;
        }
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            persistent,
        };
        server.spawn();
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("redis log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(match self.persistent {
                true => ["--appendonly", "yes", "--appendfsync", "always"],
                false => ["--appendonly", "no", "--appendfsync", "no"],
            })
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {} did not answer PING",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    /// SIGKILL: no chance to save anything (and it has no persistence to save to).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new server on the same port: empty, or with what the old one had written if it is
    /// persistent.
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The queue's registered workers (apalis's `{queue}:workers` set) and when each last
    /// told Redis it was alive (Unix seconds).
    async fn registered_workers(&self, prefix: &str) -> Vec<(String, f64)> {
        let Ok(client) = redis::Client::open(self.url()) else {
            return vec![];
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return vec![];
        };
        redis::cmd("ZRANGE")
            .arg(format!("{prefix}:jobs:workers"))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------
// A throwaway PostgreSQL cluster of the test's own.

struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run PostgreSQL's programs as this user (initdb refuses root).
    as_user: Option<&'static str>,
}

impl PgCluster {
    /// Creates and starts a cluster (trust authentication, loopback only) on a free port, or
    /// None when PostgreSQL is not installed.
    fn start() -> Option<PgCluster> {
        let Some(bin) = postgres_bin() else {
            missing("PostgreSQL's initdb and pg_ctl were not found under /usr/lib/postgresql/*/bin or on PATH");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let as_user = is_root().then_some("postgres");
        if let Some(user) = as_user {
            let id = |flag: &str| -> u32 {
                let out = Command::new("id").args([flag, user]).output().expect("id");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("no `{user}` user to run PostgreSQL as (initdb refuses root)"))
            };
            std::os::unix::fs::chown(dir.path(), Some(id("-u")), Some(id("-g")))
                .expect("chown the cluster's directory");
        }
        let cluster = PgCluster {
            bin,
            port: free_port(),
            dir,
            as_user,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        );
        cluster.start_server();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops at once, as a crash would: no checkpoint, open connections cut.
    fn stop_immediate(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = match self.as_user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&path)
                .args(args)
                .output(),
            None => Command::new(&path).args(args).output(),
        };
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The newest PostgreSQL's programs: /usr/lib/postgresql/<version>/bin, else `initdb` on PATH.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

// ---------------------------------------------------------------------------------------
// The Microsoft 365 fake with 40 subjects, and the workers.

fn subject(i: usize) -> String {
    format!("outage-subject-{i:02}@example.no")
}

/// The seeded tenant plus, for each of `n` subjects, one message from her in Ola's mailbox
/// and one in the shared post mailbox (nobody else on them, so erasure deletes both).
fn graph_with_subjects(n: usize) -> GraphState {
    let mut state = GraphState::seeded();
    let template = state
        .messages
        .iter()
        .find(|m| m.attachments.is_empty())
        .cloned()
        .expect("a seeded message without attachments");
    for i in 0..n {
        let from = json!({"emailAddress": {"name": format!("Kunde {i:02}"), "address": subject(i)}});
        for (mailbox, owner, address) in [
            ("u-ola", "Ola Hansen", "ola.hansen@racom.no"),
            ("u-post", "Racom Post", "post@racom.no"),
        ] {
            let id = format!("m-outage-{i:02}-{mailbox}");
            let mut message = template.clone();
            message.mailbox = mailbox.to_string();
            let json = &mut message.json;
            json["id"] = json!(id);
            json["subject"] = json!(format!("Spørsmål om ordre {i}"));
            json["from"] = from.clone();
            json["sender"] = from.clone();
            json["toRecipients"] = json!([{"emailAddress": {"name": owner, "address": address}}]);
            json["ccRecipients"] = json!([]);
            json["bccRecipients"] = json!([]);
            json["replyTo"] = json!([]);
            json["parentFolderId"] = json!(folder_id(mailbox, "inbox"));
            json["hasAttachments"] = json!(false);
            json["conversationId"] = json!(format!("conv-{id}"));
            json["internetMessageId"] = json!(format!("<{id}@fake.graph>"));
            message.attachments.clear();
            state.messages.push(message);
        }
    }
    state
}

/// Delete calls per seeded item of the subjects (`m-outage-…`), from the fake's call log.
fn deletions(fake: &GraphFake) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for call in fake.calls() {
        if let Some(id) = call
            .split('/')
            .find(|segment| segment.starts_with("m-outage-"))
            .filter(|_| call.starts_with("DELETE ") || call.ends_with("/permanentDelete"))
        {
            *count.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    count
}

/// Two `dsr worker` processes (stderr kept in the deployment's folder), killed on drop.
struct Workers {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Workers {
    fn start(deployment: &Deployment, count: usize) -> Workers {
        let mut workers = Workers {
            children: vec![],
            logs: vec![],
        };
        for i in 0..count {
            let log = deployment.path().join(format!("worker-{i}.log"));
            let child = deployment
                .command()
                .arg("worker")
                .env("DSR_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("worker log"))
                .spawn()
                .expect("start dsr worker");
            workers.children.push(child);
            workers.logs.push(log);
        }
        workers
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Panics (with their logs) unless every worker process is still running.
    fn assert_alive(&mut self) {
        for (child, log) in self.children.iter_mut().zip(&self.logs) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "a worker exited ({status}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }

    fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|log| std::fs::read_to_string(log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A deployment over `store_url` and `queue_url` with the fake as its Microsoft 365.
fn deployment_for(fake: &GraphFake, store_url: &str, queue_url: &str, prefix: &str) -> Deployment {
    let deployment = Deployment::shared(store_url, queue_url, prefix, "concurrency = 3\n");
    let section = fake
        .connector_toml(&deployment.path().join("graph-secret"))
        .expect("the fake's connector config");
    let text = std::fs::read_to_string(&deployment.config).expect("config");
    std::fs::write(
        &deployment.config,
        format!("{text}[processors.microsoft365]\n{section}"),
    )
    .expect("write config");
    deployment
}

async fn enqueue_erasure(engine: &Engine, email: &str) -> String {
    engine
        .enqueue(util::request_for(
            email,
            RequestKind::Erasure,
            &[Processor::Microsoft365],
            Utc::now(),
        ))
        .await
        .expect("enqueue an erasure")
}

/// How many of `ids` have ended, or None while the ledger does not answer.
async fn ended(engine: &Engine, ids: &[String]) -> Option<usize> {
    let requests = engine.ledger().list(&ListFilter::default()).await.ok()?;
    Some(
        requests
            .iter()
            .filter(|r| ids.contains(&r.id) && r.status.is_terminal())
            .count(),
    )
}

/// Every request completed, each recorded once; every subject's messages gone from the fake.
async fn assert_all_erased(engine: &Engine, fake: &GraphFake, ids: &[String], subjects: usize) {
    for id in ids {
        let request = engine.ledger().get_request(id).await.expect("the request");
        assert_eq!(request.status, RequestStatus::Completed, "request {id}");
        let events = engine.ledger().audit_events(id).await.expect("its audit events");
        let count = |name: &str| events.iter().filter(|e| e.event == name).count();
        assert_eq!(count("task.succeeded"), 1, "request {id}'s task recorded once");
        assert_eq!(count("request.completed"), 1, "request {id} completed once");
    }
    for i in 0..subjects {
        assert_eq!(fake.holdings_of(&subject(i)), (0, 0), "{} still has data", subject(i));
    }
    assert_eq!(deletions(fake).len(), 2 * subjects, "every seeded message was deleted");
}

/// Waits until each worker process has a run registered with the queue that told Redis it was
/// alive at or after `since` (Unix seconds): its poller works. Returns how long that took.
async fn wait_until_polling(redis: &RedisServer, prefix: &str, workers: &Workers, since: f64) -> Duration {
    let started = Instant::now();
    let pids = workers.pids();
    // apalis keeps whole seconds: only a later second is surely a keep-alive after `since`.
    let since = since.ceil();
    wait_for("both workers polling the queue", Duration::from_secs(60), async || {
        let registered = redis.registered_workers(prefix).await;
        pids.iter()
            .all(|pid| {
                registered
                    .iter()
                    .any(|(name, seen)| name.contains(&format!("-{pid}-")) && *seen >= since)
            })
            .then_some(())
    })
    .await;
    started.elapsed()
}

/// A few more requests after the outage: each completes, and both workers took some of the
/// jobs (the `task.started` events name the worker).
async fn more_requests_complete(engine: &Engine, first: usize) -> BTreeSet<String> {
    let mut ids = vec![];
    for i in first..first + 8 {
        ids.push(enqueue_erasure(engine, &subject(i)).await);
    }
    wait_for(
        "the requests sent after the outage",
        Duration::from_secs(60),
        async || (ended(engine, &ids).await? == ids.len()).then_some(()),
    )
    .await;
    let mut names = BTreeSet::new();
    for id in &ids {
        let request = engine.ledger().get_request(id).await.expect("the request");
        assert_eq!(
            request.status,
            RequestStatus::Completed,
            "request {id} sent after the outage"
        );
        for event in engine.ledger().audit_events(id).await.expect("its events") {
            if event.event == "task.started" {
                names.insert(event.detail["worker"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    names
}

fn unix_now() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------

/// Two workers part-way through erasing `REQUESTS` subjects at the Microsoft 365 fake, with
/// the ledger at `store_url` and the queue on the test's own Redis.
struct MidRun {
    fake: GraphFake,
    prefix: String,
    _deployment: Deployment,
    engine: Engine,
    ids: Vec<String>,
    workers: Workers,
}

async fn mid_run(store_url: &str, redis: &RedisServer, outage: &str) -> MidRun {
    let fake = GraphFake::start_with(graph_with_subjects(REQUESTS + 8))
        .await
        .expect("the Microsoft 365 fake");
    fake.slow_down(Duration::from_millis(30));
    let prefix = util::unique("dsrtest:");
    let deployment = deployment_for(&fake, store_url, &redis.url(), &prefix);
    let settings = util::fast_settings(&redis.url(), &prefix, &deployment.data().join("export"));
    let engine = util::engine(store_url, settings).await;
    let mut ids = vec![];
    for i in 0..REQUESTS {
        ids.push(enqueue_erasure(&engine, &subject(i)).await);
    }
    let workers = Workers::start(&deployment, 2);
    wait_until_polling(redis, &prefix, &workers, 0.0).await;
    let done_before = wait_for(
        "a few requests done before the outage",
        Duration::from_secs(90),
        async || ended(&engine, &ids).await.filter(|n| *n >= 5),
    )
    .await;
    assert!(done_before < REQUESTS, "the outage comes mid-run ({done_before} done)");
    eprintln!("{done_before} of {REQUESTS} requests had ended when {outage}");
    MidRun {
        fake,
        prefix,
        _deployment: deployment,
        engine,
        ids,
        workers,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_crash_and_restart_without_data() {
    redis_crash_mid_run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_crash_and_restart_with_its_data() {
    redis_crash_mid_run(true).await;
}

/// Two workers, 40 erasures; Redis SIGKILLed mid-run and started again on the same port
/// (empty, or with its append-only file when `persistent`).
async fn redis_crash_mid_run(persistent: bool) {
    let Some(mut redis) = RedisServer::start_with(persistent) else {
        return;
    };
    let db = util::pg_database().await;
    let MidRun {
        fake,
        prefix,
        _deployment,
        engine,
        ids,
        mut workers,
    } = mid_run(&db.url, &redis, "Redis was killed").await;

    redis.kill();
    // Down for about as long as the outage in the issue; the workers notice within a poll.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let restarted_at = unix_now();
    redis.restart();
    let recovered = wait_until_polling(&redis, &prefix, &workers, restarted_at).await;
    eprintln!("both workers polled the restarted Redis {recovered:?} after it came back (persistent: {persistent})");

    wait_for(
        "every request ended after the Redis restart",
        Duration::from_secs(120),
        async || (ended(&engine, &ids).await? == ids.len()).then_some(()),
    )
    .await;
    workers.assert_alive();
    assert_all_erased(&engine, &fake, &ids, REQUESTS).await;
    let repeated: Vec<_> = deletions(&fake).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        repeated.is_empty(),
        "vendor items deleted more than once: {repeated:?}\n{}",
        workers.logs()
    );

    // Still polling afterwards: both take new work, and both keep telling Redis they live.
    let names = more_requests_complete(&engine, REQUESTS).await;
    let now = unix_now() - 3.0;
    wait_until_polling(&redis, &prefix, &workers, now).await;
    workers.assert_alive();
    // And their heartbeats in the ledger say when each last got an answer from the queue.
    let restarted = chrono::DateTime::from_timestamp_millis((restarted_at * 1000.0) as i64).expect("a time");
    let pids = workers.pids();
    wait_for(
        "both workers' heartbeats show a poll after the restart",
        Duration::from_secs(60),
        async || {
            let live = engine.ledger().workers().await.ok()?;
            pids.iter()
                .all(|pid| {
                    live.iter()
                        .any(|w| w.pid == *pid && w.last_poll_at.is_some_and(|at| at >= restarted))
                })
                .then_some(())
        },
    )
    .await;
    let logs = workers.logs();
    assert!(
        logs.contains("has its queue back"),
        "the workers say they reconnected:\n{logs}"
    );
    eprintln!("after the restart, tasks were started by {names:?}");
    if std::env::var_os("DSRTEST_SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }

    drop(workers);
    engine.ledger().close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_postgres_restart_under_the_ledger() {
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let MidRun {
        fake,
        prefix,
        _deployment,
        engine,
        ids,
        mut workers,
    } = mid_run(&pg.url(), &redis, "PostgreSQL stopped").await;

    pg.stop_immediate();
    let stopped = Instant::now();
    // Longer than the ledger pool waits for a connection (10 s): tasks first wait, then fail
    // with ledger errors, and must be taken up again once it is back.
    tokio::time::sleep(Duration::from_secs(12)).await;
    pg.start_server();
    eprintln!("PostgreSQL was down for {:?}", stopped.elapsed());

    let started = Instant::now();
    wait_for(
        "every request ended after the PostgreSQL restart",
        Duration::from_secs(120),
        async || (ended(&engine, &ids).await? == ids.len()).then_some(()),
    )
    .await;
    eprintln!("the rest of the run took {:?} after the restart", started.elapsed());
    workers.assert_alive();
    assert_all_erased(&engine, &fake, &ids, REQUESTS).await;
    // A task cut off between the vendor's answer and the ledger's write repeats that one
    // call on its next attempt, and Graph answers 404 (already gone): nothing is deleted
    // twice. The count shows how often that window was hit.
    let repeated = deletions(&fake).values().filter(|n| **n > 1).count();
    eprintln!("{repeated} delete calls were repeated after the restart (answered as already gone)");

    let since = unix_now();
    wait_until_polling(&redis, &prefix, &workers, since).await;
    let names = more_requests_complete(&engine, REQUESTS).await;
    workers.assert_alive();
    eprintln!("after the restart, tasks were started by {names:?}");
    if std::env::var_os("DSRTEST_SHOW_LOGS").is_some() {
        eprintln!("{}", workers.logs());
    }
    drop(workers);
    engine.ledger().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_queue_never_comes_back_exits_within_give_up_after() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let prefix = util::unique("dsrtest:");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}/ledger.db", dir.path().display());
    let deployment = Deployment::shared(&store, &redis.url(), &prefix, "give_up_after = \"3s\"\n");
    let mut workers = Workers::start(&deployment, 1);
    wait_until_polling(&redis, &prefix, &workers, 0.0).await;

    redis.kill();
    let killed = Instant::now();
    let status = wait_for("the worker exits", Duration::from_secs(30), async || {
        workers.children[0].try_wait().ok().flatten()
    })
    .await;
    let took = killed.elapsed();
    let log = workers.logs();
    eprintln!("the worker exited {took:?} after Redis went away ({status})");
    assert!(!status.success(), "it exits non-zero: {status}\n{log}");
    assert_eq!(status.code(), Some(3), "3: the queue is unreachable\n{log}");
    assert!(
        took >= Duration::from_secs(3),
        "it tried for give_up_after first ({took:?})\n{log}"
    );
    assert!(
        took < Duration::from_secs(15),
        "it gave up within the bound ({took:?})\n{log}"
    );
    for words in [
        &format!("gave up on the queue at {}", redis.url()) as &str,
        &format!("queue {prefix}:jobs"),
        "give_up_after = \"3s\"",
        "Check that Redis is running",
    ] {
        assert!(log.contains(words), "the message says `{words}`:\n{log}");
    }
    drop(workers);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_rides_out_its_sqlite_queue_locked_by_another_process() {
    let deployment = Deployment::sqlite("");
    let root = deployment.path().display().to_string();
    let text = std::fs::read_to_string(&deployment.config).expect("config");
    std::fs::write(
        &deployment.config,
        format!("{text}[test_connector.wix]\neffects_log = \"{root}/effects.log\"\n"),
    )
    .expect("write config");
    let queue_url = format!("sqlite://{root}/data/queue.db");
    let settings = util::fast_settings(&queue_url, "dsr", &deployment.data().join("export"));
    let engine = util::engine(&format!("sqlite://{root}/data/ledger.db"), settings).await;
    let request = |email: &str| util::request_for(email, RequestKind::Erasure, &[Processor::Wix], Utc::now());
    let mut workers = Workers::start(&deployment, 1);
    let first = engine
        .enqueue(request("kari.nordmann@example.no"))
        .await
        .expect("enqueue");
    wait_for("the first request", Duration::from_secs(60), async || {
        (ended(&engine, std::slice::from_ref(&first)).await? == 1).then_some(())
    })
    .await;

    // Another process takes the queue's write lock and holds it past SQLite's busy timeouts.
    let mut holder = {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&queue_url)
            .await
            .expect("open the queue")
    };
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .expect("lock the queue");
    let locked = Instant::now();
    // A request submitted meanwhile is kept in the ledger; the push gives up, naming it.
    let refused = engine.enqueue(request("ola.nordmann@example.no")).await;
    let Err(dsr_jobs::EngineError::Queue(dsr_jobs::QueueError::NotQueued { request_id: second, .. })) = refused else {
        panic!("the push into a locked queue fails as NotQueued: {refused:?}");
    };
    let held = Duration::from_secs(13);
    tokio::time::sleep(held.saturating_sub(locked.elapsed())).await;
    sqlx::query("COMMIT")
        .execute(&mut holder)
        .await
        .expect("unlock the queue");
    drop(holder);

    // The worker is still there, took its queue back, and its sweep queued the request.
    wait_for(
        "the request submitted while the queue was locked",
        Duration::from_secs(60),
        async || (ended(&engine, std::slice::from_ref(&second)).await? == 1).then_some(()),
    )
    .await;
    workers.assert_alive();
    let status = engine.ledger().get_request(&second).await.expect("the request").status;
    assert_eq!(status, RequestStatus::Completed);
    let logs = workers.logs();
    for words in ["lost its queue", "has its queue back"] {
        assert!(logs.contains(words), "the worker's log says `{words}`:\n{logs}");
    }
    drop(workers);
    engine.ledger().close().await;
}
