//! The real binary on the embedded default (SQLite ledger and queue) with scripted
//! connectors: requests run end to end, fail, retry, and end in a bundle or confirmation.

mod util;

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{Deployment, SEEDED_EMAIL, stderr, task};

fn effects(d: &Deployment) -> Vec<String> {
    std::fs::read_to_string(d.path().join("effects.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn connectors(d_path: &str, extra_wix: &str) -> String {
    format!(
        "[test_connector.google]\nrecords_per_email = 2\neffects_log = \"{d_path}/effects.log\"\n\
         [test_connector.wix]\neffects_log = \"{d_path}/effects.log\"\n{extra_wix}\n\
         [test_connector.superoffice]\nnot_applicable = [\"access\"]\neffects_log = \"{d_path}/effects.log\"\n"
    )
}

/// A deployment whose scripted connectors log side effects into its own folder.
fn deployment(extra_wix: &str, more: &str) -> Deployment {
    let d = Deployment::sqlite("");
    let text = std::fs::read_to_string(&d.config).unwrap();
    let body = connectors(&d.path().display().to_string(), extra_wix);
    std::fs::write(&d.config, format!("{text}{body}{more}")).unwrap();
    d
}

/// `dsr --json run KIND --email SEEDED_EMAIL EXTRA…`, waiting up to a minute.
fn run_request(d: &Deployment, kind: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["run", kind, "--email", SEEDED_EMAIL, "--timeout", "60s"];
    args.extend_from_slice(extra);
    d.dsr_json(&args)
}

fn spawn_worker(d: &Deployment) -> Child {
    d.command()
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start worker")
}

fn wait_status(d: &Deployment, id: &str, want: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (_, status) = d.dsr_json(&["status", id]);
        if status["status"] == want {
            return status;
        }
        assert!(
            started.elapsed() < within,
            "request {id} did not become {want}: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_access_request_runs_to_a_bundle_and_reports_the_documented_status() {
    let d = deployment("", "");
    let (code, status) = d.dsr_json(&[
        "run",
        "access",
        "--email",
        "Kari.Nordmann@Example.no",
        "--timeout",
        "60s",
    ]);
    assert_eq!(code, 0, "{status}");
    for key in [
        "id",
        "kind",
        "status",
        "received_at",
        "due_at",
        "processors",
        "bundle",
        "confirmation",
    ] {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    assert_eq!(status["kind"], "access");
    assert_eq!(status["status"], "completed");
    assert!(status["received_at"].as_str().unwrap().ends_with('Z'));
    assert!(status["confirmation"].is_null());
    let google = task(&status, "google");
    assert_eq!(google["status"], "succeeded");
    assert_eq!(google["outcome"], "done");
    assert_eq!(google["attempts"], 1);
    assert_eq!(google["records"]["found"], 2);
    for key in ["reason", "error", "next_retry_at"] {
        assert!(google.get(key).is_some(), "task lacks {key}");
    }
    let superoffice = task(&status, "superoffice");
    assert_eq!(superoffice["status"], "not_applicable");
    assert!(superoffice["reason"].as_str().unwrap().contains("no access"));

    let bundle = status["bundle"].as_str().unwrap();
    assert!(std::path::Path::new(bundle).is_absolute());
    let mut zip = zip::ZipArchive::new(std::fs::File::open(bundle).unwrap()).unwrap();
    let mut manifest = String::new();
    zip.by_name("manifest.json")
        .unwrap()
        .read_to_string(&mut manifest)
        .unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["request_id"], status["id"]);
    let mut google_records = String::new();
    zip.by_name("google/contacts.json")
        .unwrap()
        .read_to_string(&mut google_records)
        .unwrap();
    let records: Value = serde_json::from_str(&google_records).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 2);
    assert_eq!(
        records[0]["email"], SEEDED_EMAIL,
        "e-mails are compared and kept lowercased"
    );
    assert!(effects(&d).is_empty(), "an access request changes nothing");
}

#[test]
fn retryable_failures_back_off_and_then_succeed() {
    let d = deployment("fail_attempts = 2\nretry_after_ms = 300\n", "");
    let (code, status) = run_request(&d, "erasure", &[]);
    assert_eq!(code, 0, "{status}");
    let wix = task(&status, "wix");
    assert_eq!(wix["status"], "succeeded");
    assert_eq!(wix["attempts"], 3);
    let confirmation = status["confirmation"].as_str().unwrap();
    let document: Value = serde_json::from_str(&std::fs::read_to_string(confirmation).unwrap()).unwrap();
    assert_eq!(document["status"], "completed");
    assert_eq!(document["preview"], false);
    assert!(std::path::Path::new(confirmation).with_extension("html").exists());
    let mut lines = effects(&d);
    lines.sort();
    assert_eq!(
        lines.len(),
        4,
        "each item erased exactly once (two at google, one each at wix and superoffice): {lines:?}"
    );
}

#[test]
fn a_permanent_failure_ends_partially_and_dsr_retry_sends_it_back() {
    let d = deployment("fail_attempts = 1\nfailure = \"permanent\"\n", "");
    let (code, status) = run_request(&d, "erasure", &[]);
    assert_eq!(code, 1, "a request that did not complete exits 1: {status}");
    assert_eq!(status["status"], "partially_completed");
    let wix = task(&status, "wix");
    assert_eq!(wix["status"], "failed");
    assert!(wix["error"].as_str().unwrap().contains("scripted failure"), "{wix}");
    let id = status["id"].as_str().unwrap().to_string();

    let out = d.dsr(&["retry", &id, "--processor", "wix"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut worker = spawn_worker(&d);
    let status = wait_status(&d, &id, "completed", Duration::from_secs(30));
    worker.kill().ok();
    worker.wait().ok();
    assert_eq!(task(&status, "wix")["status"], "succeeded");
    assert_eq!(
        task(&status, "wix")["attempts"],
        2,
        "attempt 1 failed, the retried attempt is the second"
    );
    assert!(status["confirmation"].as_str().is_some());
}

#[test]
fn attempts_run_out_and_the_task_fails_with_the_last_error() {
    let d = deployment("fail_attempts = 100\n", "");
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("task_lease = \"3s\"", "task_lease = \"3s\"\nmax_attempts = 2");
    std::fs::write(&d.config, text).unwrap();
    let (code, status) = run_request(&d, "objection", &[]);
    assert_eq!(code, 1);
    let wix = task(&status, "wix");
    assert_eq!(wix["status"], "failed");
    assert_eq!(wix["attempts"], 2);
    assert!(
        wix["error"].as_str().unwrap().contains("gave up after 2 attempts"),
        "{wix}"
    );
}

#[test]
fn a_dry_run_changes_nothing_and_says_so() {
    let d = deployment("", "");
    let (code, status) = run_request(&d, "erasure", &["--dry-run"]);
    assert_eq!(code, 0, "{status}");
    assert!(effects(&d).is_empty(), "a dry run erased something: {:?}", effects(&d));
    assert_eq!(task(&status, "google")["records"]["found"], 2);
    assert_eq!(task(&status, "google")["records"]["changed"], 0);
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(status["confirmation"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(document["preview"], true);
}

#[test]
fn a_redelivered_job_repeats_no_side_effect_and_records_nothing_twice() {
    let d = deployment("", "");
    let (code, status) = run_request(&d, "erasure", &[]);
    assert_eq!(code, 0, "{status}");
    let id = status["id"].as_str().unwrap().to_string();
    assert_eq!(effects(&d).len(), 4, "google's two items, wix's and superoffice's");

    // Deliver every job of this request again, as an at-least-once queue may.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(util::redeliver(&d, &util::all_jobs(&id)));

    assert_eq!(
        effects(&d).len(),
        4,
        "a re-delivered task erased again: {:?}",
        effects(&d)
    );
    let (_, after) = d.dsr_json(&["status", &id]);
    for p in ["google", "wix", "superoffice"] {
        assert_eq!(task(&after, p)["attempts"], 1, "{p} ran again");
    }
    let ledger_url = format!("sqlite://{}/data/ledger.db", d.path().display());
    let events = runtime.block_on(async {
        let ledger = dsr_jobs::Ledger::open(&ledger_url).await.unwrap();
        ledger.audit_events(&id).await.unwrap()
    });
    for p in ["google", "wix", "superoffice"] {
        let n = events
            .iter()
            .filter(|e| e.event == "task.succeeded" && e.processor.as_deref() == Some(p))
            .count();
        assert_eq!(n, 1, "{p} recorded {n} results");
    }
    assert_eq!(events.iter().filter(|e| e.event == "request.completed").count(), 1);
}

#[test]
fn a_request_whose_jobs_vanished_is_recovered_by_the_sweep() {
    let d = deployment("", "");
    let out = d.dsr(&["enqueue", "access", "--email", SEEDED_EMAIL]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Lose the queue entirely, as if its store were wiped between enqueue and processing.
    std::fs::remove_file(d.data().join("queue.db")).unwrap();
    for suffix in ["queue.db-wal", "queue.db-shm"] {
        let _ = std::fs::remove_file(d.data().join(suffix));
    }
    let mut worker = spawn_worker(&d);
    let status = wait_status(&d, &id, "completed", Duration::from_secs(30));
    worker.kill().ok();
    worker.wait().ok();
    assert!(status["bundle"].as_str().is_some());
}

#[test]
fn timeouts_cancel_extend_and_overdue_from_the_command_line() {
    let d = deployment("delay_ms = 4000\n", "");
    let started = Instant::now();
    let (code, status) = d.dsr_json(&["run", "access", "--email", SEEDED_EMAIL, "--timeout", "1s"]);
    assert_eq!(code, 1, "still running at --timeout exits 1: {status}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(status["status"], "in_progress");
    let id = status["id"].as_str().unwrap().to_string();

    let (code, extended) = d.dsr_json(&["extend", &id, "--months", "2", "--reason", "complex request"]);
    assert_eq!(code, 0, "{extended}");
    assert!(extended["due_at"].as_str().unwrap() > status["due_at"].as_str().unwrap());
    let out = d.dsr(&["extend", &id, "--months", "1", "--reason", "again"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("two further months"), "{}", stderr(&out));

    let (code, overdue) = d.dsr_json(&["list", "--overdue"]);
    assert_eq!(code, 0);
    assert!(
        overdue["requests"].as_array().unwrap().is_empty(),
        "nothing is overdue yet: {overdue}"
    );

    let (code, cancelled) = d.dsr_json(&["cancel", &id]);
    assert_eq!(code, 0, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (_, listed) = d.dsr_json(&["list", "--status", "cancelled"]);
    assert_eq!(listed["requests"][0]["id"], id.as_str());
    let out = d.dsr(&["status", "no-such-request"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-such-request"));
}

#[test]
fn progress_goes_to_stderr_and_text_to_stdout() {
    let d = deployment("", "");
    let out = d.dsr(&["run", "access", "--email", SEEDED_EMAIL, "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("google: succeeded"),
        "progress should show each task: {err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("status    completed") && text.contains("bundle"),
        "{text}"
    );
}

#[test]
fn doctor_reports_each_part_and_the_demo_speaks_plainly() {
    let d = deployment("", "");
    let (code, report) = d.dsr_json(&["doctor"]);
    assert_eq!(code, 0, "{report}");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for want in [
        "config",
        "ledger",
        "queue",
        "export storage",
        "processor google",
        "processor microsoft365",
    ] {
        assert!(names.contains(&want), "doctor lacks {want}: {names:?}");
    }
    // A processor whose vendor cannot be reached is a problem doctor names.
    let key = d.path().join("wix-key");
    std::fs::write(&key, "some-key").unwrap();
    let d = Deployment::sqlite(&format!(
        "[processors.wix]\nenabled = true\napi_url = \"http://127.0.0.1:1\"\nsite_id = \"s\"\napi_key = \"file:{}\"\n",
        key.display()
    ));
    let (code, report) = d.dsr_json(&["doctor"]);
    assert_eq!(code, 1, "an unreachable vendor is a problem: {report}");
    let wix = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "processor wix")
        .unwrap();
    assert_eq!(wix["ok"], false);
}

#[test]
fn the_demo_runs_every_right_under_dsr_demo() {
    // A real processor section in the operator's config (here an address nothing answers
    // at) is ignored: the demo runs the real connectors against its own fakes only.
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), "the-companys-real-key").unwrap();
    let d = Deployment::sqlite(&format!(
        "[processors.wix]\napi_url = \"http://127.0.0.1:1\"\nsite_id = \"real-site\"\napi_key = \"file:{}\"\n",
        key.path().display()
    ));
    // And a real section from the environment: ignored too.
    let out = d
        .command()
        .args(["--json", "demo"])
        .env("DSR_PROCESSORS__MICROSOFT365__TENANT_ID", "racom.onmicrosoft.com")
        .env("DSR_PROCESSORS__MICROSOFT365__CLIENT_ID", "real-app")
        .env(
            "DSR_PROCESSORS__MICROSOFT365__CLIENT_SECRET",
            "env:DSR_REAL_GRAPH_SECRET",
        )
        .env("DSR_PROCESSORS__MICROSOFT365__GRAPH_URL", "http://127.0.0.1:1")
        .env("DSR_PROCESSORS__MICROSOFT365__LOGIN_URL", "http://127.0.0.1:1")
        .env("DSR_REAL_GRAPH_SECRET", "the-companys-real-secret")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ran"], true);
    assert_eq!(
        report["ignored_processors"],
        serde_json::json!(["microsoft365", "wix"]),
        "{report}"
    );
    // The commands the demo prints work on its output, exactly as printed.
    let next: Vec<&str> = report["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        next.len(),
        5,
        "status, verify bundle, the erasure's plan, verify confirmation, audit verify: {next:?}"
    );
    // The erasure waited for approval: its plan was shown and approved, then executed.
    let plan_command = next.iter().find(|c| c.contains(" plan ")).unwrap();
    let erasure_id = plan_command.rsplit(' ').next().unwrap();
    let out = std::process::Command::new(util::dsr_bin())
        .args(["--config", "dsr-demo/dsr.toml", "--json", "plan", erasure_id])
        .current_dir(d.path())
        .env_remove("DSR_CONFIG")
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let processors = plan["processors"].as_array().unwrap();
    assert_eq!(processors.len(), 4, "{plan}");
    for p in processors {
        assert_eq!(p["approved_by"], "dsr demo", "{p}");
        assert_eq!(p["verification"]["remaining"].as_array().unwrap().len(), 0, "{p}");
    }
    let bin_dir = std::path::Path::new(util::dsr_bin()).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for command in &next {
        assert!(command.starts_with("dsr --config dsr-demo/dsr.toml "), "{command}");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(d.path())
            .env("PATH", &path)
            .env_remove("DSR_CONFIG")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "`{command}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
    let all = report["requests"].as_array().unwrap();
    let kinds: Vec<(&str, bool)> = all
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["dry_run"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("access", false),
            ("objection", false),
            ("rectification", false),
            ("erasure", true),
            ("erasure", false)
        ]
    );
    // The access request and the real erasure.
    let requests = [all[0].clone(), all[4].clone()];
    let m365 = task(&requests[0], "microsoft365");
    assert_eq!(
        m365["status"], "succeeded",
        "the demo runs Microsoft 365 against its fake"
    );
    assert_eq!(
        m365["records"]["found"], 33,
        "mail, and contacts in every contact folder"
    );
    assert_eq!(
        task(&requests[1], "microsoft365")["records"]["changed"],
        30,
        "the 3 messages that also name other people are retained by default"
    );
    let google = task(&requests[0], "google");
    assert_eq!(
        google["records"]["found"], 12,
        "4 Analytics events from the fake BigQuery export, 5 Gmail messages (Spam and Trash \
         included), 2 contacts, 1 other contact"
    );
    assert_eq!(
        task(&requests[1], "google")["records"]["changed"],
        10,
        "two ids × two GA4 properties, 4 messages, 2 contacts (the other contact, and the message \
         with Per on Cc, are retained)"
    );
    assert_eq!(task(&requests[0], "superoffice")["records"]["found"], 13);
    assert_eq!(
        task(&requests[1], "superoffice")["outcome"],
        "partly_retained",
        "sales are kept by rule"
    );
    assert_eq!(
        task(&requests[0], "wix")["status"],
        "succeeded",
        "the demo includes Wix"
    );
    assert_eq!(
        task(&requests[1], "wix")["records"]["changed"],
        6,
        "her two submissions (Forms, Bookings), two comments, the member and the contact; the two \
         forms Per sent naming her are retained"
    );
    assert_eq!(requests[0]["kind"], "access");
    assert_eq!(requests[1]["kind"], "erasure");
    let bundle = requests[0]["bundle"].as_str().unwrap();
    assert!(
        bundle.starts_with(&d.path().join("dsr-demo").display().to_string()),
        "{bundle}"
    );
    assert!(std::path::Path::new(bundle).exists());
    assert!(std::path::Path::new(requests[1]["confirmation"].as_str().unwrap()).exists());
}

#[test]
fn json_may_come_after_the_subcommand_and_enqueue_can_wait() {
    let d = deployment("", "");
    let mut worker = spawn_worker(&d);
    let out = d
        .command()
        .args([
            "enqueue",
            "access",
            "--email",
            SEEDED_EMAIL,
            "--wait",
            "--timeout",
            "60s",
            "--json",
        ])
        .output()
        .unwrap();
    worker.kill().ok();
    worker.wait().ok();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["status"], "completed");
    assert!(status["bundle"].as_str().is_some());
}
