//! dsr as an OpenDSR controller: `[processors.opendsr.<name>]` against the fake OpenDSR
//! processor (`fixtures/src/opendsr`, written from the specification apart from the
//! connector). Requests are submitted once, in the specification's shape; the task waits
//! while the processor works; a signed callback makes it finish; an access request's results
//! reach the bundle; a callback with a bad signature, or from a processor whose certificate
//! is not the pinned one, is refused.

mod util;

use std::time::{Duration, Instant};

use dsr_fixtures::opendsr::{CallbackSigning, FakeOpenDsr, OpenDsrOptions, Status};
use dsr_fixtures::pki::TestPki;
use dsr_opendsr::{Pin, SigningIdentity};
use serde_json::{Value, json};
use util::free_port;
use util::server::Server;
use util::{Deployment, SEEDED_EMAIL};

const TOKEN: &str = "Bearer acme-t0ken";

fn options(cert: &str, key: &str) -> OpenDsrOptions {
    let mut options = OpenDsrOptions::new(cert, key);
    // The fake listens on 127.0.0.1, which the test certificate names too.
    options.domain = "127.0.0.1".into();
    options.auth_header = Some(("Authorization".into(), TOKEN.into()));
    options
}

/// `[processors.opendsr.<name>]` for `fake`, pinned to `pin`.
fn section(name: &str, fake: &FakeOpenDsr, pin: &Pin, pki: &TestPki, serve_port: u16) -> String {
    format!(
        "[processors.opendsr.{name}]\nurl = \"{}\"\ncertificate_pin = \"{pin}\"\nauth_value = \"file:{}\"\n\
         trust_roots = \"{}\"\npoll = \"1s\"\ncallback_url = \"http://127.0.0.1:{serve_port}/opendsr/callbacks/{name}\"\n",
        fake.api_url(),
        pki.dir.join("acme-token").display(),
        pki.dir.join("ca.pem").display(),
    )
}

struct Setup {
    d: Deployment,
    fake: FakeOpenDsr,
    serve_port: u16,
    /// Holds the CA and leaves until the test ends.
    _pki: tempfile::TempDir,
}

/// The test CA and leaf, the fake processor `acme` with that leaf, and a deployment with
/// `acme` configured (pinned to the leaf) and `extra` appended.
async fn setup((dir, pki): (tempfile::TempDir, TestPki), extra: impl Fn(&TestPki, u16) -> String) -> Setup {
    std::fs::write(pki.dir.join("acme-token"), TOKEN).unwrap();
    let fake = FakeOpenDsr::start(options(&pki.cert_pem, &pki.key_pem)).await.unwrap();
    let serve_port = free_port();
    let d = Deployment::sqlite(&format!(
        "[server]\nlisten = \"127.0.0.1:{serve_port}\"\n{}{}",
        section("acme", &fake, &leaf_pin(&pki), &pki, serve_port),
        extra(&pki, serve_port)
    ));
    Setup {
        d,
        fake,
        serve_port,
        _pki: dir,
    }
}

fn test_pki() -> (tempfile::TempDir, TestPki) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::make(dir.path(), false);
    (dir, pki)
}

fn leaf_pin(pki: &TestPki) -> Pin {
    Pin::of(&dsr_opendsr::signing::read_chain(&pki.cert_pem).unwrap()[0]).unwrap()
}

