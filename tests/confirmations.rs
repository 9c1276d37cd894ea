//! What the operator keeps as proof: confirmations with per-processor evidence, signed and
//! pinned to the hash-chained audit log, and what retention leaves behind. Driven through
//! `dsr demo` (the real connectors against the fake vendors) and `dsr run`.

mod util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::{Deployment, task};

/// The demo's five requests, and the config it wrote for its ledger and key.
fn demo() -> (Deployment, Vec<Value>, PathBuf) {
    let d = Deployment::sqlite("");
    let (code, report) = d.dsr_json(&["demo"]);
    assert_eq!(code, 0, "{report}");
    let requests = report["requests"].as_array().unwrap().clone();
    let root = d.path().join("dsr-demo");
    // The config the demo writes for reading its output after its fakes are gone.
    let config = root.join("dsr.toml");
    assert!(config.exists(), "the demo writes {}", config.display());
    (d, requests, config)
}

fn request<'a>(requests: &'a [Value], kind: &str, dry_run: bool) -> &'a Value {
    requests
        .iter()
        .find(|r| r["kind"] == kind && r["dry_run"] == dry_run)
        .unwrap_or_else(|| panic!("no {kind} request (dry run {dry_run}) in {requests:?}"))
}

fn confirmation(request: &Value) -> (PathBuf, Value) {
    let path = PathBuf::from(request["confirmation"].as_str().unwrap());
    let document = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (path, document)
}

fn processor<'a>(document: &'a Value, name: &str) -> &'a Value {
    document["processors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["processor"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {document}"))
}

/// `dsr --config CONFIG --json ARGS` in the deployment's folder.
fn dsr_with(d: &Deployment, config: &Path, args: &[&str]) -> (i32, Value) {
    let out = std::process::Command::new(util::dsr_bin())
        .current_dir(d.path())
        .arg("--config")
        .arg(config)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}): {}", util::stderr(&out)));
    (out.status.code().unwrap_or(-1), value)
}

