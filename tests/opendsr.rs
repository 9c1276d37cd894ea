//! dsr as an OpenDSR processor, driven by an OpenDSR client written from the specification
//! alone (`tests/opendsr/client.py`, Python's `cryptography`; it has not read dsr's code):
//! discovery and the certificate chain, create / status / cancel under both the OpenDSR and
//! the OpenGDPR names, each answer's signature, refusals in the specification's error shape,
//! and the signed status callbacks the worker sends — which never go to a host the config
//! does not name.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dsr_fixtures::pki::TestPki;
use serde_json::Value;
use util::Deployment;
use util::free_port;
use util::server::{Server, token};

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/opendsr/client.py")
}

/// The client, pointed at `base`, trusting the test CA.
struct OpenDsrClient {
    base: String,
    ca: PathBuf,
}

impl OpenDsrClient {
    fn command(&self, token: Option<&str>, args: &[&str]) -> Command {
        let mut command = Command::new("python3");
        command
            .arg(client_script())
            .arg("--base")
            .arg(&self.base)
            .arg("--ca")
            .arg(&self.ca);
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command.args(args);
        command
    }

    /// Runs a subcommand that must pass the client's own checks; its JSON result.
    fn run(&self, token: Option<&str>, args: &[&str]) -> Value {
        let out = self.command(token, args).output().expect("python3 runs");
        assert!(
            out.status.success(),
            "client {args:?} failed its checks:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("client {args:?} printed no JSON: {e}"))
    }

    /// Creates a request for the seeded subject with `extra` arguments that must be refused
    /// with 400 in the specification's error shape; the first error's reason.
    fn refused(&self, token: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", "--type", "access", "--email", util::SEEDED_EMAIL];
        args.extend_from_slice(extra);
        let result = self.run(Some(token), &args);
        assert_eq!(result["status"], 400, "{extra:?}: {result}");
        assert_eq!(result["error_shape_ok"], true, "{extra:?}: {result}");
        result["body"]["error"]["errors"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Creates a request of `kind` for the seeded subject, with `callback`; its id.
    fn created_with_callback(&self, token: &str, kind: &str, callback: &str) -> String {
        self.created(
            token,
            &["--type", kind, "--email", util::SEEDED_EMAIL, "--callback", callback],
        )
    }

    /// Creates a request that must be accepted; its subject_request_id.
    fn created(&self, token: &str, args: &[&str]) -> String {
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        let result = self.run(Some(token), &all);
        assert_eq!(result["status"], 201, "{result}");
        assert_eq!(result["signature_valid"], true, "{result}");
        result["subject_request_id"].as_str().expect("an id").to_string()
    }
}

/// A deployment serving OpenDSR over TLS at `https://localhost:PORT/opendsr`, its chain
/// issued by a test CA, callbacks allowed to `localhost` (trusting the same CA).
struct Processor {
    d: Deployment,
    pki: TestPki,
    client: OpenDsrClient,
    _dir: tempfile::TempDir,
}

fn processor() -> Processor {
    let port = free_port();
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::make(pki_dir.path(), false);
    let dir = pki.dir.display();
    let d = Deployment::sqlite(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{dir}/leaf.pem\"\ntls_key = \"{dir}/leaf.key\"\n\
         [opendsr]\npublic_url = \"https://localhost:{port}/opendsr\"\nsigning_key = \"file:{dir}/leaf.key\"\n\
         certificate = \"file:{dir}/leaf.pem\"\ncallback_allow = [\"localhost\"]\ncallback_roots = \"{dir}/ca.pem\"\n\
         callback_every = \"1s\"\n\
         [test_connector.google]\nrecords_per_email = 1\n[test_connector.wix]\n"
    ));
    let client = OpenDsrClient {
        base: format!("https://localhost:{port}/opendsr/v1"),
        ca: pki.dir.join("ca.pem"),
    };
    Processor {
        d,
        pki,
        client,
        _dir: pki_dir,
    }
}

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `dsr worker` with `config`.
fn worker(d: &Deployment, config: &Path) -> Running {
    let mut command = Command::new(util::dsr_bin());
    command
        .current_dir(d.path())
        .arg("--config")
        .arg(config)
        .arg("worker")
        .env_remove("DSR_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Running(command.spawn().expect("start dsr worker"))
}

/// The client's callback listener on `port`, until each `id:status` arrived verified.
fn listener(p: &Processor, port: u16, until: &[String]) -> Child {
    let ready = p.pki.dir.join(format!("listening-{port}"));
    let dir = &p.pki.dir;
    let mut args: Vec<String> = vec![
        "listen".into(),
        "--port".into(),
        port.to_string(),
        "--cert".into(),
        dir.join("leaf.pem").display().to_string(),
        "--key".into(),
        dir.join("leaf.key").display().to_string(),
        "--path".into(),
        "/opendsr/callbacks".into(),
        "--timeout".into(),
        "120".into(),
        "--ready-file".into(),
        ready.display().to_string(),
    ];
    for pair in until {
        args.extend(["--until".into(), pair.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = p
        .client
        .command(None, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the callback listener");
    let started = Instant::now();
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the listener did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Events of request `id` through the API (scope audit:read).
async fn events(base: &str, ca: &Path, auditor: &str, request_id: &str) -> Vec<Value> {
    dsr_connector::http::install_crypto_provider();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let answer = http
        .get(format!("{base}/v1/requests/{request_id}/events"))
        .bearer_auth(auditor)
        .send()
        .await
        .expect("the events route answers");
    assert!(answer.status().is_success(), "{}", answer.status());
    let body: Value = answer.json().await.expect("JSON");
    body["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_written_from_the_spec_creates_reads_cancels_and_verifies_signed_callbacks() {
    let p = processor();
    let server = Server::start(&p.d, false);
    let base = server.base.replace("127.0.0.1", "localhost");
    let partner = token(&p.d, "partner-cdp", "opendsr:submit");
    let other = token(&p.d, "other-partner", "opendsr:submit");
    let reader = token(&p.d, "crm", "requests:read");
    let auditor = token(&p.d, "auditor", "audit:read");
    let client = &p.client;

    // Discovery: public; the certificate chains to the CA, is issued for the domain.
    let discovery = client.run(None, &["discover"]);
    assert_eq!(discovery["api_version"], "2.0");
    assert_eq!(discovery["domain"], "localhost");
    let types = discovery["supported_subject_request_types"].to_string();
    for kind in ["access", "portability", "erasure"] {
        assert!(types.contains(kind), "{types}");
    }

    // Two requests with a callback each; the second cancelled while pending (no worker yet).
    let callback_port = free_port();
    let callback = format!("https://localhost:{callback_port}/opendsr/callbacks");
    let access = client.created_with_callback(&partner, "access", &callback);
    let erasure = client.created_with_callback(&partner, "erasure", &callback);
    let status = client.run(Some(&partner), &["status", &access]);
    assert_eq!(status["status"], 200, "{status}");
    assert_eq!(status["response"]["request_status"], "pending", "{status}");
    assert_eq!(status["response"]["controller_id"], "partner-cdp", "{status}");
    let cancelled = client.run(Some(&partner), &["cancel", &erasure]);
    assert_eq!(cancelled["status"], 202, "{cancelled}");
    assert_eq!(
        client.run(Some(&partner), &["status", &erasure])["response"]["request_status"],
        "cancelled"
    );

    // The OpenGDPR names answer too (§10.1), headers under their old names.
    let legacy = OpenDsrClient {
        base: client.base.clone(),
        ca: client.ca.clone(),
    };
    let mut legacy_create = legacy.command(
        Some(&partner),
        &[
            "--legacy",
            "create",
            "--type",
            "portability",
            "--email",
            util::SEEDED_EMAIL,
        ],
    );
    let out = legacy_create.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let legacy_created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(legacy_created["status"], 201, "{legacy_created}");

    // Refusals, in the specification's error shape; nobody sees another caller's request.
    assert_eq!(
        client.refused(&partner, &["--callback", "https://127.0.0.1:9/cb"]),
        "CallbackNotAllowed"
    );
    assert_eq!(client.refused(&partner, &["--omit", "regulation"]), "MissingField");
    assert_eq!(
        client.refused(&partner, &["--set", "regulation=\"ccpa\""]),
        "UnsupportedRegulation"
    );
    // The access request's id again, with another body (erasure here).
    let reused = client.run(
        Some(&partner),
        &[
            "create",
            "--type",
            "erasure",
            "--email",
            util::SEEDED_EMAIL,
            "--request-id",
            &access,
        ],
    );
    assert_eq!(reused["status"], 400, "an id used for another body: {reused}");
    assert_eq!(reused["body"]["error"]["errors"][0]["reason"], "DuplicateRequestId");
    assert_eq!(client.run(Some(&other), &["status", &access])["status"], 404);
    assert_eq!(client.run(Some(&other), &["cancel", &access])["status"], 404);
    assert_eq!(client.run(Some(&reader), &["status", &access])["status"], 403);
    assert_eq!(client.run(None, &["status", &access])["status"], 401);

    // The worker runs them; the listener verifies each callback's signature against the
    // discovery certificate and stops once both final statuses arrived.
    let listening = listener(
        &p,
        callback_port,
        &[format!("{access}:completed"), format!("{erasure}:cancelled")],
    );
    let _worker = worker(&p.d, &p.d.config);
    let heard = listening.wait_with_output().expect("the listener ends");
    assert!(
        heard.status.success(),
        "callbacks missing or unverified:\n{}\n{}",
        String::from_utf8_lossy(&heard.stdout),
        String::from_utf8_lossy(&heard.stderr)
    );
    let heard: Value = serde_json::from_slice(&heard.stdout).unwrap();
    assert_eq!(heard["rejected"], 0, "{heard}");
    let callbacks = heard["callbacks"].as_array().unwrap();
    let completed = callbacks
        .iter()
        .find(|c| c["subject_request_id"] == access.as_str() && c["request_status"] == "completed")
        .expect("the access request's completion");
    assert_eq!(completed["status_callback_url"], callback.as_str());
    let results_url = completed["results_url"]
        .as_str()
        .expect("a completed access offers results");
    assert!(
        completed["results_count"].as_u64().is_some_and(|n| n > 0),
        "{completed}"
    );
    assert!(
        callbacks
            .iter()
            .all(|c| c["subject_request_id"] != access.as_str() || c["request_status"] != "pending"),
        "pending is not a change: {heard}"
    );

    // The results are the request's bundle, for the controller that asked only.
    dsr_connector::http::install_crypto_provider();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(p.pki.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let bundle = http.get(results_url).bearer_auth(&partner).send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    let bytes = bundle.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"), "a ZIP");
    let foreign = http.get(results_url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(foreign.status(), 404);

    // Completed: no longer cancellable.
    let late = client.run(Some(&partner), &["cancel", &access]);
    assert_eq!(late["status"], 400, "{late}");
    assert_eq!(late["body"]["error"]["errors"][0]["reason"], "NotPending");
    let done = client.run(Some(&partner), &["status", &access]);
    assert_eq!(done["response"]["request_status"], "completed");
    assert_eq!(done["response"]["results_url"], results_url);

    // The audit chain records each callback sent.
    let request_id = {
        let (code, list) = p.d.dsr_json(&["list"]);
        assert_eq!(code, 0);
        let rows = list
            .as_array()
            .cloned()
            .or_else(|| list["requests"].as_array().cloned())
            .unwrap();
        rows.iter()
            .find(|r| r["kind"] == "access" && r["status"] == "completed")
            .and_then(|r| r["id"].as_str())
            .expect("the access request")
            .to_string()
    };
    let sent = events(&base, &p.pki.dir.join("ca.pem"), &auditor, &request_id).await;
    assert!(sent.iter().any(|e| e["event"] == "opendsr.callback_sent"), "{sent:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_to_a_host_taken_off_the_allow_list_is_never_sent() {
    let p = processor();
    let server = Server::start(&p.d, false);
    let base = server.base.replace("127.0.0.1", "localhost");
    let partner = token(&p.d, "partner-cdp", "opendsr:submit");
    let auditor = token(&p.d, "auditor", "audit:read");
    // Accepted while localhost was allowed; nothing listens there.
    let callback = format!("https://localhost:{}/opendsr/callbacks", free_port());
    let id = p.client.created_with_callback(&partner, "access", &callback);
    // The worker runs with localhost no longer on the list.
    let strict = p.d.path().join("strict.toml");
    let text = std::fs::read_to_string(&p.d.config).unwrap();
    std::fs::write(
        &strict,
        text.replace(
            "callback_allow = [\"localhost\"]",
            "callback_allow = [\"controller.example.no\"]",
        ),
    )
    .unwrap();
    let _worker = worker(&p.d, &strict);
    let request_id = {
        let (_, list) = p.d.dsr_json(&["list"]);
        let rows = list
            .as_array()
            .cloned()
            .or_else(|| list["requests"].as_array().cloned())
            .unwrap();
        rows[0]["id"].as_str().unwrap().to_string()
    };
    let started = Instant::now();
    let given_up = loop {
        let all = events(&base, &p.pki.dir.join("ca.pem"), &auditor, &request_id).await;
        if let Some(e) = all.iter().find(|e| e["event"] == "opendsr.callback_given_up") {
            break e.clone();
        }
        assert!(
            !all.iter().any(|e| e["event"] == "opendsr.callback_sent"),
            "sent to a host off the list: {all:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no callback was given up: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let detail = given_up.to_string();
    assert!(detail.contains("callback_allow"), "{detail}");
    assert!(detail.contains(&id), "{detail}");
    // Given up at the first attempt: the host was never connected to (a refused
    // connection would have been retried with backoff instead).
    assert!(detail.contains("\"attempts\":1"), "{detail}");
    drop(server);
}
