//! The export storage as several machines share it: spools, bundles and confirmations in an
//! S3-compatible store (moto's S3 server, started per test), and a local directory that
//! cannot be written.

mod util;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::Deployment;

const BUCKET: &str = "dsr-exports";

/// An S3-compatible server on a free port, stopped when dropped.
struct S3 {
    child: Child,
    endpoint: String,
}

impl S3 {
    async fn start() -> S3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("moto_server: {e}; run the suite with scripts/test, which installs it"));
        let s3 = S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        let client = dsr_connector::http::http_client(Duration::from_secs(10)).unwrap();
        loop {
            match client.put(format!("{}/{BUCKET}", s3.endpoint)).send().await {
                Ok(r) if r.status().is_success() => return s3,
                _ if started.elapsed() > Duration::from_secs(30) => panic!("moto_server did not start"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The keys in the bucket under `prefix`.
    async fn keys(&self, prefix: &str) -> Vec<String> {
        let client = dsr_connector::http::http_client(Duration::from_secs(10)).unwrap();
        let body = client
            .get(format!("{}/{BUCKET}?list-type=2&prefix={prefix}", self.endpoint))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(String::from)
            .collect()
    }

    /// An object, read through the library's own store client (signed requests).
    async fn get(&self, key: &str) -> Vec<u8> {
        let options = [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_region", "eu-north-1"),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let store = dsr_jobs::storage::ExportStore::from_url(&format!("s3://{BUCKET}"), &options).unwrap();
        store.get(&dsr_jobs::storage::key(key)).await.unwrap().to_vec()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deployment whose export storage is the bucket, under `eu/`, the secret key read from a
/// file as every secret is.
fn on_s3(s3: &S3, extra: &str) -> Deployment {
    let d = Deployment::sqlite(extra);
    let secret = d.path().join("s3-secret");
    std::fs::write(&secret, "testing\n").unwrap();
    let text = std::fs::read_to_string(&d.config).unwrap();
    let local = format!("[export]\ndir = \"{}/data/export\"\n", d.path().display());
    assert!(text.contains(&local));
    let text = text.replace(
        &local,
        &format!(
            "[export]\nstore = \"s3://{BUCKET}/eu\"\n\
             [export.store_options]\naws_endpoint = \"{}\"\naws_allow_http = \"true\"\naws_region = \"eu-north-1\"\n\
             aws_access_key_id = \"testing\"\naws_secret_access_key = \"file:{}\"\n",
            s3.endpoint,
            secret.display()
        ),
    );
    std::fs::write(&d.config, text).unwrap();
    d
}

#[tokio::test]
async fn an_access_bundle_is_assembled_in_an_s3_store_and_verifies_from_there() {
    let s3 = S3::start().await;
    let d = on_s3(
        &s3,
        "[test_connector.google]\nrecords_per_email = 3\n[test_connector.microsoft365]\n",
    );
    let (code, doctor) = util::dsr_json_async(&d, &["doctor"]).await;
    let storage = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "export storage")
        .unwrap();
    assert_eq!(storage["ok"], true, "{doctor} (exit {code})");
    assert_eq!(s3.keys("").await, Vec::<String>::new(), "the doctor's probe is removed");

    let (code, status) = util::dsr_json_async(&d, &["run", "access", "--email", util::SEEDED_EMAIL]).await;
    assert_eq!(code, 0, "{status}");
    let id = status["id"].as_str().unwrap();
    let location = status["bundle"].as_str().unwrap();
    assert_eq!(location, format!("s3://{BUCKET}/eu/dsr-{id}.zip"));
    assert_eq!(
        s3.keys("eu/").await,
        [format!("eu/dsr-{id}.zip")],
        "the spools are gone once the bundle is written"
    );
    assert!(!d.data().join("export").exists(), "nothing went to the local directory");

    // The bundle in the bucket is a whole ZIP whose files match their manifest.
    let bytes = s3.get(&format!("eu/dsr-{id}.zip")).await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let manifest: Value = serde_json::from_reader(zip.by_name("manifest.json").unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["path"] == "google/contacts.json"), "{manifest}");
    for file in files {
        let mut entry = zip.by_name(file["path"].as_str().unwrap()).unwrap();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&content);
        assert_eq!(file["sha256"].as_str().unwrap(), hex(&digest), "{}", file["path"]);
    }

    // `dsr verify` takes the location status printed (this deployment signs nothing).
    let (code, verdict) = util::dsr_json_async(&d, &["verify", "--allow-unsigned", location]).await;
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict["ok"], true);
}

#[tokio::test]
async fn an_erasure_confirmation_lands_in_the_s3_store() {
    let s3 = S3::start().await;
    let d = on_s3(&s3, "[test_connector.wix]\n");
    let (code, status) = util::dsr_json_async(&d, &["run", "erasure", "--email", util::SEEDED_EMAIL]).await;
    assert_eq!(code, 0, "{status}");
    let id = status["id"].as_str().unwrap();
    assert_eq!(
        status["confirmation"].as_str().unwrap(),
        format!("s3://{BUCKET}/eu/dsr-{id}-confirmation.json")
    );
    let document: Value = serde_json::from_slice(&s3.get(&format!("eu/dsr-{id}-confirmation.json")).await).unwrap();
    assert_eq!(document["request_id"], id);
    let html = String::from_utf8(s3.get(&format!("eu/dsr-{id}-confirmation.html")).await).unwrap();
    assert!(html.contains(id));
}

#[tokio::test]
async fn a_store_option_with_a_typo_or_a_literal_secret_is_refused_before_anything_runs() {
    let s3 = S3::start().await;
    let d = on_s3(&s3, "[test_connector.google]\n");
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, text.replace("aws_region", "aws_regoin")).unwrap();
    let out = d.dsr(&["run", "access", "--email", util::SEEDED_EMAIL]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(util::stderr(&out).contains("aws_regoin"), "{}", util::stderr(&out));

    let secret_file = format!("file:{}", d.path().join("s3-secret").display());
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text
        .replace("aws_regoin", "aws_region")
        .replace(&secret_file, "hunter2");
    std::fs::write(&d.config, text).unwrap();
    let out = d.dsr(&["run", "access", "--email", util::SEEDED_EMAIL]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    let err = util::stderr(&out);
    assert!(
        err.contains("aws_secret_access_key") && !err.contains("hunter2"),
        "{err}"
    );
    assert_eq!(s3.keys("").await, Vec::<String>::new());
}

#[test]
fn a_spool_that_cannot_be_written_fails_the_task_clearly_and_leaves_no_partial_files() {
    let d = Deployment::sqlite("[test_connector.google]\n");
    // A file where the spool folder should be: every spool write fails, as on a full disk.
    let export = d.data().join("export");
    std::fs::create_dir_all(&export).unwrap();
    std::fs::write(export.join("spool"), b"not a folder").unwrap();
    let config = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, config.replace("[worker]\n", "[worker]\nmax_attempts = 2\n")).unwrap();
    let (code, status) = d.dsr_json(&["run", "access", "--email", util::SEEDED_EMAIL]);
    assert_ne!(code, 0, "{status}");
    let task = util::task(&status, "google");
    assert_eq!(task["status"], "failed", "{status}");
    let error = task["error"].as_str().unwrap();
    assert!(
        error.contains("export storage") && error.contains("spool"),
        "the error says where: {error}"
    );
    assert!(!error.contains(util::SEEDED_EMAIL), "{error}");
    // The bundle says what failed; beside it nothing half-written is left.
    let bundle = format!("dsr-{}.zip", status["id"].as_str().unwrap());
    let mut names: Vec<String> = std::fs::read_dir(&export)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [bundle, "spool".to_string()], "no staging files: {names:?}");
}

