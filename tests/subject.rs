//! The subject's side over real HTTP and real SMTP (Python's aiosmtpd on loopback, started
//! here): a form submission creates nothing until the address is proven; five wrong codes
//! lock it; the finished bundle is mailed as a link whose download needs a fresh code, then
//! passes `dsr verify`; expired, used-up and replaced links are refused with a page that says
//! so; operators must say how they checked identity; and no address, token or code reaches
//! the log.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, RANGE, SET_COOKIE};
use serde_json::Value;
use util::browser::Browser;
use util::{Deployment, SEEDED_EMAIL, free_port, ledger_sql, ledger_value};

/// Python's aiosmtpd, writing each message it takes to a folder; killed when dropped.
struct Sink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sink {
    /// A sink writing to `dir`; `tls`: nothing, or `starttls`/`tls` with a certificate and key.
    fn start(dir: &Path, tls: &[&Path]) -> Sink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/subject/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(dir)
            .args(tls)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP sink (python3 with aiosmtpd: scripts/test installs it)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink said {line:?}"));
        Sink {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// The `n`th message (1-based): recipients and text body, waiting up to a minute for it.
    fn message(&self, n: usize) -> (String, String, String) {
        let started = Instant::now();
        let path = self.dir.join(format!("{n:04}.eml"));
        while !path.exists() {
            assert!(started.elapsed() < Duration::from_secs(90), "no message {n} arrived");
            std::thread::sleep(Duration::from_millis(100));
        }
        let bytes = std::fs::read(&path).unwrap();
        let rcpt = std::fs::read_to_string(self.dir.join(format!("{n:04}.rcpt"))).unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&bytes)
            .expect("a MIME message");
        let subject = parsed.subject().unwrap_or_default().to_string();
        let body = parsed.body_text(0).unwrap_or_default().to_string();
        (rcpt, subject, body)
    }

