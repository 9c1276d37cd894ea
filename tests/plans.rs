//! Changes as stored plans, end to end through the `dsr` binary on SQLite and on
//! PostgreSQL: a plan waits for approval, a stale hash is refused, the approved plan is
//! executed once, a rejection changes nothing, and shared items follow the configured rule.

mod util;

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{Deployment, SEEDED_EMAIL};

const SCRIPTS: &str = "[test_connector.google]\nrecords_per_email = 2\neffects_log = \"{root}/effects.log\"\n\
                       [test_connector.wix]\nrecords_per_email = 2\nshared = 1\neffects_log = \"{root}/effects.log\"\n";

struct Running {
    d: Deployment,
    worker: Child,
    effects: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.worker.kill().ok();
        self.worker.wait().ok();
    }
}

impl Running {
    fn start(d: Deployment, effects: std::path::PathBuf) -> Running {
        let worker = d
            .command()
            .arg("worker")
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a worker");
        Running { d, worker, effects }
    }

    fn effects(&self) -> Vec<String> {
        std::fs::read_to_string(&self.effects)
            .map(|t| t.lines().map(String::from).collect())
            .unwrap_or_default()
    }

    fn effects_of(&self, id: &str) -> BTreeSet<String> {
        self.effects().into_iter().filter(|l| l.contains(id)).collect()
    }

    /// Enqueues and waits until the request ends or stops for approval.
    fn submit(&self, extra: &[&str]) -> Value {
        let mut args = vec![
            "enqueue",
            "erasure",
            "--email",
            SEEDED_EMAIL,
            "--wait",
            "--timeout",
            "60s",
        ];
        args.extend_from_slice(extra);
        let (code, status) = self.d.dsr_json(&args);
        assert_eq!(code, 0, "{status}");
        status
    }