#[test]
fn confirmations_carry_each_processors_evidence_and_a_dry_run_changes_nothing() {
    let (_d, requests, _) = demo();
    let processors = ["google", "microsoft365", "superoffice", "wix"];

    // Erasure: every processor with its outcome and what the verification search found.
    let (_, erasure) = confirmation(request(&requests, "erasure", false));
    assert_eq!(erasure["preview"], false);
    for name in processors {
        let p = processor(&erasure, name);
        assert!(p["outcome"].is_string(), "{name}: {p}");
        assert_eq!(p["verification"]["remaining"], 0, "{name} left something behind: {p}");
        assert!(
            !p["items"].as_array().unwrap().is_empty(),
            "{name}: the plan, item by item: {p}"
        );
    }
    let retained = processor(&erasure, "superoffice")["retained"].as_array().unwrap();
    assert!(
        retained
            .iter()
            .all(|r| r["legal_basis"].is_string() && r["reason"].is_string()),
        "{retained:?}"
    );
    assert_eq!(
        erasure["recipients"].as_array().unwrap().len(),
        4,
        "Art. 19: every processor it reached"
    );
    let wix_notes = processor(&erasure, "wix")["notes"].to_string();
    assert!(
        wix_notes.contains("permanently") && !wix_notes.contains("90 days"),
        "Wix's v4 deletion is stated as permanent (no trash date is promised): {wix_notes}"
    );

    // Rectification: before and after, per processor and record.
    let (path, rectification) = confirmation(request(&requests, "rectification", false));
    let wix = processor(&rectification, "wix")["items"].to_string();
    assert!(
        wix.contains(r#""before":{"family_name":"Nordmann"}"#)
            && wix.contains(r#""after":{"family_name":"Nordmann-Lie"}"#),
        "each field before (from the plan) and after (read back by planning again): {wix}"
    );
    let html = std::fs::read_to_string(path.with_extension("html")).unwrap();
    assert!(
        html.contains("Nordmann-Lie") && html.contains("Nordmann"),
        "the page shows both"
    );

    // Objection: each consent and subscription withdrawn.
    let (_, objection) = confirmation(request(&requests, "objection", false));
    let superoffice = processor(&objection, "superoffice")["items"].to_string();
    assert!(
        superoffice.contains("EMARKETING") && superoffice.contains("newsletter_subscriptions"),
        "{superoffice}"
    );
    let wix = processor(&objection, "wix")["items"].to_string();
    assert!(
        wix.contains("UNSUBSCRIBED") && wix.contains(r#""state":"done""#),
        "{wix}"
    );

    // The preview changed nothing at any fake: the erasure after it found all of it still there.
    let preview_request = request(&requests, "erasure", true);
    let (preview_path, preview) = confirmation(preview_request);
    assert_eq!(preview["preview"], true);
    for name in processors {
        let before = task(preview_request, name);
        let after = task(request(&requests, "erasure", false), name);
        assert_eq!(before["records"]["changed"], 0, "{name}");
        assert_eq!(
            before["records"]["found"], after["records"]["found"],
            "{name}: the preview must leave everything in place"
        );
    }
    assert!(
        std::fs::read_to_string(preview_path.with_extension("html"))
            .unwrap()
            .contains("Preview: nothing was changed")
    );
}

#[test]
fn one_changed_byte_or_audit_row_makes_the_verify_commands_fail_and_name_it() {
    let (d, requests, config) = demo();
    let (path, document) = confirmation(request(&requests, "erasure", false));
    let location = path.display().to_string();
    let (code, verdict) = dsr_with(&d, &config, &["verify", &location]);
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict["signature"], "valid");
    assert!(document["audit_chain"]["seq"].as_i64().unwrap() > 0);
    let bundle = request(&requests, "access", false)["bundle"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, verdict) = dsr_with(&d, &config, &["verify", &bundle]);
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict["signature"], "valid", "the manifest is signed");
    let (code, chain) = dsr_with(&d, &config, &["audit", "verify"]);
    assert_eq!(code, 0, "{chain}");
    assert!(chain["events"].as_u64().unwrap() > 20, "{chain}");

    // One byte of the signed confirmation.
    let original = std::fs::read(&path).unwrap();
    let mut altered = original.clone();
    let at = altered.windows(4).position(|w| w == b"done").unwrap();
    altered[at] = b'D';
    std::fs::write(&path, &altered).unwrap();
    let (code, verdict) = dsr_with(&d, &config, &["verify", &location]);
    assert_eq!(code, 1, "{verdict}");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let problems = verdict["problems"].to_string();
    assert!(
        problems.contains(&format!("{name}: signature check failed")) && problems.contains("ledger (altered)"),
        "{problems}"
    );
    std::fs::write(&path, &original).unwrap();

    // One audit row.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seq: i64 = runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}/dsr-demo/ledger.db", d.path().display());
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let seq: i64 = sqlx::Row::get(
            &sqlx::query("SELECT MIN(seq) FROM audit_log WHERE event = 'task.succeeded'")
                .fetch_one(&pool)
                .await
                .unwrap(),
            0,
        );
        sqlx::query("UPDATE audit_log SET detail = replace(detail, '\"found\":', '\"found\":1') WHERE seq = $1")
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        seq
    });
    let (code, chain) = dsr_with(&d, &config, &["audit", "verify"]);
    assert_eq!(code, 1, "{chain}");
    assert!(
        chain["problem"]
            .as_str()
            .unwrap()
            .starts_with(&format!("event #{seq} (task.succeeded")),
        "{chain}"
    );
    let (code, verdict) = dsr_with(&d, &config, &["verify", &location]);
    assert_eq!(
        code, 1,
        "a confirmation is only as good as the chain it pins: {verdict}"
    );
    assert!(verdict["problems"].to_string().contains(&format!("event #{seq}")));
}