    fn count(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "eml"))
            .count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dsr serve --with-worker` with the form and delivery on, its log (DSR_LOG=debug) in a file.
struct Site {
    d: Deployment,
    _mail: tempfile::TempDir,
    sink: Sink,
    base: String,
    log: PathBuf,
    server: Child,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn site(extra: &str) -> Site {
    let mail = tempfile::tempdir().unwrap();
    let sink = Sink::start(mail.path(), &[]);
    site_with(extra, mail, sink, "host = \"127.0.0.1\"\nsecurity = \"none\"\n")
}

/// A site mailing through `sink`, with `smtp` (host and security) in its `[smtp]`.
fn site_with(extra: &str, mail: tempfile::TempDir, sink: Sink, smtp: &str) -> Site {
    let port = free_port();
    let d = Deployment::sqlite(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\
         [subject]\npublic_url = \"http://127.0.0.1:{port}\"\n{extra}\n\
         [smtp]\n{smtp}port = {}\nfrom = \"Personvern <personvern@example.no>\"\ntimeout = \"10s\"\n\
         [test_connector.google]\nrecords_per_email = 2\n[test_connector.wix]\n",
        sink.port
    ));
    // Bundles and confirmations are signed, so `dsr verify` checks the signature too.
    let key = d.path().join("signing-key.pem");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .status()
        .expect("openssl");
    assert!(made.success());
    let text = std::fs::read_to_string(&d.config).unwrap().replacen(
        "[export]\n",
        &format!("[export]\nsigning_key = \"file:{}\"\n", key.display()),
        1,
    );
    std::fs::write(&d.config, text).unwrap();
    let log = d.path().join("serve.log");
    let mut server = d
        .command()
        .args(["serve", "--with-worker"])
        .env("DSR_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start dsr serve");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.take().unwrap()), &mut first).unwrap();
    assert!(first.starts_with("dsr serve listening on"), "{first}");
    Site {
        d,
        _mail: mail,
        sink,
        base: format!("http://127.0.0.1:{port}"),
        log,
        server,
    }
}

fn client() -> reqwest::Client {
    dsr_connector::http::builder(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The first run of six digits after `after` in `text`.
fn code_in(text: &str, after: &str) -> String {
    let from = text.find(after).unwrap_or_else(|| panic!("no `{after}` in {text}")) + after.len();
    text[from..]
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_string()
}

/// The link under `path` in `text`, and its token.
fn link_in(text: &str, path: &str) -> (String, String) {
    let start = text.find("http://").unwrap_or_else(|| panic!("no link in {text}"));
    let link: String = text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    let token = link
        .split(path)
        .nth(1)
        .unwrap_or_else(|| panic!("{link} is not under {path}"))
        .to_string();
    (link, token)
}

async fn submit(site: &Site, form: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(format!("{}/privacy/request", site.base))
        .form(form)
        .send()
        .await
        .unwrap()
}

fn requests(d: &Deployment) -> Vec<Value> {
    let (code, list) = d.dsr_json(&["list"]);
    assert_eq!(code, 0, "{list}");
    list.as_array()
        .cloned()
        .unwrap_or_else(|| list["requests"].as_array().cloned().unwrap_or_default())
}

async fn wait_completed(d: &Deployment, id: &str) {
    let started = Instant::now();
    loop {
        let (_, status) = d.dsr_json(&["status", id]);
        if status["status"] == "completed" {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_form_request_waits_for_proof_then_its_bundle_is_mailed_and_downloads_only_with_a_fresh_code() {
    let site = site("verify_ttl = \"30m\"");
    let http = client();

    // The form page: both languages, no script anywhere, a strict policy.
    let page = http
        .get(format!("{}/privacy/request?lang=nb", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Dine personopplysninger") && !html.contains("<script"),
        "{html}"
    );

    // A bad address is refused on the page, naming the field.
    let refused = submit(&site, &[("kind", "access"), ("email", "kari@@example"), ("lang", "en")]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("href=\"#email\""));

    // Submitted: a code and a link by e-mail, and nothing in the ledger.
    let sent = submit(
        &site,
        &[
            ("kind", "access"),
            ("email", SEEDED_EMAIL),
            ("phone", "+47 912 34 567"),
            ("lang", "en"),
            ("website", ""),
        ],
    )
    .await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    let waiting = format!("{}{}", site.base, sent.headers()[LOCATION].to_str().unwrap());
    let (rcpt, subject, body) = site.sink.message(1);
    assert_eq!(rcpt.trim(), SEEDED_EMAIL);
    assert!(subject.contains("Confirm your request"), "{subject}");
    let form_code = code_in(&body, "enter the code ");
    let (_, confirm_token) = link_in(&body, "/privacy/confirm/");
    assert!(
        requests(&site.d).is_empty(),
        "a submission is not a request until it is verified"
    );
    let page = http.get(&waiting).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("awaiting_verification"), "{page}");

    // A wrong code is counted; the link shows a button (a mail filter following it confirms nothing).
    let wrong = http
        .post(&waiting)
        .form(&[("code", "000000"), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.text().await.unwrap().contains("4 tries left"));
    let confirm = format!("{}/privacy/confirm/{confirm_token}", site.base);
    let button = http.get(&confirm).send().await.unwrap().text().await.unwrap();
    assert!(button.contains("<form method=\"post\""), "{button}");
    assert!(requests(&site.d).is_empty(), "opening the link confirms nothing");

    // The code confirms it: one request, its deadline from the submission, verified_by recorded.
    let right = http
        .post(&waiting)
        .form(&[("code", form_code.as_str()), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    let done = http.get(&waiting).send().await.unwrap().text().await.unwrap();
    assert!(done.contains("Your request is confirmed"), "{done}");
    let listed = requests(&site.d);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert!(done.contains(&id));
    // The link afterwards creates nothing more.
    let again = http.post(&confirm).form(&[("lang", "en")]).send().await.unwrap();
    assert!(again.status().is_success() || again.status() == StatusCode::SEE_OTHER);
    assert_eq!(requests(&site.d).len(), 1);
    let (_, events) = site.d.dsr_json(&["audit", "events", &id]);
    let received = &events["events"][0];
    assert_eq!(received["event"], "request.received");
    assert!(
        received["note"]
            .as_str()
            .unwrap()
            .contains("proved the address by the e-mailed code"),
        "{received}"
    );
    assert!(received["detail"]["verified_at"].is_string(), "{received}");

    // The phone typed on the form is not proven: an access request does not search for it.
    let stored = ledger_value(&site.d, &format!("SELECT identities FROM requests WHERE id = '{id}'"));
    assert!(
        stored.contains(SEEDED_EMAIL) && !stored.contains("4791234567"),
        "{stored}"
    );
    assert_eq!(
        ledger_value(
            &site.d,
            &format!("SELECT approval_required FROM requests WHERE id = '{id}'")
        ),
        "0"
    );

    // Done: the link arrives by e-mail.
    wait_completed(&site.d, &id).await;
    let (rcpt, subject, body) = site.sink.message(2);
    assert_eq!(rcpt.trim(), SEEDED_EMAIL);
    assert!(subject.contains("access"), "{subject}");
    let (link, token) = link_in(&body, "/privacy/download/");
    assert!(body.contains("index.html"), "{body}");

    // The file needs the code first; the page says what the file is and until when.
    let file = format!("{link}/file");
    assert_eq!(http.get(&file).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let page = http.get(&link).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("The link works until") && page.contains("Downloads left") && page.contains(".zip"),
        "{page}"
    );
    let asked = http
        .post(format!("{link}/code"))
        .form(&[("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), StatusCode::OK);
    let (_, subject, body) = site.sink.message(3);
    assert!(subject.contains("Your code"), "{subject}");
    let code = code_in(&body, "is ");
    let wrong = http
        .post(format!("{link}/unlock"))
        .form(&[("code", "111111")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let unlocked = http
        .post(format!("{link}/unlock"))
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(unlocked.status(), StatusCode::SEE_OTHER);
    let cookie = unlocked.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.contains(&format!("Path=/privacy/download/{token}")), "{cookie}");
    let grant = cookie.split(';').next().unwrap().to_string();

    // Downloaded in two ranges (a resumed download), counted once; the ZIP passes `dsr verify`.
    let first = http
        .get(&file)
        .header(COOKIE, &grant)
        .header(RANGE, "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
    let total: u64 = first.headers()["content-range"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let mut zip = first.bytes().await.unwrap().to_vec();
    assert_eq!(zip.len(), 100);
    // A browser resumes with If-Range naming the file it has the start of.
    let rest = http
        .get(&file)
        .header(COOKIE, &grant)
        .header(RANGE, "bytes=100-")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    zip.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(zip.len() as u64, total);
    // One code, one download: the same cookie cannot start another, nor pass a whole file
    // off as a resumption with a range it cannot serve or an If-Range for another file.
    for range in [
        None,
        Some(("bytes=5-1", None)),
        Some(("bytes=100-", Some("\"another\""))),
    ] {
        let mut get = http.get(&file).header(COOKIE, &grant);
        if let Some((range, if_range)) = range {
            get = get.header(RANGE, range);
            if let Some(if_range) = if_range {
                get = get.header("if-range", if_range);
            }
        }
        let again = get.send().await.unwrap();
        assert_eq!(again.status(), StatusCode::FORBIDDEN, "{range:?}");
        assert!(again.text().await.unwrap().contains("A new code is needed"));
    }
    let saved = site.d.path().join("downloaded.zip");
    std::fs::write(&saved, &zip).unwrap();
    let out = site.d.dsr(&["verify", saved.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));

    let (exit, delivery) = site.d.dsr_json(&["delivery", &id]);
    assert_eq!(exit, 0, "{delivery}");
    assert_eq!(delivery["links"][0]["downloads"], 1, "{delivery}");
    let names: Vec<_> = delivery["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    for expected in [
        "delivery.sent",
        "delivery.opened",
        "delivery.code_sent",
        "delivery.code_failed",
        "delivery.unlocked",
        "delivery.downloaded",
        "delivery.resumed",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    // `dsr resend`: a fresh link; the old one says it was replaced.
    let out = site.d.dsr(&["resend", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));
    let (_, _, body) = site.sink.message(4);
    let (new_link, _) = link_in(&body, "/privacy/download/");
    assert_ne!(new_link, link);
    let old = http.get(&link).send().await.unwrap();
    assert_eq!(old.status(), StatusCode::GONE);
    assert!(old.text().await.unwrap().contains("replaced"));
    assert_eq!(http.get(&new_link).send().await.unwrap().status(), StatusCode::OK);

    // Expired, then used up: refused with a page that says which.
    ledger_sql(
        &site.d,
        "UPDATE deliveries SET expires_at = '2020-01-01T00:00:00.000000Z' WHERE revoked_at IS NULL",
    );
    let expired = http.get(&new_link).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::GONE);
    assert!(expired.text().await.unwrap().contains("expired"));
    ledger_sql(
        &site.d,
        "UPDATE deliveries SET expires_at = '2999-01-01T00:00:00.000000Z', downloads = max_downloads WHERE revoked_at IS NULL",
    );
    let used = http.get(&new_link).send().await.unwrap();
    assert_eq!(used.status(), StatusCode::GONE);
    assert!(used.text().await.unwrap().contains("used up"));

    // Nothing that identifies the subject or opens their data reached the log.
    let log = std::fs::read_to_string(&site.log).unwrap();
    assert!(
        log.contains("request form confirmed"),
        "the log is being written: {log}"
    );
    // (Six-digit codes are left out: a log's timestamps are full of six-digit runs.)
    for secret in [SEEDED_EMAIL, &confirm_token, &token, grant.split('=').nth(1).unwrap()] {
        assert!(!log.contains(secret), "`{secret}` is in the log");
    }
    assert!(
        !log.to_lowercase().contains("kari"),
        "the subject's name or address is in the log"
    );
}

#[tokio::test]
async fn five_wrong_codes_lock_a_submission_and_a_bot_filling_the_trap_gets_nothing() {
    let site = site("max_tries = 5");
    let http = client();
    let sent = submit(&site, &[("kind", "erasure"), ("email", SEEDED_EMAIL), ("lang", "en")]).await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    let waiting = format!("{}{}", site.base, sent.headers()[LOCATION].to_str().unwrap());
    let (_, _, body) = site.sink.message(1);
    let code = code_in(&body, "enter the code ");
    let (_, token) = link_in(&body, "/privacy/confirm/");
    for n in 1..=5 {
        let wrong = http
            .post(&waiting)
            .form(&[("code", "999999"), ("lang", "en")])
            .send()
            .await
            .unwrap();
        let expected = if n < 5 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(wrong.status(), expected, "try {n}");
    }
    // Locked: neither the right code nor the link opens it, and nothing was created.
    let late = http
        .post(&waiting)
        .form(&[("code", code.as_str()), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::FORBIDDEN);
    assert!(late.text().await.unwrap().contains("locked"));
    let link = http
        .post(format!("{}/privacy/confirm/{token}", site.base))
        .form(&[("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), StatusCode::FORBIDDEN);
    assert!(requests(&site.d).is_empty());
    let log = std::fs::read_to_string(&site.log).unwrap();
    assert!(!log.contains(SEEDED_EMAIL) && !log.contains(&token));

    // The honeypot: the same page a person sees, and no mail, no submission.
    let before = site.sink.count();
    let bot = submit(
        &site,
        &[
            ("kind", "access"),
            ("email", "bot@example.no"),
            ("lang", "en"),
            ("website", "http://spam.example"),
        ],
    )
    .await;
    assert_eq!(bot.status(), StatusCode::OK);
    assert!(bot.text().await.unwrap().contains("Check your e-mail"));
    // A person's form sends its mail before it answers: the next message the server sends
    // must be the next person's, not the bot's.

    // The per-address limit: the fourth submission within the hour is refused.
    for n in 0..4 {
        let r = submit(
            &site,
            &[("kind", "objection"), ("email", "ola@example.no"), ("lang", "en")],
        )
        .await;
        let expected = if n < 3 {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status(), expected, "submission {n}");
    }
    let (rcpt, _, _) = site.sink.message(before + 1);
    assert_eq!(rcpt.trim(), "ola@example.no", "a bot's submission sent no mail");
    assert_eq!(
        ledger_value(
            &site.d,
            "SELECT COUNT(*) FROM subject_submissions WHERE kind = 'access'"
        ),
        "0"
    );
}

#[test]
fn operators_say_how_they_checked_identity_before_access_portability_or_erasure() {
    let d = Deployment::sqlite(
        "[subject]\noperator_verification = \"required\"\n[test_connector.google]\nrecords_per_email = 1\n",
    );
    let out = d.dsr(&["enqueue", "access", "--email", SEEDED_EMAIL]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(util::stderr(&out).contains("--verified-by"), "{}", util::stderr(&out));
    let out = d.dsr(&["enqueue", "erasure", "--email", SEEDED_EMAIL, "--verified-by", " "]);
    assert_eq!(out.status.code(), Some(2));
    // An objection only stops marketing: no check needed.
    let out = d.dsr(&["enqueue", "objection", "--email", SEEDED_EMAIL]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));
    let (code, created) = d.dsr_json(&[
        "enqueue",
        "access",
        "--email",
        SEEDED_EMAIL,
        "--verified-by",
        "ID card at the counter",
    ]);
    assert_eq!(code, 0, "{created}");
    let id = created["id"].as_str().unwrap();
    let (_, events) = d.dsr_json(&["audit", "events", id]);
    let received = &events["events"][0];
    assert_eq!(
        received["note"], "identity verified: ID card at the counter",
        "{received}"
    );
    // The chain holds the text's hash, not the text.
    assert!(!received["detail"].to_string().contains("ID card"), "{received}");
    let out = d.dsr(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));
}

#[tokio::test]
async fn the_form_the_code_page_and_the_download_page_work_in_chromium_without_javascript() {
    let site = site("");
    let browser = Browser::start(false).await;

    // JavaScript is really off in this browser: a page's script does not run.
    browser
        .goto("data:text/html,<title>off</title><script>document.title='on'</script>")
        .await;
    assert_eq!(browser.c().title().await.unwrap(), "off");

    // The form: sent empty, it comes back with the errors listed and linked to their fields.
    browser.goto(&format!("{}/privacy/request?lang=en", site.base)).await;
    browser.shot("subject-form").await;
    browser.find("button[type=submit]").await.click().await.unwrap();
    browser.wait_for("Choose what you would like").await;
    assert!(
        browser
            .find(".errors")
            .await
            .text()
            .await
            .unwrap()
            .contains("Choose what you would like")
    );
    browser.shot("subject-form-errors").await;

    // Filled in from the keyboard: the kind, the address, Enter.
    browser.find("#kind-access").await.click().await.unwrap();
    let email = browser.find("#email").await;
    email.clear().await.unwrap();
    let enter: char = fantoccini::key::Key::Enter.into();
    email.send_keys(&format!("{SEEDED_EMAIL}{enter}")).await.unwrap();
    browser.wait_for("awaiting_verification").await;
    let url = browser.c().current_url().await.unwrap();
    assert!(url.path().starts_with("/privacy/request/"), "{url}");
    let code_page = url.to_string();
    browser.shot("subject-code").await;
    assert!(requests(&site.d).is_empty());

    // The code from the e-mail confirms it.
    let (_, _, body) = site.sink.message(1);
    let code = code_in(&body, "enter the code ");
    browser.find("#code").await.send_keys(&code).await.unwrap();
    browser.find("button[type=submit]").await.click().await.unwrap();
    browser.wait_for("Your request is confirmed").await;
    browser.shot("subject-confirmed").await;
    let id = requests(&site.d)[0]["id"].as_str().unwrap().to_string();

    // The link to the bundle: the page, a code asked for, entered, and the download offered.
    wait_completed(&site.d, &id).await;
    let (_, _, body) = site.sink.message(2);
    let (link, _) = link_in(&body, "/privacy/download/");
    browser.goto(&format!("{link}?lang=en")).await;
    let page = browser.text().await;
    assert!(page.contains("How to open it") && page.contains("index.html"), "{page}");
    browser.shot("subject-download").await;
    browser.find("form button[type=submit]").await.click().await.unwrap();
    browser.wait_for("We have sent a one-time code").await;
    let (_, _, body) = site.sink.message(3);
    let code = code_in(&body, "is ");
    browser.find("#code").await.send_keys(&code).await.unwrap();
    browser.find("button[type=submit]").await.click().await.unwrap();
    browser.wait_for("class=\"button\"").await;
    let download = browser.find("a.button").await;
    let href = download.attr("href").await.unwrap().expect("a download link");
    browser.shot("subject-download-unlocked").await;

    // The browser's cookie (HttpOnly: WebDriver sees it, page scripts would not) fetches the ZIP.
    let cookies = browser.c().get_all_cookies().await.unwrap();
    let grant = cookies
        .iter()
        .find(|c| c.name() == "dsr_download")
        .expect("the download cookie");
    assert_eq!(grant.http_only(), Some(true));
    let zip = client()
        .get(format!("{}{href}", site.base))
        .header(COOKIE, format!("dsr_download={}", grant.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), StatusCode::OK);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    assert!(zip.bytes().await.unwrap().starts_with(b"PK"));
    browser.close().await;

    // With JavaScript on, the same pages behave the same (there is no script to run), and
    // axe-core finds nothing serious on any of them (WCAG 2.1 A and AA, best practice).
    let browser = Browser::start(true).await;
    browser
        .goto("data:text/html,<title>off</title><script>document.title='on'</script>")
        .await;
    assert_eq!(browser.c().title().await.unwrap(), "on");
    // The checker finds what it should: an image without a text alternative.
    browser
        .goto("data:text/html,<html lang=en><title>t</title><main><img src=x.png></main></html>")
        .await;
    let problems = browser.serious_accessibility_problems().await;
    assert!(problems.iter().any(|p| p.starts_with("image-alt")), "{problems:?}");
    let form = format!("{}/privacy/request?lang=en", site.base);
    for page in [form.as_str(), code_page.as_str(), link.as_str()] {
        browser.goto(page).await;
        let problems = browser.serious_accessibility_problems().await;
        assert!(problems.is_empty(), "{page}: {problems:#?}");
    }
    browser.goto(&format!("{}/privacy/request?lang=nb", site.base)).await;
    browser.find("button[type=submit]").await.click().await.unwrap();
    browser.wait_for("Velg hva du ønsker").await;
    browser.shot("subject-form-errors-nb-javascript").await;
    let problems = browser.serious_accessibility_problems().await;
    assert!(problems.is_empty(), "the form with its errors: {problems:#?}");
    browser.close().await;
}

#[tokio::test]
async fn a_finished_objection_is_mailed_with_what_each_processor_did_and_whom_it_reached() {
    let site = site("");
    let http = client();
    // Entered by an operator: an objection only stops marketing, so no --verified-by needed.
    let (code, created) = site
        .d
        .dsr_json(&["enqueue", "objection", "--email", SEEDED_EMAIL, "--lang", "en"]);
    assert_eq!(code, 0, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    wait_completed(&site.d, &id).await;
    let (rcpt, subject, body) = site.sink.message(1);
    assert_eq!(rcpt.trim(), SEEDED_EMAIL);
    assert!(
        subject.contains("objection") && subject.contains("is done"),
        "{subject}"
    );
    let (_, status) = site.d.dsr_json(&["status", &id]);
    for task in status["processors"].as_array().unwrap() {
        let name = task["processor"].as_str().unwrap();
        let shown = if name == "google" { "Google" } else { "Wix" };
        assert!(body.contains(&format!("- {shown}")), "{name} missing from {body}");
    }
    assert!(body.contains("passed on to (Art. 19):"), "{body}");
    // The link hands over the HTML confirmation behind the same code.
    let (link, _) = link_in(&body, "/privacy/download/");
    let page = http.get(&link).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Your confirmation") && page.contains("confirmation.html"),
        "{page}"
    );
    assert_eq!(
        http.get(format!("{link}/file")).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_phone_typed_on_the_form_only_erases_after_an_operator_approves_the_plan() {
    let site = site("");
    let http = client();
    let sent = submit(
        &site,
        &[
            ("kind", "erasure"),
            ("email", SEEDED_EMAIL),
            ("phone", "+47 912 34 567"),
            ("lang", "en"),
        ],
    )
    .await;
    let waiting = format!("{}{}", site.base, sent.headers()[LOCATION].to_str().unwrap());
    let (_, _, body) = site.sink.message(1);
    let code = code_in(&body, "enter the code ");
    let right = http
        .post(&waiting)
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    let id = requests(&site.d)[0]["id"].as_str().unwrap().to_string();
    let stored = ledger_value(&site.d, &format!("SELECT identities FROM requests WHERE id = '{id}'"));
    assert!(
        stored.contains("+4791234567"),
        "an erasure searches for the typed phone: {stored}"
    );
    assert_eq!(
        ledger_value(
            &site.d,
            &format!("SELECT approval_required FROM requests WHERE id = '{id}'")
        ),
        "1"
    );
    // Nothing is erased until an operator has seen the plan: it waits for approval although
    // the company's rules ([erasure] approval) ask for none.
    let started = Instant::now();
    loop {
        let (_, status) = site.d.dsr_json(&["status", &id]);
        if status["status"] == "awaiting_approval" {
            break;
        }
        assert_ne!(status["status"], "completed", "{status}");
        assert!(started.elapsed() < Duration::from_secs(60), "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, events) = site.d.dsr_json(&["audit", "events", &id]);
    let received = &events["events"][0];
    assert!(received["note"].as_str().unwrap().contains("not proven"), "{received}");
    assert_eq!(received["detail"]["approval_required"], "unproven identifier");
    assert!(received["detail"]["submitted_at"].is_string() && received["detail"]["submission"].is_string());
}

#[tokio::test]
async fn the_month_counts_from_the_submission_unless_configured_from_the_verification() {
    for (setting, counts_from_submission) in [("submission", true), ("verification", false)] {
        let site = site(&format!("deadline_from = \"{setting}\""));
        let http = client();
        let sent = submit(&site, &[("kind", "objection"), ("email", SEEDED_EMAIL), ("lang", "en")]).await;
        let waiting = format!("{}{}", site.base, sent.headers()[LOCATION].to_str().unwrap());
        let (_, _, body) = site.sink.message(1);
        let code = code_in(&body, "enter the code ");
        // Sent ten days ago, verified now (the code still works: its expiry is moved too).
        ledger_sql(
            &site.d,
            "UPDATE subject_submissions SET submitted_at = '2026-01-01T09:00:00.000000Z', \
             expires_at = '2999-01-01T00:00:00.000000Z'",
        );
        let right = http
            .post(&waiting)
            .form(&[("code", code.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), StatusCode::SEE_OTHER);
        let id = requests(&site.d)[0]["id"].as_str().unwrap().to_string();
        let (_, status) = site.d.dsr_json(&["status", &id]);
        let received = status["received_at"].as_str().unwrap();
        assert_eq!(
            received.starts_with("2026-01-01"),
            counts_from_submission,
            "{setting}: {status}"
        );
        let due = status["due_at"].as_str().unwrap();
        assert_eq!(
            due.starts_with("2026-02-0"),
            counts_from_submission,
            "{setting}: {status}"
        );
    }
}

#[tokio::test]
async fn the_api_refuses_an_access_request_that_does_not_say_how_identity_was_checked() {
    let d = Deployment::sqlite(
        "[server]\nlisten = \"127.0.0.1:0\"\n[subject]\noperator_verification = \"required\"\n\
         [test_connector.google]\nrecords_per_email = 1\n",
    );
    let token = util::server::token(&d, "crm", "requests:write,requests:read");
    let server = util::server::Server::start(&d, false);
    let http = client();
    let create = |body: serde_json::Value| {
        http.post(format!("{}/v1/requests", server.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let refused = create(serde_json::json!({"kind": "access", "email": [SEEDED_EMAIL]}))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("verified_by"));
    let made = create(serde_json::json!({"kind": "access", "email": [SEEDED_EMAIL], "verified_by": "BankID"}))
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let id = made.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let (_, events) = d.dsr_json(&["audit", "events", &id]);
    assert_eq!(events["events"][0]["note"], "identity verified: BankID");
}

#[tokio::test]
async fn unverified_submissions_are_deleted_after_a_day_and_expired_ones_forget_what_was_typed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dsr_jobs::ledger::Ledger::open(&format!("sqlite://{}/ledger.db", dir.path().display()))
        .await
        .unwrap();
    let now = ledger.now();
    for (id, expires) in [
        ("a".repeat(32), now - chrono::Duration::minutes(1)),
        ("b".repeat(32), now + chrono::Duration::minutes(30)),
    ] {
        let new = dsr_jobs::ledger::subject::NewSubmission {
            id: id.clone(),
            kind: "access".into(),
            typed: serde_json::json!({"email": SEEDED_EMAIL}),
            link_sha256: format!("link-{id}"),
            code_sha256: format!("code-{id}"),
            address_tag: format!("tag-{id}"),
            expires_at: expires,
        };
        assert!(ledger.create_submission(&new, 3).await.unwrap());
    }
    // Expired: what it typed is gone at the next sweep, the row kept until the day is out.
    assert_eq!(
        ledger.purge_submissions(now - chrono::Duration::days(1)).await.unwrap(),
        0
    );
    let expired = ledger.submission(&"a".repeat(32)).await.unwrap().unwrap();
    assert!(expired.typed.is_none());
    let live = ledger.submission(&"b".repeat(32)).await.unwrap().unwrap();
    assert!(live.typed.is_some());
    // A day on: both deleted.
    assert_eq!(
        ledger
            .purge_submissions(now + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        2
    );
    assert!(ledger.submission(&"b".repeat(32)).await.unwrap().is_none());
    // The address limit holds however the posts interleave: the fourth in the hour is refused.
    for n in 0..4 {
        let id = format!("{n:032}");
        let new = dsr_jobs::ledger::subject::NewSubmission {
            id: id.clone(),
            kind: "access".into(),
            typed: serde_json::json!({}),
            link_sha256: format!("link-{id}"),
            code_sha256: format!("code-{id}"),
            address_tag: "one-address".into(),
            expires_at: now + chrono::Duration::minutes(30),
        };
        assert_eq!(
            ledger.create_submission(&new, 3).await.unwrap(),
            n < 3,
            "submission {n}"
        );
    }
}

#[tokio::test]
async fn mail_goes_over_starttls_or_implicit_tls_to_a_server_whose_certificate_checks() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = dsr_fixtures::pki::TestPki::make(pki_dir.path(), false);
    let (cert, key, ca) = (
        pki_dir.path().join("leaf.pem"),
        pki_dir.path().join("leaf.key"),
        pki_dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    for mode in ["starttls", "tls"] {
        // Trusted through ca_file: the code arrives.
        let mail = tempfile::tempdir().unwrap();
        let sink = Sink::start(mail.path(), &[Path::new(mode), &cert, &key]);
        let smtp = format!(
            "host = \"localhost\"\nsecurity = \"{mode}\"\nca_file = \"{}\"\n",
            ca.display()
        );
        let site = site_with("", mail, sink, &smtp);
        let sent = submit(&site, &[("kind", "access"), ("email", SEEDED_EMAIL), ("lang", "en")]).await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER, "{mode}");
        let (rcpt, subject, _) = site.sink.message(1);
        assert_eq!(rcpt.trim(), SEEDED_EMAIL, "{mode}");
        assert!(subject.contains("Confirm your request"), "{mode}: {subject}");

        // Without the CA the certificate does not check: nothing is sent, nothing stored.
        let mail = tempfile::tempdir().unwrap();
        let sink = Sink::start(mail.path(), &[Path::new(mode), &cert, &key]);
        let smtp = format!("host = \"localhost\"\nsecurity = \"{mode}\"\n");
        let site = site_with("", mail, sink, &smtp);
        let refused = submit(&site, &[("kind", "access"), ("email", SEEDED_EMAIL), ("lang", "en")]).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "{mode}");
        assert!(refused.text().await.unwrap().contains("nothing was stored"));
        assert_eq!(site.sink.count(), 0);
    }
}
