//! What dsr leaves on disk and prints: every file and directory it creates is its owner's
//! alone from the first byte, staging files a crash left behind do not stay for good, and no
//! key or URL password reaches its output.

mod util;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use util::{Deployment, SEEDED_EMAIL};

/// Every entry under `dir` (recursively) with its permission bits.
#[cfg(unix)]
fn modes(dir: &Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d).expect("metadata");
        found.push((d.clone(), true, meta.permissions().mode() & 0o777));
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                found.push((entry.path(), false, meta.permissions().mode() & 0o777));
            }
        }
    }
    found
}

#[cfg(unix)]
#[test]
fn every_file_and_directory_a_run_leaves_is_owner_only() {
    let d = Deployment::sqlite("");
    let root = d.path().display().to_string();
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!(
            "{text}[test_connector.google]\nrecords_per_email = 2\neffects_log = \"{root}/effects.log\"\n\
             [test_connector.wix]\neffects_log = \"{root}/effects.log\"\n"
        ),
    )
    .unwrap();
    let (code, status) = d.dsr_json(&["run", "access", "--email", SEEDED_EMAIL, "--timeout", "60s"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["status"], "completed", "{status}");
    let found = modes(&d.data());
    assert!(
        found.iter().any(|(p, _, _)| p.ends_with("ledger.db")),
        "the ledger is under the data dir: {found:?}"
    );
    assert!(
        found.iter().any(|(p, _, _)| p.extension().is_some_and(|e| e == "zip")),
        "the bundle is under the data dir: {found:?}"
    );
    let loose: Vec<_> = found
        .iter()
        .filter(|(_, dir, mode)| *mode != if *dir { 0o700 } else { 0o600 })
        .map(|(p, dir, mode)| format!("{} {} {mode:o}", if *dir { "dir" } else { "file" }, p.display()))
        .collect();
    assert!(loose.is_empty(), "readable by others: {loose:#?}");
}

/// A staging file object_store writes before it renames it into place (`<name>#<n>`).
fn staging(dir: &Path, name: &str, age: Duration) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"half a bundle").unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    path
}

#[tokio::test]
async fn retention_removes_staging_leftovers_older_than_a_day_and_keeps_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let queue = format!("sqlite://{}/queue.db", dir.path().display());
    let settings = util::fast_settings(&queue, "files", &export);
    let engine = util::engine(&format!("sqlite://{}/ledger.db", dir.path().display()), settings).await;
    let old = staging(&export, "bundles/req-1.zip#1", Duration::from_secs(2 * 86_400));
    let old_nested = staging(
        &export,
        "spool/req-1/google/1/contacts.jsonl#12",
        Duration::from_secs(30 * 3_600),
    );
    let fresh = staging(&export, "bundles/req-2.zip#1", Duration::from_secs(60));
    let kept = staging(&export, "bundles/old#notes.txt", Duration::from_secs(2 * 86_400));
    let report = dsr_jobs::retention::run(&engine, chrono::Utc::now()).await.unwrap();
    assert!(!old.exists(), "a day-old staging leftover is removed");
    assert!(!old_nested.exists(), "in any folder");
    assert!(fresh.exists(), "a write in progress is left alone");
    assert!(kept.exists(), "a name with # that is no staging name is not touched");
    assert_eq!(report.staging_removed, 2);
}

#[test]
fn settings_show_no_key_bytes_or_queue_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = util::fast_settings("redis://dsr:qu3ue-pass@127.0.0.1:1/0", "files", dir.path());
    settings.log_key = b"LOG-KEY-0123456789".to_vec();
    settings.pseudonym_key = b"PSEUDONYM-KEY-0123456789".to_vec();
    let shown = format!("{settings:?}");
    for secret in [&settings.log_key, &settings.pseudonym_key] {
        assert!(!shown.contains(&*String::from_utf8_lossy(secret)), "{shown}");
        assert!(!shown.contains(&format!("{secret:?}")), "{shown}");
        let bytes = secret.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", ");
        assert!(!shown.contains(&bytes), "{shown}");
    }
    assert!(!shown.contains("qu3ue-pass"), "{shown}");
    assert!(
        shown.contains("log_key"),
        "the field is named, its value hidden: {shown}"
    );
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn url_passwords_never_appear_in_doctor_or_in_errors() {
    let store = format!("postgres://dsr:pg-s3cret-pw@127.0.0.1:{}/dsr", closed_port());
    let queue = format!("redis://:redis-s3cret-pw@127.0.0.1:{}/0", closed_port());
    let d = Deployment::shared(&store, &queue, "files", "");
    // Side by side: each waits out the ledger's connect timeout.
    let spawn = |args: &[&str]| {
        d.command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run dsr")
    };
    let running = [
        spawn(&["doctor"]),
        spawn(&["--json", "doctor"]),
        spawn(&["status", "nope"]),
        spawn(&["worker"]),
    ];
    let [doctor, doctor_json, status, worker] = running.map(|c| c.wait_with_output().expect("dsr output"));
    for (what, out) in [
        ("doctor", &doctor),
        ("doctor --json", &doctor_json),
        ("status", &status),
        ("worker", &worker),
    ] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{what} with nothing reachable fails: {text}");
        assert!(
            !text.contains("pg-s3cret-pw") && !text.contains("redis-s3cret-pw"),
            "{what} printed a password: {text}"
        );
    }
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.contains("ledger") && text.contains("queue"),
        "doctor names both: {text}"
    );

    // A URL dsr cannot use at all is named in the error, without its password.
    let odd = Deployment::shared("mysql://dsr:my-s3cret-pw@127.0.0.1:1/dsr", &queue, "files", "");
    for args in [&["status", "nope"][..], &["doctor"][..]] {
        let out = odd.dsr(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("mysql://"), "{args:?} names the url: {text}");
        assert!(!text.contains("my-s3cret-pw"), "{args:?} printed a password: {text}");
    }
}

#[tokio::test]
async fn a_reachable_ledger_and_the_worker_start_line_show_the_url_without_its_password() {
    let db = util::pg_database().await;
    let role = util::unique("dsr_files_");
    let password = util::unique("pw-");
    let admin_url = format!("{}/postgres", util::postgres_server());
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("postgres admin");
    for sql in [
        format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"),
        format!("ALTER DATABASE \"{}\" OWNER TO \"{role}\"", db.name),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .expect("set up role");
    }
    let server = util::postgres_server();
    let host = server.rsplit('@').next().expect("host");
    let store = format!("postgres://{role}:{password}@{host}/{}", db.name);
    let d = Deployment::sqlite("");
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text.replace(&format!("sqlite://{}/data/ledger.db", d.path().display()), &store);
    assert!(text.contains(&store));
    std::fs::write(&d.config, text).unwrap();
    let shown = format!("postgres://{host}/{}", db.name);

    let doctor = d.command().arg("doctor").output().expect("doctor");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    );
    assert!(out.contains(&format!("at {shown} reachable")), "{out}");
    assert!(!out.contains(&password), "{out}");

    let mut worker = d
        .command()
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker");
    let mut first = String::new();
    let stderr = worker.stderr.take().expect("stderr");
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        line
    });
    if let Ok(Ok(line)) = tokio::time::timeout(Duration::from_secs(60), read).await {
        first = line;
    }
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(first.contains(&shown), "the start line names the ledger: {first}");
    assert!(!first.contains(&password), "{first}");

    db.drop_db().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{role}\"")))
        .execute(&admin)
        .await;
    admin.close().await;
}