    fn wait_for(&self, id: &str, want: &str) -> Value {
        let started = Instant::now();
        loop {
            let (_, status) = self.d.dsr_json(&["status", id]);
            if status["status"] == want {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "never {want}: {status}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn plan(&self, id: &str) -> Value {
        let (code, plan) = self.d.dsr_json(&["plan", id]);
        assert_eq!(code, 0, "{plan}");
        plan
    }
}

fn keys(plan: &Value) -> BTreeSet<String> {
    plan["processors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter())
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

fn item<'a>(plan: &'a Value, key: &str) -> &'a Value {
    plan["processors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().iter())
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("no item {key} in {plan}"))
}

fn scripts(d_root: &str, extra: &str) -> String {
    format!("{}{extra}", SCRIPTS.replace("{root}", d_root))
}

/// The approval story on one deployment.
fn approve_reject_and_refuse_a_stale_plan(make: impl Fn(&str) -> Deployment) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let run = Running::start(
        make(&scripts(&root, "[erasure]\napproval = \"required\"\n")),
        dir.path().join("effects.log"),
    );

    // The preview is the plan: made, shown, never executed, never waiting for approval.
    let preview = run.submit(&["--dry-run"]);
    assert_eq!(preview["status"], "completed", "{preview}");
    let preview_plan = run.plan(preview["id"].as_str().unwrap());

    let status = run.submit(&[]);
    let id = status["id"].as_str().unwrap().to_string();
    assert_eq!(status["status"], "awaiting_approval", "{status}");
    assert!(run.effects_of(&id).is_empty(), "nothing happens before approval");
    let first = run.plan(&id);
    assert_eq!(first["awaiting_approval"], true, "{first}");
    assert_eq!(
        keys(&first),
        keys(&preview_plan),
        "the preview lists the items the plan executes"
    );
    assert_eq!(keys(&first).len(), 4);
    let shared = item(&first, "wix-0");
    assert_eq!(
        shared["state"]["state"], "retained",
        "shared items are retained by default: {shared}"
    );
    assert_eq!(shared["shared"], "1 other participant");
    assert_eq!(item(&first, "wix-1")["state"]["state"], "pending");
    assert_eq!(
        item(&first, "google-0")["claims"][0]["at"],
        "/email",
        "each item carries its match"
    );
    let stale = first["plan"].as_str().unwrap().to_string();

    // Planned again since (a retry): the hash shown before no longer approves anything.
    let (code, retried) = run.d.dsr_json(&["retry", &id]);
    assert_eq!(code, 0, "{retried}");
    let started = Instant::now();
    let fresh = loop {
        let plan = run.plan(&id);
        if plan["awaiting_approval"] == true && plan["plan"] != stale.as_str() {
            break plan;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never planned again: {plan}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = run.d.dsr(&["approve", &id, "--plan", &stale, "--by", "per.operator"]);
    assert_eq!(out.status.code(), Some(2), "a stale plan is refused");
    assert!(util::stderr(&out).contains("made again"), "{}", util::stderr(&out));
    assert!(run.effects_of(&id).is_empty());

    let hash = fresh["plan"].as_str().unwrap();
    let (code, approved) = run
        .d
        .dsr_json(&["approve", &id, "--plan", hash, "--by", "per.operator"]);
    assert_eq!(code, 0, "{approved}");
    let done = run.wait_for(&id, "completed");
    let executed = run.plan(&id);
    assert_eq!(keys(&executed), keys(&preview_plan), "executed the items previewed");
    for key in ["google-0", "google-1", "wix-1"] {
        assert_eq!(item(&executed, key)["state"]["state"], "done", "{executed}");
    }
    assert_eq!(item(&executed, "wix-0")["state"]["state"], "retained");
    let effects = run.effects_of(&id);
    assert_eq!(
        effects.len(),
        3,
        "each due item once, the shared one never: {effects:?}"
    );
    assert!(effects.iter().all(|e| !e.ends_with("wix-0")));
    let wix = util::task(&done, "wix");
    assert_eq!(wix["outcome"], "partly_retained", "{done}");
    let google = executed["processors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["processor"] == "google")
        .unwrap();
    assert_eq!(google["approved_by"], "per.operator");
    assert_eq!(google["verification"]["remaining"].as_array().unwrap().len(), 0);
    let confirmation: Value =
        serde_json::from_slice(&std::fs::read(done["confirmation"].as_str().unwrap()).unwrap()).unwrap();
    let items = confirmation["processors"][0]["items"].as_array().unwrap();
    assert!(
        !items.is_empty(),
        "the confirmation lists the plan's items: {confirmation}"
    );

    // Nothing failed, so there is nothing to retry.
    let out = run.d.dsr(&["retry", &id]);
    assert_eq!(out.status.code(), Some(2), "nothing failed, so nothing to retry");
    assert_eq!(run.effects_of(&id).len(), 3);

    // A rejection ends the request and changes nothing.
    let other = run.submit(&[]);
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(other["status"], "awaiting_approval");
    let (code, rejected) = run.d.dsr_json(&[
        "reject",
        other_id,
        "--reason",
        "asked by phone to stop",
        "--by",
        "per.operator",
    ]);
    assert_eq!(code, 0, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    let out = run.d.dsr(&["approve", other_id, "--plan", hash]);
    assert_eq!(out.status.code(), Some(2), "a rejected request cannot be approved");
    assert!(run.effects_of(other_id).is_empty());
    let (code, chain) = run.d.dsr_json(&["audit", "verify"]);
    assert_eq!(code, 0, "{chain}");
}

#[test]
fn plans_wait_for_approval_on_sqlite() {
    approve_reject_and_refuse_a_stale_plan(Deployment::sqlite);
}

#[test]
fn plans_wait_for_approval_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(util::pg_database());
    let queue_dir = tempfile::tempdir().unwrap();
    let queue = format!("sqlite://{}/queue.db", queue_dir.path().display());
    approve_reject_and_refuse_a_stale_plan(|extra| Deployment::shared(&db.url, &queue, "plans", extra));
    runtime.block_on(db.drop_db());
}

#[test]
fn shared_items_are_deleted_when_the_company_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let run = Running::start(
        Deployment::sqlite(&scripts(&root, "[erasure]\nshared = \"delete\"\n")),
        dir.path().join("effects.log"),
    );
    let status = run.submit(&[]);
    let id = status["id"].as_str().unwrap();
    assert_eq!(status["status"], "completed", "no approval configured: {status}");
    let plan = run.plan(id);
    assert_eq!(item(&plan, "wix-0")["state"]["state"], "done", "{plan}");
    assert_eq!(run.effects_of(id).len(), 4);
    assert_eq!(util::task(&status, "wix")["outcome"], "done");
}