#[test]
fn a_bundle_that_cannot_be_stored_is_named_in_status_and_written_once_it_can() {
    let d = Deployment::sqlite("[test_connector.google]\n");
    let (code, enqueued) = d.dsr_json(&["enqueue", "access", "--email", util::SEEDED_EMAIL]);
    assert_eq!(code, 0, "{enqueued}");
    let id = enqueued["id"].as_str().unwrap().to_string();
    // A folder where the bundle should go: every attempt to store it fails, as on a full disk.
    let blocker = d.data().join("export").join(format!("dsr-{id}.zip"));
    std::fs::create_dir_all(blocker.join("in-the-way")).unwrap();
    let mut worker = d.command().arg("worker").stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        let (_, status) = d.dsr_json(&["status", &id]);
        if status["finalize_error"].is_string() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{status}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["status"], "in_progress");
    let error = status["finalize_error"].as_str().unwrap();
    assert!(error.contains(&format!("dsr-{id}.zip")), "names the object: {error}");
    let text = String::from_utf8(d.dsr(&["status", &id]).stdout).unwrap();
    assert!(
        text.contains("not ended") && text.contains("retried every sweep"),
        "{text}"
    );

    std::fs::remove_dir_all(&blocker).unwrap();
    let started = Instant::now();
    let status = loop {
        let (_, status) = d.dsr_json(&["status", &id]);
        if status["status"] == "completed" {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sweep did not finish it: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    worker.kill().ok();
    worker.wait().ok();
    assert!(status["finalize_error"].is_null(), "{status}");
    assert!(blocker.is_file(), "the bundle was written once the way was clear");
    // The audit log chained the failure's code, its words beside the chain.
    let (code, events) = d.dsr_json(&["audit", "events", &id]);
    assert_eq!(code, 0, "{events}");
    let failed = events["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["event"] == "finalize.failed"))
        .unwrap_or_else(|| panic!("no finalize.failed event: {events}"));
    assert_eq!(failed["detail"]["code"], "finalize_failed");
    assert!(
        failed["note"]
            .as_str()
            .is_some_and(|n| n.contains(&format!("dsr-{id}.zip"))),
        "{failed}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
