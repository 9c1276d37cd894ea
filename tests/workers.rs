//! Liveness you can see: each `dsr worker` writes a heartbeat to the ledger, and
//! `dsr workers`, `dsr status` and `dsr doctor` show it live, when it last polled the queue,
//! and what it holds; a worker that died is not live once three heartbeats are missed (by
//! the ledger's clock, set by the test, not waited for).

mod util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use dsr_jobs::clock::Clock;
use dsr_jobs::ledger::workers::Heartbeat;
use dsr_jobs::{Connectors, Engine, Ledger, Queue};
use serde_json::Value;
use util::{Deployment, SEEDED_EMAIL};

/// A `dsr worker` that is killed when the test ends, however it ends.
struct Worker(Child);

impl Worker {
    fn start(d: &Deployment) -> Worker {
        Worker(
            d.command()
                .arg("worker")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start dsr worker"),
        )
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, as systemd stops it, then waits for it to exit.
    fn terminate(&mut self, within: Duration) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let started = Instant::now();
        while self.0.try_wait().expect("wait for the worker").is_none() {
            assert!(started.elapsed() < within, "the worker did not stop within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A deployment whose workers beat every second, with a Google that takes `delay_ms` a call.
fn deployment(delay_ms: u64) -> Deployment {
    Deployment::sqlite(&format!(
        "heartbeat = \"1s\"\n[test_connector.google]\ndelay_ms = {delay_ms}\n"
    ))
}

/// Polls `dsr workers --json` until `found` picks a worker out of it.
fn wait_for_worker(d: &Deployment, what: &str, found: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (code, list) = d.dsr_json(&["workers"]);
        assert_eq!(code, 0, "{list}");
        if let Some(w) = list["workers"].as_array().and_then(|a| a.iter().find(|w| found(w))) {
            return w.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no worker {what} within 60 s: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn doctor_workers(d: &Deployment) -> Value {
    let (_, doctor) = d.dsr_json(&["doctor"]);
    doctor["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["check"] == "workers").cloned())
        .unwrap_or_else(|| panic!("no workers check in {doctor}"))
}

#[test]
fn a_worker_shows_its_heartbeat_its_last_poll_and_the_task_it_holds() {
    let d = deployment(8000);
    let mut worker = Worker::start(&d);
    let (code, enqueued) = d.dsr_json(&["enqueue", "access", "--email", SEEDED_EMAIL, "--processor", "google"]);
    assert_eq!(code, 0, "{enqueued}");
    let id = enqueued["id"].as_str().expect("a request id").to_string();

    let holds_it = |w: &Value| {
        w["holds"].as_array().is_some_and(|h| {
            h.iter()
                .any(|t| t["request_id"] == id.as_str() && t["processor"] == "google")
        })
    };
    let seen = wait_for_worker(&d, "holding the slow task", |w| {
        holds_it(w) && w["last_poll_at"].is_string()
    });
    let name = seen["name"].as_str().unwrap_or_default().to_string();
    let host = seen["host"].as_str().unwrap_or_default();
    assert_eq!(seen["pid"], worker.pid(), "{seen}");
    assert!(!host.is_empty(), "{seen}");
    assert!(
        name.starts_with(&format!("dsr-{host}-{}-", worker.pid())),
        "the name its leases carry: {seen}"
    );
    assert_eq!(seen["live"], true, "{seen}");
    assert_eq!(seen["state"], "live", "{seen}");
    assert_eq!(seen["heartbeat_secs"], 1, "{seen}");
    assert_eq!(seen["holds"][0]["attempt"], 1, "{seen}");
    assert!(seen["holds"][0]["since"].is_string(), "{seen}");

    // `dsr workers` in text, `dsr status` names the holder of the running task, and
    // `dsr doctor` the live worker.
    let text = String::from_utf8_lossy(&d.dsr(&["workers"]).stdout).into_owned();
    assert!(
        text.contains(&name) && text.contains(&format!("holds {id} google")),
        "{text}"
    );
    let (_, status) = d.dsr_json(&["status", &id]);
    let held_by = &util::task(&status, "google")["held_by"];
    assert_eq!(held_by["worker"], name.as_str(), "{status}");
    assert_eq!(held_by["live"], true, "{status}");
    assert!(held_by["last_poll_at"].is_string(), "{status}");
    let text = String::from_utf8_lossy(&d.dsr(&["status", &id]).stdout).into_owned();
    assert!(text.contains("held by") && text.contains(&name), "{text}");
    let check = doctor_workers(&d);
    assert_eq!(check["ok"], true, "{check}");
    let detail = check["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("1 live") && detail.contains(&name), "{check}");

    // The task ends: the worker holds nothing and stays live.
    wait_for_worker(&d, "holding nothing after the task", |w| {
        w["name"] == name.as_str() && w["holds"].as_array().is_some_and(|h| h.is_empty())
    });
    let (_, status) = d.dsr_json(&["status", &id]);
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(util::task(&status, "google")["held_by"], Value::Null, "{status}");

    // Stopped by SIGTERM, it says so at once.
    worker.terminate(Duration::from_secs(30));
    let (_, list) = d.dsr_json(&["workers"]);
    let w = &list["workers"][0];
    assert_eq!(
        (w["name"].as_str(), &w["state"], &w["live"]),
        (Some(name.as_str()), &Value::from("stopped"), &Value::from(false)),
        "{list}"
    );
    assert!(w["stopped_at"].is_string(), "{list}");
}

#[tokio::test]
async fn a_worker_that_died_is_not_live_once_three_heartbeats_are_missed() {
    let d = deployment(0);
    let mut worker = Worker::start(&d);
    let pid = worker.pid();
    wait_for_worker(&d, "live and polling", |w| {
        w["pid"] == pid && w["live"] == true && w["last_poll_at"].is_string()
    });
    // Killed as a machine dies: no chance to say it stopped.
    let _ = worker.0.kill();
    let _ = worker.0.wait();

    let url = format!("sqlite://{}/ledger.db", d.data().display());
    let last = Ledger::open(&url).await.unwrap().workers().await.unwrap()[0].last_heartbeat_at;
    let at = |t: DateTime<Utc>| {
        let url = url.clone();
        async move {
            let ledger = Ledger::open(&url).await.unwrap().with_clock(Clock::manual(t));
            let workers = ledger.workers().await.unwrap();
            ledger.close().await;
            workers
        }
    };
    let within = at(last + ChronoDuration::seconds(3)).await;
    assert!(within[0].live, "three heartbeats after the last it is still live");
    assert_eq!(within[0].stopped_at, None);
    let after = at(last + ChronoDuration::seconds(4)).await;
    assert!(!after[0].live, "a fourth heartbeat missed: not live");

    // `dsr doctor` (by the system clock) warns that nothing is live, without failing.
    let started = Instant::now();
    loop {
        let check = doctor_workers(&d);
        let detail = check["detail"].as_str().unwrap_or_default().to_string();
        if detail.starts_with("warning: no worker is live") {
            assert_eq!(check["ok"], true, "{check}");
            assert!(detail.contains("last heard of"), "{check}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "doctor still sees a live worker: {check}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The heartbeat loop itself, on a manual clock: it records the engine's last poll, shows
/// the worker not live once the clock passes three intervals, forgets workers dead for a
/// day, and marks a stop.
async fn the_heartbeat_loop_writes_what_the_poller_saw(ledger_url: String, dir: std::path::PathBuf) {
    let start = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let clock = Clock::manual(start - ChronoDuration::days(2));
    let ledger = Ledger::open(&ledger_url).await.unwrap().with_clock(clock.clone());
    // A worker last heard of two days ago.
    ledger
        .heartbeat(&Heartbeat {
            name: "dsr-gone-1-00000000".into(),
            host: "gone".into(),
            pid: 1,
            version: "0.0.1".into(),
            started_at: clock.now(),
            last_poll: None,
            every: Duration::from_secs(15),
        })
        .await
        .unwrap();
    clock.set(start);

    let mut settings = util::fast_settings(
        &format!("sqlite://{}/queue.db", dir.display()),
        "dsr",
        &dir.join("export"),
    );
    // One beat in this test's lifetime: the clock, not the loop, moves time on.
    settings.heartbeat_every = Duration::from_secs(60);
    let queue = Queue::connect(&settings.queue).await.unwrap();
    let engine = Engine::new(ledger.clone(), queue, Connectors::default(), settings);
    let polled = start - ChronoDuration::seconds(2);
    engine.liveness().polled(polled);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let beating = tokio::spawn(dsr_jobs::heartbeat::run(engine.clone(), async move {
        let _ = stopped.await;
    }));

    let started = Instant::now();
    let me = loop {
        let workers = ledger.workers().await.unwrap();
        // The worker dead for two days is forgotten by the first beat.
        if let Some(me) = workers.iter().find(|w| w.name == engine.worker_name())
            && workers.len() == 1
        {
            break me.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no heartbeat, or the dead worker kept, within 30 s: {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(me.live);
    assert_eq!(me.pid, std::process::id());
    assert_eq!(me.last_heartbeat_at, start, "stamped by the ledger's clock");
    assert_eq!(me.started_at, start);
    assert_eq!(me.last_poll_at, Some(polled), "the poll the queue reported");
    assert_eq!(me.heartbeat_every, Duration::from_secs(60));
    assert_eq!(me.version, env!("CARGO_PKG_VERSION"));

    clock.set(start + ChronoDuration::seconds(180));
    assert!(ledger.workers().await.unwrap()[0].live, "three intervals: still live");
    clock.set(start + ChronoDuration::seconds(181));
    assert!(
        !ledger.workers().await.unwrap()[0].live,
        "past three intervals: not live"
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), beating)
        .await
        .expect("the heartbeat stops when told")
        .expect("the heartbeat task");
    let w = &ledger.workers().await.unwrap()[0];
    assert_eq!(w.stopped_at, Some(start + ChronoDuration::seconds(181)));
    assert!(!w.live);
    ledger.close().await;
}

#[tokio::test]
async fn the_heartbeat_loop_writes_what_the_poller_saw_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ledger.db", dir.path().display());
    the_heartbeat_loop_writes_what_the_poller_saw(url, dir.path().to_path_buf()).await;
}

#[tokio::test]
async fn the_heartbeat_loop_writes_what_the_poller_saw_on_postgres() {
    let db = util::pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    // Run apart, so the database is dropped even when an assertion fails.
    let run = tokio::spawn(the_heartbeat_loop_writes_what_the_poller_saw(
        db.url.clone(),
        dir.path().to_path_buf(),
    ))
    .await;
    db.drop_db().await;
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
}