fn enqueue(d: &Deployment, kind: &str) -> String {
    let out = d.dsr(&["enqueue", kind, "--email", SEEDED_EMAIL]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn status(d: &Deployment, id: &str) -> Value {
    d.dsr_json(&["status", id]).1
}

/// Waits until `check` holds for the request's status.
async fn wait_status(d: &Deployment, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let now = status(d, id);
        if check(&now) {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never {what}: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the fake holds one request more than `before`; the newest.
async fn submitted(fake: &FakeOpenDsr, before: usize) -> dsr_fixtures::opendsr::ReceivedRequest {
    let started = Instant::now();
    loop {
        let requests = fake.requests();
        if requests.len() > before {
            return requests[requests.len() - 1].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "nothing was submitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn events(d: &Deployment, id: &str) -> Vec<Value> {
    let (code, events) = d.dsr_json(&["audit", "events", id]);
    assert_eq!(code, 0, "{events}");
    events["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_request_is_submitted_once_waits_and_a_signed_callback_completes_it() {
    let s = setup(test_pki(), |_, _| String::new()).await;
    // doctor reaches the processor and trusts its pinned certificate.
    let (code, doctor) = s.d.dsr_json(&["doctor"]);
    let check = doctor["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == "processor opendsr.acme"))
        .unwrap_or_else(|| panic!("no check for opendsr.acme: {doctor}"));
    assert_eq!(check["ok"], true, "{check}");
    assert!(check["detail"].to_string().contains("pinned key"), "{check}");
    assert_eq!(code, 0, "{doctor}");
    let _server = Server::start(&s.d, true);
    let id = enqueue(&s.d, "access");
    let sent = submitted(&s.fake, 0).await;
    // In the specification's shape, with the subject's address and dsr's callback URL.
    assert_eq!(sent.subject_request_type, "access");
    assert_eq!(sent.regulation, "gdpr");
    assert_eq!(sent.identities.len(), 1);
    assert_eq!(
        (
            sent.identities[0].identity_type.as_str(),
            sent.identities[0].identity_format.as_str()
        ),
        ("email", "raw")
    );
    assert_eq!(sent.identities[0].identity_value, SEEDED_EMAIL);
    assert_eq!(
        sent.status_callback_urls,
        vec![format!("http://127.0.0.1:{}/opendsr/callbacks/acme", s.serve_port)]
    );
    assert!(dsr_opendsr::protocol::is_lowercase_uuid_v4(&sent.subject_request_id));
    // submitted_time is when the subject asked (the request's receipt), not when dsr sent it.
    let body: Value = serde_json::from_str(&sent.body).unwrap();
    let received = status(&s.d, &id)["received_at"].as_str().unwrap().to_string();
    let asked = chrono::DateTime::parse_from_rfc3339(body["submitted_time"].as_str().unwrap()).unwrap();
    let received = chrono::DateTime::parse_from_rfc3339(&received).unwrap();
    assert!((asked - received).num_seconds().abs() <= 1, "{asked} vs {received}");

    // The task waits for the processor, looking again every second without submitting again.
    let waiting = wait_status(&s.d, &id, "waiting", |st| {
        util::task(st, "opendsr.acme")["error"]
            .to_string()
            .contains("still fulfilling")
    })
    .await;
    assert_eq!(waiting["status"], "in_progress", "{waiting}");
    let started = Instant::now();
    while s
        .fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("GET /v1/requests/"))
        .count()
        < 3
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not polled: {:?}",
            s.fake.calls()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        s.fake.requests().len(),
        1,
        "looked again, submitted once: {:?}",
        s.fake.calls()
    );
    assert_eq!(
        s.fake.calls().iter().filter(|c| c.starts_with("POST ")).count(),
        1,
        "{:?}",
        s.fake.calls()
    );

    // The processor finishes and calls back, signed: dsr verifies it, records it, finishes.
    s.fake.complete(&sent.subject_request_id).await;
    let callbacks = s.fake.callbacks();
    assert_eq!(callbacks.last().and_then(|c| c.status), Some(202), "{callbacks:?}");
    let done = wait_status(&s.d, &id, "completed", |st| st["status"] == "completed").await;
    let task = util::task(&done, "opendsr.acme");
    assert_eq!(task["status"], "succeeded", "{done}");
    let all = events(&s.d, &id);
    let heard = all
        .iter()
        .find(|e| e["event"] == "opendsr.processor_callback")
        .unwrap_or_else(|| panic!("no callback recorded: {all:?}"));
    assert_eq!(heard["detail"]["status"], "completed");
    assert_eq!(heard["detail"]["subject_request_id"], sent.subject_request_id.as_str());
    assert!(heard["detail"]["results_url"].as_str().is_some(), "{heard}");

    // The processor's results are in the bundle, and the bundle verifies.
    let bundle = done["bundle"].as_str().expect("a bundle");
    let out = s.d.dsr(&["verify", "--allow-unsigned", bundle]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        util::stderr(&out)
    );
    let zip = std::fs::File::open(bundle).unwrap();
    let mut archive = zip::ZipArchive::new(zip).unwrap();
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let results = names
        .iter()
        .find(|n| n.contains("opendsr") && n.ends_with(".json"))
        .unwrap_or_else(|| panic!("no OpenDSR results in {names:?}"))
        .clone();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name(&results).unwrap(), &mut text).unwrap();
    assert!(text.contains(&sent.subject_request_id), "{text}");

    // A portability request goes as one.
    let portability = enqueue(&s.d, "portability");
    let sent = submitted(&s.fake, 1).await;
    assert_eq!(sent.subject_request_type, "portability");

    // Cancelled in dsr while pending at the processor: cancelled there too (§9).
    let out = s.d.dsr(&["cancel", &portability]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));
    assert!(
        util::stderr(&out).contains("cancelled at the processor"),
        "{}",
        util::stderr(&out)
    );
    assert_eq!(
        s.fake.request(&sent.subject_request_id).unwrap().status,
        Status::Cancelled
    );
    let withdrawn = events(&s.d, &portability);
    assert!(
        withdrawn
            .iter()
            .any(|e| e["event"] == "task.withdrawn" && e["processor"] == "opendsr.acme"),
        "{withdrawn:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_waits_for_the_processor_and_forged_or_unpinned_callbacks_are_refused() {
    // A second processor whose discovery publishes a certificate from the same CA but not
    // the pinned key (a processor that is not who the config says).
    let pki = test_pki();
    let (other_key, other_cert) = pki.1.another_leaf("other");
    let impostor = FakeOpenDsr::start(options(&other_cert, &other_key)).await.unwrap();
    let s = setup(pki, |pki, serve_port| {
        section("impostor", &impostor, &leaf_pin(pki), pki, serve_port)
    })
    .await;
    let _server = Server::start(&s.d, true);
    let id = enqueue(&s.d, "erasure");
    let sent = submitted(&s.fake, 0).await;
    assert_eq!(sent.subject_request_type, "erasure");
    wait_status(&s.d, &id, "waiting", |st| {
        util::task(st, "opendsr.acme")["error"]
            .to_string()
            .contains("still fulfilling")
    })
    .await;

    // A callback signed with a key that is not the certificate's: 400, and nothing changes.
    s.fake.set_callback_signing(CallbackSigning::WrongKey);
    s.fake.set_status(&sent.subject_request_id, Status::InProgress).await;
    let forged = s.fake.callbacks();
    assert_eq!(forged.last().and_then(|c| c.status), Some(400), "{forged:?}");
    assert!(
        !events(&s.d, &id)
            .iter()
            .any(|e| e["event"] == "opendsr.processor_callback"),
        "a forged callback is not evidence"
    );

    // A callback for the impostor, validly signed for the certificate it publishes, which
    // is not the pinned one: 401.
    let body = serde_json::to_vec(&json!({
        "controller_id": "dsr-test-controller",
        "expected_completion_time": "2027-01-01T00:00:00Z",
        "status_callback_url": format!("http://127.0.0.1:{}/opendsr/callbacks/impostor", s.serve_port),
        "subject_request_id": sent.subject_request_id,
        "request_status": "completed",
    }))
    .unwrap();
    let signer = SigningIdentity::from_pem(&other_key, &other_cert).unwrap();
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("http://127.0.0.1:{}/opendsr/callbacks/impostor", s.serve_port))
        .header("content-type", "application/json")
        .header("x-opendsr-processor-domain", "127.0.0.1")
        .header("x-opendsr-signature", signer.sign(&body).unwrap())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let refusal: Value = answer.json().await.unwrap();
    assert!(
        refusal["error"]["errors"][0]["message"].to_string().contains("pinned"),
        "{refusal}"
    );
    // The same body sent to acme's URL, signed by the impostor's key: not acme's signature.
    let answer = http
        .post(format!("http://127.0.0.1:{}/opendsr/callbacks/acme", s.serve_port))
        .header("x-opendsr-processor-domain", "127.0.0.1")
        .header("x-opendsr-signature", signer.sign(&body).unwrap())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);

    // The real processor finishes; its good callback completes the erasure, with the
    // processor's receipt as the item's evidence.
    s.fake.set_callback_signing(CallbackSigning::Good);
    s.fake.complete(&sent.subject_request_id).await;
    // The impostor's task fails, so the request ends partially completed.
    let done = wait_status(&s.d, &id, "ended", |st| st["status"] == "partially_completed").await;
    assert_eq!(util::task(&done, "opendsr.acme")["status"], "succeeded", "{done}");
    let (code, plan) = s.d.dsr_json(&["plan", &id]);
    assert_eq!(code, 0, "{plan}");
    let text = plan.to_string();
    assert!(text.contains(&sent.subject_request_id), "{text}");
    assert_eq!(s.fake.requests().len(), 1, "submitted once");
    // The impostor's task failed: its answers are signed by a certificate not pinned.
    let impostor = util::task(&done, "opendsr.impostor");
    assert_eq!(impostor["status"], "failed", "{done}");
    assert!(impostor["error"].to_string().contains("pinned"), "{impostor}");
    let failed = events(&s.d, &id)
        .into_iter()
        .find(|e| e["event"] == "task.failed" && e["processor"] == "opendsr.impostor")
        .expect("the impostor's task failed on record");
    assert_eq!(failed["detail"]["code"], "permanent:certificate_untrusted", "{failed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancellation_stands_when_a_processor_cannot_be_asked_and_says_so() {
    let pki = test_pki();
    let token_file = pki.1.dir.join("acme-token");
    let s = setup(pki, |_, _| String::new()).await;
    let _server = Server::start(&s.d, true);
    let id = enqueue(&s.d, "access");
    let sent = submitted(&s.fake, 0).await;
    // The section can no longer be built here (its credential is gone).
    std::fs::remove_file(&token_file).unwrap();
    let out = s.d.dsr(&["cancel", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));
    assert_eq!(status(&s.d, &id)["status"], "cancelled");
    let all = events(&s.d, &id);
    let failed = all
        .iter()
        .find(|e| e["event"] == "task.withdraw_failed" && e["processor"] == "opendsr.acme")
        .unwrap_or_else(|| panic!("not on record: {all:?}"));
    assert!(
        failed["detail"]["error"].to_string().contains("ask the processor"),
        "{failed}"
    );
    assert_eq!(
        s.fake.request(&sent.subject_request_id).unwrap().status,
        Status::Pending,
        "the processor was not asked"
    );
}
