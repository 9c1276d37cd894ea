//! `dsr serve` over real HTTP: API tokens and their scopes, idempotent creation, problem
//! documents naming the field, the lockout after repeated bad tokens, health and readiness,
//! a request run end to end by `--with-worker`, and a graceful stop on SIGTERM.

mod util;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use util::server::{Server, token};
use util::{Deployment, SEEDED_EMAIL};

/// A deployment with scripted connectors and `[server] listen` on a free port.
fn deployment() -> Deployment {
    serving(Deployment::sqlite("[server]\nlisten = \"127.0.0.1:0\"\n"))
}

/// `d` with scripted connectors (its `[server] listen` already set).
fn serving(d: Deployment) -> Deployment {
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!("{text}[test_connector.google]\nrecords_per_email = 1\n[test_connector.wix]\n"),
    )
    .unwrap();
    d
}

fn client() -> reqwest::Client {
    dsr_connector::http::http_client(Duration::from_secs(30)).unwrap()
}

/// Sends `request`; its status, headers and JSON body (`Null` when not JSON), after checking
/// the answer against the server's own `/openapi.json`: the status is documented for the
/// operation, so is the content type, and the body validates against its schema. An error is
/// a problem document.
async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let (http, request) = request.build_split();
    let request = request.expect("a request");
    let (method, url) = (request.method().as_str().to_lowercase(), request.url().clone());
    let response = http.execute(request).await.expect("the server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "errors are problem documents: {body}"
        );
        assert_eq!(body["status"], status.as_u16(), "{body}");
        assert!(
            body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
            "{body}"
        );
    }
    let origin = url.origin().ascii_serialization();
    let document: Value = http
        .get(format!("{origin}/openapi.json"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the OpenAPI document")
        .json()
        .await
        .expect("the OpenAPI document is JSON");
    conforms(&document, &method, url.path(), status, &headers, &body);
    (status, headers, body)
}

/// Panics unless the answer is one `document` describes for `method` `path`.
fn conforms(
    document: &Value,
    method: &str,
    path: &str,
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) {
    let template = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find(|template| {
            let (a, b): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
            a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
        })
        .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"));
    let operation = &document["paths"][template][method];
    assert!(
        operation.is_object(),
        "{method} {template} is not in the OpenAPI document"
    );
    let documented = &operation["responses"][status.as_str()];
    assert!(documented.is_object(), "{method} {template} does not document {status}");
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media = documented["content"]
        .as_object()
        .and_then(|c| {
            c.iter()
                .find(|(documented, _)| content_type.split(';').next() == documented.split(';').next())
        })
        .map(|(_, media)| media)
        .unwrap_or_else(|| panic!("{method} {template} {status}: {content_type} is not documented"));
    if content_type.contains("json") {
        let mut schema = media["schema"].clone();
        schema["components"] = document["components"].clone();
        let validator = jsonschema::validator_for(&schema).expect("the document's schema compiles");
        if let Err(error) = validator.validate(body) {
            panic!("{method} {template} {status}: the body does not match the document: {error}\n{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_idempotency_and_problems_over_http() {
    let d = deployment();
    let writer = token(&d, "crm", "requests:write");
    let reader = token(&d, "helpdesk", "requests:read");
    let server = Server::start(&d, false);
    let http = client();
    let url = |path: &str| format!("{}{path}", server.base);

    let (status, _, body) = answer(http.get(url("/healthz"))).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok")),
        "no token needed"
    );
    let (status, _, body) = answer(http.get(url("/readyz"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["checks"],
        json!({"ledger": "ok", "queue": "ok", "export_storage": "ok"})
    );

    let (status, _, body) = answer(http.get(url("/v1/requests"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Created once, whatever the retries.
    let request = json!({"kind": "access", "email": [SEEDED_EMAIL], "lang": "en"});
    let post = |key: &str, body: &Value, token: &str| {
        http.post(url("/v1/requests"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
    };
    let (status, headers, first) = answer(post("form-17", &request, &writer)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(headers["location"], format!("/v1/requests/{id}").as_str());
    let (status, headers, again) = answer(post("form-17", &request, &writer)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], id.as_str(), "the retried POST returns the first request");
    assert_eq!(headers["idempotent-replayed"], "true");
    let (_, listed) = d.dsr_json(&["list"]);
    assert_eq!(listed["requests"].as_array().unwrap().len(), 1, "one request: {listed}");
    let other = json!({"kind": "erasure", "email": [SEEDED_EMAIL]});
    let (status, _, body) = answer(post("form-17", &other, &writer)).await;
    assert_eq!(status, StatusCode::CONFLICT, "the same key with another body: {body}");

    // Each scope only where it reaches.
    let (status, _, body) = answer(post("form-18", &request, &reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["detail"].as_str().unwrap().contains("requests:write"), "{body}");
    let (status, _, _) = answer(http.get(url("/v1/requests")).bearer_auth(&writer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a write token cannot read");
    let (status, _, page) = answer(http.get(url("/v1/requests")).bearer_auth(&reader)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["requests"][0]["id"], id.as_str());
    assert_eq!(page["next_cursor"], Value::Null);
    let (status, _, one) = answer(http.get(url(&format!("/v1/requests/{id}"))).bearer_auth(&reader)).await;
    assert_eq!(
        (status, one["kind"].as_str()),
        (StatusCode::OK, Some("access")),
        "{one}"
    );
    assert!(
        one["processors"][0].as_object().unwrap().contains_key("evidence"),
        "evidence in the single read (none yet: nothing ran): {one}"
    );
    assert_eq!(one["needs_attention"], false);
    let (status, _, _) = answer(http.get(url("/v1/requests/no-such-request")).bearer_auth(&reader)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = answer(http.get(url("/v1/requests?status=lost")).bearer_auth(&reader)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("status")),
        "{body}"
    );

    // Bad input names its field, in the API's words.
    for (body, code, field) in [
        (json!({"kind": "access"}), StatusCode::UNPROCESSABLE_ENTITY, "email"),
        (
            json!({"kind": "forget", "email": [SEEDED_EMAIL]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "kind",
        ),
        (
            json!({"kind": "access", "emails": [SEEDED_EMAIL]}),
            StatusCode::BAD_REQUEST,
            "emails",
        ),
        (
            json!({"kind": "access", "email": [SEEDED_EMAIL], "set": {"email": "ny@example.no"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "set",
        ),
        (
            json!({"kind": "access", "email": [SEEDED_EMAIL], "processors": ["microsoft365"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "processors",
        ),
    ] {
        let sent = http.post(url("/v1/requests")).bearer_auth(&writer).json(&body);
        let (status, _, problem) = answer(sent).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (code, Some(field)),
            "{body} → {problem}"
        );
        assert!(
            !problem["detail"].as_str().unwrap().contains("--"),
            "no CLI flags: {problem}"
        );
    }

    // The audit event names the token; the ledger holds no token in clear.
    let (code, events) = d.dsr_json(&["audit", "events", &id]);
    assert_eq!(code, 0, "{events}");
    assert!(events.to_string().contains("token:crm"), "{events}");
    for file in ["ledger.db", "ledger.db-wal"] {
        let bytes = std::fs::read(d.data().join(file)).unwrap_or_default();
        for shown in [&writer, &reader] {
            let secret = shown.rsplit('_').next().unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a token's secret is never stored ({file})"
            );
        }
    }

    // Cancelled over HTTP: the audit event names the token.
    let (status, _, cancelled) = answer(
        http.post(url(&format!("/v1/requests/{id}/cancel")))
            .bearer_auth(&writer),
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{cancelled}"
    );
    let (_, events) = d.dsr_json(&["audit", "events", &id]);
    let cancel = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "request.cancelled")
        .unwrap_or_else(|| panic!("{events}"));
    assert_eq!(cancel["detail"]["by"], "token:crm", "{cancel}");

    // A revoked token is refused from the next call on.
    let out = d.dsr(&["token", "revoke", "helpdesk"]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    let (status, _, _) = answer(http.get(url("/v1/requests")).bearer_auth(&reader)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.stop(), Some(0), "a graceful stop on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_bad_tokens_from_one_address_get_429_with_retry_after_but_valid_ones_pass() {
    let d = deployment();
    let good = token(&d, "monitor", "requests:read");
    let server = Server::start(&d, false);
    let http = client();
    let url = format!("{}/v1/requests", server.base);
    let forged = format!("{}_{}", &good[..good.rfind('_').unwrap()], "0".repeat(64));
    for n in 0..5 {
        let (status, _, _) = answer(http.get(&url).bearer_auth(&forged)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "bad token {n}");
    }
    for attempt in [http.get(&url).bearer_auth(&forged), http.get(&url)] {
        let (status, headers, body) = answer(attempt).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=300).contains(&wait), "Retry-After {wait}");
    }
    // Behind a proxy every caller shares one address: a valid token still gets through.
    let (status, _, _) = answer(http.get(&url).bearer_auth(&good)).await;
    assert_eq!(status, StatusCode::OK, "a valid token is never locked out");
    let (status, _, _) = answer(http.get(format!("{}/healthz", server.base))).await;
    assert_eq!(status, StatusCode::OK, "health needs no token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_created_over_http_is_completed_by_the_worker_in_the_process() {
    created_once_and_completed(&deployment()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_and_redis_a_request_is_created_once_and_completed() {
    let db = util::pg_database().await;
    let prefix = util::unique("dsr-test-serve-");
    let redis = util::RedisKeys::new(&prefix);
    let d = serving(Deployment::shared(
        &db.url,
        &util::redis_url(),
        &prefix,
        "[server]\nlisten = \"127.0.0.1:0\"\n",
    ));
    created_once_and_completed(&d).await;
    redis.delete_all().await;
    db.drop_db().await;
}

/// Creates an access request twice with one Idempotency-Key through `dsr serve
/// --with-worker` on `d`, checks there is one, and follows it to its bundle.
async fn created_once_and_completed(d: &Deployment) {
    let writer = token(d, "website", "requests:write,requests:read");
    let server = Server::start(d, true);
    let http = client();
    let body = json!({"kind": "access", "email": [SEEDED_EMAIL], "processors": ["google", "wix"]});
    let mut ids = Vec::new();
    for expected in [StatusCode::CREATED, StatusCode::OK] {
        let sent = http
            .post(format!("{}/v1/requests", server.base))
            .bearer_auth(&writer)
            .header("Idempotency-Key", "7f3c-website-form")
            .json(&body);
        let (status, _, created) = answer(sent).await;
        assert_eq!(status, expected, "{created}");
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1], "one request");
    let (_, _, page) = answer(
        http.get(format!("{}/v1/requests?kind=access", server.base))
            .bearer_auth(&writer),
    )
    .await;
    assert_eq!(page["requests"].as_array().map(Vec::len), Some(1), "{page}");
    let id = ids[0].as_str();
    let done = wait_until(&http, &server.base, &format!("/v1/requests/{id}"), &writer, |r| {
        r["status"] == "completed"
    })
    .await;
    assert!(done["bundle"].is_string(), "{done}");
    assert_eq!(server.stop(), Some(0));
}

/// GETs `path` with `token` until `done` holds for the answer (at most a minute).
async fn wait_until(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let (_, _, now) = answer(http.get(format!("{base}{path}")).bearer_auth(token)).await;
        if done(&now) {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{path}: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_approves_rejects_audits_and_downloads_over_http() {
    let d = serving(Deployment::sqlite(
        "[server]\nlisten = \"127.0.0.1:0\"\n[erasure]\napproval = \"required\"\n",
    ));
    let desk = token(&d, "desk", "requests:write,requests:read");
    let officer = token(&d, "officer", "requests:approve,requests:read,audit:read");
    let server = Server::start(&d, true);
    let (http, base) = (client(), server.base.clone());
    let post = |path: &str, token: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth(token).json(&body);
    let create = |kind: &str| {
        post(
            "/v1/requests",
            &desk,
            json!({"kind": kind, "email": [SEEDED_EMAIL], "processors": ["google"]}),
        )
    };

    // An erasure waits for approval; only the approve scope approves, and only the plan shown.
    let (status, _, erasure) = answer(create("erasure")).await;
    assert_eq!(status, StatusCode::CREATED, "{erasure}");
    let id = erasure["id"].as_str().unwrap().to_string();
    wait_until(&http, &base, &format!("/v1/requests/{id}"), &desk, |r| {
        r["status"] == "awaiting_approval"
    })
    .await;
    let (status, _, plan) = answer(http.get(format!("{base}/v1/requests/{id}/plan")).bearer_auth(&desk)).await;
    assert_eq!(
        (status, plan["awaiting_approval"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{plan}"
    );
    let hash = plan["plan"].as_str().unwrap().to_string();
    let approve = format!("/v1/requests/{id}/approve");
    let (status, _, _) = answer(post(&approve, &desk, json!({"plan": hash}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "requests:write does not approve");
    let (status, _, body) = answer(post(&approve, &officer, json!({"plan": "0".repeat(64)}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "another plan's hash is refused: {body}");
    let (status, _, body) = answer(post(&approve, &officer, json!({"hash": hash}))).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("hash")),
        "{body}"
    );
    let (status, _, body) = answer(post(&approve, &officer, json!({"plan": hash}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let done = wait_until(&http, &base, &format!("/v1/requests/{id}"), &desk, |r| {
        r["status"] == "completed"
    })
    .await;
    assert!(done["confirmation"].is_string(), "{done}");

    // The confirmation downloads as stored; the events name who approved.
    let response = http
        .get(format!("{base}/v1/requests/{id}/confirmation"))
        .bearer_auth(&desk)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let downloaded = response.bytes().await.unwrap();
    let stored = std::fs::read(done["confirmation"].as_str().unwrap()).unwrap();
    assert_eq!(downloaded.as_ref(), stored.as_slice(), "the confirmation as stored");
    let (status, _, _) = answer(http.get(format!("{base}/v1/requests/{id}/events")).bearer_auth(&desk)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "events need audit:read");
    let (status, _, events) = answer(
        http.get(format!("{base}/v1/requests/{id}/events"))
            .bearer_auth(&officer),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = events.to_string();
    assert!(
        text.contains("token:desk") && text.contains("token:officer"),
        "{events}"
    );
    let (status, _, chain) = answer(http.get(format!("{base}/v1/audit/verify")).bearer_auth(&officer)).await;
    assert_eq!((status, chain["ok"].as_bool()), (StatusCode::OK, Some(true)), "{chain}");
    let (status, _, body) = answer(post(&format!("/v1/requests/{id}/cancel"), &desk, json!({}))).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an ended request cannot be cancelled: {body}"
    );

    // Another erasure is rejected with a reason.
    let (_, _, other) = answer(create("erasure")).await;
    let other = other["id"].as_str().unwrap().to_string();
    wait_until(&http, &base, &format!("/v1/requests/{other}"), &desk, |r| {
        r["status"] == "awaiting_approval"
    })
    .await;
    let (status, _, rejected) = answer(post(
        &format!("/v1/requests/{other}/reject"),
        &officer,
        json!({"reason": "the subject withdrew the request"}),
    ))
    .await;
    assert_eq!(
        (status, rejected["status"].as_str()),
        (StatusCode::OK, Some("rejected")),
        "{rejected}"
    );

    // An access request's bundle streams byte for byte.
    let (_, _, access) = answer(create("access")).await;
    let access = access["id"].as_str().unwrap().to_string();
    let done = wait_until(&http, &base, &format!("/v1/requests/{access}"), &desk, |r| {
        r["status"] == "completed"
    })
    .await;
    let (_, _, read) = answer(http.get(format!("{base}/v1/requests/{access}")).bearer_auth(&desk)).await;
    assert!(
        read["processors"][0]["evidence"].is_object(),
        "the task's evidence: {read}"
    );
    let response = http
        .get(format!("{base}/v1/requests/{access}/bundle"))
        .bearer_auth(&desk)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let downloaded = response.bytes().await.unwrap();
    let stored = std::fs::read(done["bundle"].as_str().unwrap()).unwrap();
    assert_eq!(downloaded.as_ref(), stored.as_slice(), "the bundle as stored");
    let (status, _, _) = answer(
        http.get(format!("{base}/v1/requests/{access}/confirmation"))
            .bearer_auth(&desk),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an access request has a bundle, not a confirmation"
    );

    // Three requests, two pages, newest first, each once.
    let page = |cursor: Option<String>| {
        let mut url = format!("{base}/v1/requests?limit=2");
        if let Some(c) = cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        http.get(url).bearer_auth(&desk)
    };
    let (_, _, first) = answer(page(None)).await;
    let cursor = first["next_cursor"].as_str().expect("a second page").to_string();
    let (_, _, second) = answer(page(Some(cursor))).await;
    assert_eq!(second["next_cursor"], Value::Null, "{second}");
    let mut seen: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|p| p["requests"].as_array().unwrap().iter())
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen[0], access, "newest first");
    seen.sort();
    let mut all = vec![id.clone(), other.clone(), access.clone()];
    all.sort();
    assert_eq!(seen, all);
    let (status, _, body) = answer(page(Some("not-a-cursor".into()))).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("cursor"))
    );
    assert_eq!(server.stop(), Some(0));
}

/// Every sample line of a Prometheus text exposition: `(name, labels, value)`; panics on a
/// line that is not one, or a sample whose family has no `# TYPE` before it.
fn prometheus_samples(text: &str) -> Vec<(String, String, f64)> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().expect("a family name");
            let kind = parts.next().expect("a type");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').unwrap_or_else(|| panic!("{line}"))),
            None => (series, ""),
        };
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (key, quoted) = pair.split_once('=').unwrap_or_else(|| panic!("label {pair}: {line}"));
            assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
            assert!(quoted.starts_with('"') && quoted.ends_with('"'), "{line}");
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "no # TYPE for {name}");
        samples.push((name.to_string(), labels.to_string(), value));
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_tasks_and_this_process_s_vendor_calls() {
    let wix = dsr_fixtures::wix::WixFake::start().await.unwrap();
    let d = Deployment::sqlite("[server]\nlisten = \"127.0.0.1:0\"\n");
    let section = wix.connector_toml(&d.path().join("wix-key")).unwrap();
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{text}[processors.wix]\n{section}")).unwrap();
    let desk = token(&d, "desk", "requests:write,requests:read");
    let monitor = token(&d, "prometheus", "metrics:read");
    let server = Server::start(&d, true);
    let (http, base) = (client(), server.base.clone());
    let (status, _, created) = answer(
        http.post(format!("{base}/v1/requests"))
            .bearer_auth(&desk)
            .json(&json!({"kind": "access", "email": [SEEDED_EMAIL]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    wait_until(&http, &base, &format!("/v1/requests/{id}"), &desk, |r| {
        r["status"] == "completed"
    })
    .await;

    let (status, _, _) = answer(http.get(format!("{base}/metrics")).bearer_auth(&desk)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "metrics need metrics:read");
    let response = http
        .get(format!("{base}/metrics"))
        .bearer_auth(&monitor)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let samples = prometheus_samples(&response.text().await.unwrap());
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {samples:?}"))
    };
    assert_eq!(value("dsr_requests", "status=\"completed\",kind=\"access\""), 1.0);
    assert_eq!(
        value("dsr_tasks", "processor=\"wix\",status=\"succeeded\",outcome=\"done\""),
        1.0
    );
    assert_eq!(value("dsr_requests_overdue", ""), 0.0);
    let calls = value("dsr_vendor_calls_total", "processor=\"wix\",class=\"2xx\"");
    assert!(calls >= 1.0, "the worker in this process called Wix");
    assert_eq!(
        value("dsr_vendor_call_seconds_count", "processor=\"wix\""),
        samples
            .iter()
            .filter(|(n, l, _)| n == "dsr_vendor_calls_total" && l.starts_with("processor=\"wix\""))
            .map(|(_, _, v)| v)
            .sum::<f64>(),
        "every call is in the histogram"
    );
    assert!(value("dsr_queue_jobs", "state=\"pending\"") >= 0.0);
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn json_logs_are_one_object_per_line_without_the_subject() {
    let d = serving(Deployment::sqlite("[log]\nformat = \"json\"\n"));
    let out = d
        .command()
        .env("DSR_LOG", "info")
        .args(["run", "access", "--email", SEEDED_EMAIL, "--timeout", "60s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", util::stderr(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logged: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let received = logged
        .iter()
        .find(|l| l["fields"]["message"] == "request received")
        .unwrap_or_else(|| panic!("no `request received` line in {stderr}"));
    assert!(
        received["fields"]["subject"].is_string(),
        "a keyed hash stands in: {received}"
    );
    assert!(
        received["level"].is_string() && received["timestamp"].is_string(),
        "{received}"
    );
    assert!(!stderr.contains(SEEDED_EMAIL), "the subject never reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_server_speaks_tls_itself() {
    let d = deployment();
    let (cert, key) = (d.path().join("cert.pem"), d.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text.replace(
        "[server]\nlisten = \"127.0.0.1:0\"\n",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    std::fs::write(&d.config, text).unwrap();
    let server = Server::start(&d, false);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    dsr_connector::http::install_crypto_provider();
    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap())
        .build()
        .unwrap();
    let (status, _, body) = answer(trusted.get(format!("{}/healthz", server.base))).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    // Plain HTTP to the TLS port gets no answer from the API.
    let plain = server.base.replace("https://", "http://");
    assert!(client().get(format!("{plain}/healthz")).send().await.is_err());

    // One of the two alone is refused at start, naming the keys.
    let text = std::fs::read_to_string(&d.config).unwrap();
    let only_cert: String = text
        .lines()
        .filter(|l| !l.starts_with("tls_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&d.config, only_cert).unwrap();
    let out = d.dsr(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        util::stderr(&out).contains("tls_cert and tls_key go together"),
        "{}",
        util::stderr(&out)
    );
}

#[test]
fn schemathesis_finds_no_server_error_or_schema_violation() {
    let found = std::process::Command::new("schemathesis").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "schemathesis is not installed: run the suite with scripts/test, which installs it from PyPI"
    );
    let d = deployment();
    let everything = token(
        &d,
        "schemathesis",
        "requests:read,requests:write,requests:approve,audit:read,metrics:read",
    );
    let server = Server::start(&d, true);
    // A request to find, so the routes that take an id reach more than their 404.
    let created = d.dsr_json(&["enqueue", "access", "--email", SEEDED_EMAIL]);
    assert_eq!(created.0, 0, "{}", created.1);
    // In the scratch folder: Schemathesis keeps a cache where it runs.
    let out = std::process::Command::new("schemathesis")
        .current_dir(d.path())
        .args(["run", &format!("{}/openapi.json", server.base)])
        .args(["--header", &format!("Authorization: Bearer {everything}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        // Bounded, and the same cases on every run.
        .args(["--max-examples", "10", "--seed", "20261207", "--no-color"])
        .output()
        .expect("schemathesis runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found a problem:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("passed"), "{said}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_check_refuses_what_the_document_does_not_describe() {
    let d = deployment();
    let server = Server::start(&d, false);
    let document: Value = client()
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let json = |kind: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("content-type", kind.parse().unwrap());
        headers
    };
    let check = |method: &str, path: &str, status: StatusCode, kind: &str, body: Value| {
        let (document, method, path) = (document.clone(), method.to_string(), path.to_string());
        let headers = json(kind);
        std::panic::catch_unwind(move || conforms(&document, &method, &path, status, &headers, &body)).is_ok()
    };
    assert!(check(
        "get",
        "/healthz",
        StatusCode::OK,
        "application/json",
        json!({"status": "ok"})
    ));
    assert!(
        !check(
            "get",
            "/healthz",
            StatusCode::OK,
            "application/json",
            json!({"state": "ok"})
        ),
        "a field missing"
    );
    assert!(
        !check(
            "get",
            "/v1/requests/x",
            StatusCode::OK,
            "application/json",
            json!({"id": 1})
        ),
        "a wrong type"
    );
    assert!(
        !check(
            "get",
            "/healthz",
            StatusCode::IM_A_TEAPOT,
            "application/json",
            json!({})
        ),
        "an undocumented status"
    );
    assert!(
        !check("get", "/v1/nowhere", StatusCode::OK, "application/json", json!({})),
        "an undocumented path"
    );
    assert!(
        !check("get", "/healthz", StatusCode::OK, "text/html", json!({"status": "ok"})),
        "an undocumented type"
    );
}