#[test]
fn after_retention_the_bundle_is_gone_and_the_ledger_names_nobody_yet_the_chain_holds() {
    let d = Deployment::sqlite(
        "[test_connector.google]\nrecords_per_email = 2\n[test_connector.wix]\n\
         [privacy]\npseudonymise_after = \"0s\"\npseudonym_key = \"file:pseudonym.key\"\n",
    );
    std::fs::write(d.path().join("pseudonym.key"), "a key for pseudonyms\n").unwrap();
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, text.replace("[export]\n", "[export]\nretention = \"0s\"\n")).unwrap();
    let (code, access) = d.dsr_json(&[
        "run",
        "access",
        "--email",
        util::SEEDED_EMAIL,
        "--name",
        "Kari Nordmann",
    ]);
    assert_eq!(code, 0, "{access}");
    // (The sweep in `dsr run` may already have expired it: retention is zero days here.)
    let bundle = PathBuf::from(access["bundle"].as_str().unwrap());
    let (code, erasure) = d.dsr_json(&["run", "erasure", "--email", util::SEEDED_EMAIL]);
    assert_eq!(code, 0, "{erasure}");
    let confirmation = PathBuf::from(erasure["confirmation"].as_str().unwrap());
    // A rectification's plan holds the values before and after.
    let (code, rectified) = d.dsr_json(&[
        "run",
        "rectification",
        "--email",
        util::SEEDED_EMAIL,
        "--set",
        "family_name=Nordmann-Lie",
    ]);
    assert_eq!(code, 0, "{rectified}");

    // The sweep (every second here) expires and pseudonymises what has finished.
    let mut worker = d
        .command()
        .arg("worker")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut status;
    loop {
        status = d.dsr_json(&["status", access["id"].as_str().unwrap()]).1;
        let erased = d.dsr_json(&["status", erasure["id"].as_str().unwrap()]).1;
        let renamed = d.dsr_json(&["status", rectified["id"].as_str().unwrap()]).1;
        if status["pseudonymised_at"].is_string()
            && erased["exports_expired_at"].is_string()
            && renamed["pseudonymised_at"].is_string()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status}");
        std::thread::sleep(Duration::from_millis(300));
    }
    worker.kill().ok();
    worker.wait().ok();
    assert!(status["exports_expired_at"].is_string(), "{status}");
    assert!(!bundle.exists(), "the bundle is gone after the retention period");
    let expired = audit_details(
        &d.data().join("ledger.db"),
        access["id"].as_str().unwrap(),
        "exports.expired",
    );
    assert_eq!(expired.len(), 1, "recorded once: {expired:?}");
    assert_eq!(expired[0]["objects_deleted"], 1, "the bundle was there and was deleted");
    assert!(!confirmation.exists() && !confirmation.with_extension("html").exists());

    let dump = ledger_text(&d.data().join("ledger.db"));
    assert!(dump.contains("pseudonym:"), "identities became keyed hashes");
    assert!(
        plan_values(&d.data().join("ledger.db")).contains("pseudonym:"),
        "the plan's values before and after were there, and became keyed hashes"
    );
    for clear in ["kari.nordmann@example.no", "kari nordmann", "nordmann-lie"] {
        assert!(
            !dump.contains(clear),
            "the ledger (its plans included) still holds {clear}"
        );
    }
    let (code, chain) = d.dsr_json(&["audit", "verify"]);
    assert_eq!(code, 0, "the audit chain is intact after pseudonymisation: {chain}");
}

/// The details of a request's audit events named `event`.
fn audit_details(db: &Path, request_id: &str, event: &str) -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows = sqlx::query("SELECT detail FROM audit_log WHERE request_id = $1 AND event = $2 ORDER BY seq")
            .bind(request_id)
            .bind(event)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows.iter()
            .map(|r| serde_json::from_str(&sqlx::Row::get::<String, _>(r, 0)).unwrap())
            .collect()
    })
}

/// Every text column of the ledger that could hold personal data, lowercased.
/// The values before and after in the stored plan items.
fn plan_values(db: &Path) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let mut text = String::new();
        for row in sqlx::query("SELECT item FROM plan_items")
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            let item: Value = serde_json::from_str(&sqlx::Row::get::<String, _>(&row, 0)).unwrap();
            for field in ["before", "after"] {
                if !item[field].is_null() {
                    text.push_str(&item[field].to_string());
                }
            }
        }
        pool.close().await;
        text
    })
}

fn ledger_text(db: &Path) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let mut text = String::new();
        for query in [
            "SELECT identities || changes || COALESCE(bundle, '') || COALESCE(confirmation, '') FROM requests",
            "SELECT evidence || COALESCE(reason, '') || COALESCE(error, '') || COALESCE(spool, '') FROM tasks",
            "SELECT detail FROM audit_log",
            "SELECT item || state FROM plan_items",
            "SELECT body || COALESCE(verification, '') FROM plans",
        ] {
            for row in sqlx::query(query).fetch_all(&pool).await.unwrap() {
                text.push_str(&sqlx::Row::get::<String, _>(&row, 0));
            }
        }
        pool.close().await;
        text.to_lowercase()
    })
}

#[test]
fn a_cancelled_requests_spools_go_with_retention() {
    let d = Deployment::sqlite("[test_connector.google]\n[test_connector.wix]\ndelay_ms = 4000\n");
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, text.replace("[export]\n", "[export]\nretention = \"0s\"\n")).unwrap();
    let (code, enqueued) = d.dsr_json(&["enqueue", "access", "--email", util::SEEDED_EMAIL]);
    assert_eq!(code, 0, "{enqueued}");
    let id = enqueued["id"].as_str().unwrap().to_string();
    let mut worker = d
        .command()
        .arg("worker")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let spools = d.data().join("export/spool").join(&id);
    let started = Instant::now();
    while !spools.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Google's spool never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = d.dsr(&["cancel", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));
    let started = Instant::now();
    while spools.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a cancelled request's spool outlived the retention period"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    worker.kill().ok();
    worker.wait().ok();
    let expired = audit_details(&d.data().join("ledger.db"), &id, "exports.expired");
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert!(expired[0]["objects_deleted"].as_u64().unwrap() >= 1, "{expired:?}");
}
