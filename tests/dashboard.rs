//! The operators' dashboard (issue 27, its first part): accounts made by `dsr user add`
//! (Argon2id), sign-in and sign-out over real HTTP with the session cookie and CSRF token,
//! wrong passwords locking an account, disabled accounts and idle sessions signed out, the
//! strict headers, and the overview in headless Chromium — signed in from the keyboard, a
//! late request shown with its days late in words, screenshots, and axe-core's check.

mod util;

use std::io::Write;
use std::process::Stdio;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use util::browser::Browser;
use util::server::Server;
use util::{Deployment, SEEDED_EMAIL};

const PASSWORD: &str = "correct horse battery staple";

fn deployment() -> Deployment {
    Deployment::sqlite(
        "[server]\nlisten = \"127.0.0.1:0\"\n[dashboard]\nsecure_cookie = false\nidle = \"5m\"\n\
         [test_connector.google]\nrecords_per_email = 1\n",
    )
}

/// `dsr user add NAME --role ROLE --password-stdin` with `password`; its exit code and stderr.
fn add_user(d: &Deployment, name: &str, role: &str, password: &str) -> (i32, String) {
    let mut child = d
        .command()
        .args(["user", "add", name, "--role", role, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn client() -> reqwest::Client {
    dsr_connector::http::builder(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The page at `url` as `session` sees it.
async fn signed_in_page(session: &str, url: &str) -> String {
    get_as(session, url).await.text().await.unwrap()
}

/// Signs in; the session cookie ("dsr_session=…").
async fn sign_in(base: &str, name: &str, password: &str) -> Result<String, (StatusCode, String)> {
    let answer = client()
        .post(format!("{base}/dashboard/sign-in"))
        .form(&[("name", name), ("password", password)])
        .send()
        .await
        .unwrap();
    if answer.status() != StatusCode::SEE_OTHER {
        return Err((answer.status(), answer.text().await.unwrap()));
    }
    let cookie = answer.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/dashboard"),
        "{cookie}"
    );
    Ok(cookie.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn accounts_sign_in_with_their_password_and_sessions_end_when_they_should() {
    let d = deployment();
    let (code, said) = add_user(&d, "kari", "approver", "short");
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("at least 12 characters"), "{said}");
    assert_eq!(add_user(&d, "kari", "approver", PASSWORD).0, 0);
    let (code, said) = add_user(&d, "kari", "viewer", PASSWORD);
    assert_eq!(code, 2, "a name is taken once: {said}");
    assert_eq!(add_user(&d, "ola", "viewer", PASSWORD).0, 0);
    let (_, list) = d.dsr_json(&["user", "list"]);
    assert_eq!(list[0]["name"], "kari");
    assert_eq!(list[0]["role"], "approver");
    assert!(!list.to_string().contains("argon2"), "hashes are never shown: {list}");
    let stored = util::ledger_value(&d, "SELECT password_hash FROM operators WHERE name = 'kari'");
    assert!(
        stored.starts_with("$argon2id$") && !stored.contains(PASSWORD),
        "{stored}"
    );

    let server = Server::start(&d, false);
    let base = &server.base;
    let http = client();
    // Signed out: every page sends the browser to the sign-in page.
    let page = http.get(format!("{base}/dashboard")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[LOCATION], "/dashboard/sign-in");

    let (status, page) = sign_in(base, "kari", "wrong password!").await.unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("The account or the password is wrong"));
    let (status, _) = sign_in(base, "nobody", PASSWORD).await.unwrap_err();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an unknown account is told apart from nothing"
    );

    let session = sign_in(base, "kari", PASSWORD).await.unwrap();
    let page = get_as(&session, &format!("{base}/dashboard")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let h = page.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self';") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("Overview") && html.contains("kari (approver)"), "{html}");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-out form carries the CSRF token")
        .to_string();

    // Signing out needs the session's CSRF token.
    let forged = post_form(&session, &format!("{base}/dashboard/sign-out"), &[("csrf", "forged")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let out = post_form(
        &session,
        &format!("{base}/dashboard/sign-out"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = get_as(&session, &format!("{base}/dashboard")).await;
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "a signed-out session opens nothing"
    );

    // An idle session ends; so do a disabled account's.
    let idle = sign_in(base, "kari", PASSWORD).await.unwrap();
    util::ledger_sql(
        &d,
        "UPDATE operator_sessions SET last_seen_at = '2020-01-01T00:00:00.000000Z'",
    );
    let page = get_as(&idle, &format!("{base}/dashboard")).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let viewer = sign_in(base, "ola", PASSWORD).await.unwrap();
    let (code, _) = d.dsr_json(&["user", "disable", "ola"]);
    assert_eq!(code, 0);
    let page = get_as(&viewer, &format!("{base}/dashboard")).await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        sign_in(base, "ola", PASSWORD).await.unwrap_err().0,
        StatusCode::UNAUTHORIZED
    );

    // Five wrong passwords in a row: the account waits, even for the right one, and the
    // answer is the same as for a wrong password (nothing tells a guesser the name exists).
    let d2 = deployment();
    assert_eq!(add_user(&d2, "per", "operator", PASSWORD).0, 0);
    let server2 = Server::start(&d2, false);
    for _ in 0..5 {
        let _ = sign_in(&server2.base, "per", "not the password").await.unwrap_err();
    }
    let (status, page) = sign_in(&server2.base, "per", PASSWORD).await.unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    assert!(page.contains("The account or the password is wrong"));
    let (_, list) = d2.dsr_json(&["user", "list"]);
    assert!(list[0]["locked_until"].is_string(), "{list}");
    // A sign-in posted from another site is refused before any password is checked.
    let forged = client()
        .post(format!("{}/dashboard/sign-in", server2.base))
        .header("origin", "https://evil.example")
        .form(&[("name", "per"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // Every sign-in, failure and sign-out is in the audit chain, naming the account.
    let events = util::ledger_value(
        &d,
        "SELECT group_concat(event || ':' || detail, ' ') FROM audit_log WHERE event LIKE 'operator.%'",
    );
    for expected in [
        "operator.added",
        "operator.signin_failed",
        "operator.signed_in",
        "operator.signed_out",
        "operator.disabled",
    ] {
        assert!(events.contains(expected), "{expected} missing: {events}");
    }
    assert!(events.contains("\"operator\":\"kari\""), "{events}");
    assert!(!events.contains(PASSWORD));
    let out = d.dsr(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", util::stderr(&out));
}

/// One `dsr serve` (with its worker) and one Chromium for every page: an approver who
/// entered a late erasure finds it on the overview (days late in words), reads its timeline
/// and plan (a vendor's `<script>` shown as text), cannot approve it (four-eyes) but extends
/// it; retries a failed task, rejects one plan and cancels another — each from the keyboard
/// alone; a second approver approves the first plan and sees it run to its confirmation; the
/// processors page runs the doctor's checks; the audit page verifies the chain; a viewer is
/// refused an action with a page. Every page screenshotted and checked by axe-core.
#[tokio::test]
async fn operators_handle_requests_from_the_keyboard_in_chromium_with_four_eyes_and_roles() {
    let d = team(
        "shared = 1\nshared_note = \"<script>alert('vendor')</script> and 1 other participant\"\n\
         delay_ms = 2000\n",
    );
    let late = enter(&d, "erasure", "google", "kari");
    let to_reject = enter(&d, "erasure", "google", "per");
    let to_cancel = enter(&d, "erasure", "google", "per");
    let failing = enter(&d, "access", "wix", "per");
    // Due four days ago.
    let due = (chrono::Utc::now() - chrono::Duration::days(4)).format("%Y-%m-%dT%H:%M:%S.000000Z");
    util::ledger_sql(&d, &format!("UPDATE requests SET due_at = '{due}' WHERE id = '{late}'"));
    let server = Server::start(&d, true);
    let base = &server.base;
    for id in [&late, &to_reject, &to_cancel] {
        wait_status(&d, id, "awaiting_approval").await;
    }
    wait_status(&d, &failing, "failed").await;

    // The list (filtered) names requests, never their subject.
    let session = sign_in(base, "per", PASSWORD).await.unwrap();
    let list = signed_in_page(&session, &format!("{base}/dashboard/requests?overdue=1&kind=erasure")).await;
    assert!(list.contains(&late) && !list.contains(&to_reject), "{list}");
    assert!(!list.contains(SEEDED_EMAIL), "{list}");
    let none = signed_in_page(&session, &format!("{base}/dashboard/requests?kind=rectification")).await;
    assert!(none.contains("No request matches"), "{none}");

    let enter: char = fantoccini::key::Key::Enter.into();
    let tab: char = fantoccini::key::Key::Tab.into();
    let browser = Browser::start(true).await;
    let accessible = |page: &'static str| {
        let browser = &browser;
        async move {
            let problems = browser.serious_accessibility_problems().await;
            assert!(problems.is_empty(), "{page}: {problems:#?}");
            browser.shot(&format!("dashboard-{page}")).await;
        }
    };
    let sign_in_as = |name: &'static str| {
        let browser = &browser;
        async move {
            browser.goto(&format!("{base}/dashboard")).await;
            browser.wait_for("Sign in").await;
            browser.tab_to("#name").await;
            browser.keys(&format!("{name}{tab}{PASSWORD}{enter}")).await;
            browser.wait_for(&format!("{name} (")).await;
        }
    };
    let sign_out = || {
        let browser = &browser;
        async move {
            browser.tab_to(".signout button").await;
            browser.keys(&enter.to_string()).await;
            browser.wait_for("Password").await;
        }
    };
    // Presses the button or fills the field `css` from the keyboard (Enter sends the form),
    // and waits for the page to say it was done.
    let act = |css: &'static str, typed: &'static str, done: &'static str| {
        let browser = &browser;
        async move {
            browser.tab_to(css).await;
            browser.keys(&format!("{typed}{enter}")).await;
            browser.wait_for(done).await
        }
    };

    browser.goto(&format!("{base}/dashboard")).await;
    browser.wait_for("Sign in").await;
    accessible("sign-in").await;
    sign_in_as("kari").await;
    let page = browser.wait_for("Deadlines").await;
    assert!(page.contains(&late) && page.contains("4 days late"), "{page}");
    let last_failed = browser
        .find("section[aria-labelledby='processors-h']")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        last_failed.contains("Wix") && last_failed.contains(&failing) && !last_failed.contains("Google"),
        "the processor whose last call failed, and only it: {last_failed}"
    );
    accessible("overview").await;

    // From the deadline to the request's page, by the keyboard.
    browser.tab_to(&format!("a[href='/dashboard/requests/{late}']")).await;
    browser.keys(&enter.to_string()).await;
    let page = browser.wait_for("Timeline").await;
    let text = browser.find("main").await.text().await.unwrap();
    assert!(
        text.contains("<script>alert('vendor')</script> and 1 other participant"),
        "the vendor's words are shown as text: {text}"
    );
    let scripts = browser
        .c()
        .execute(
            "return Array.from(document.scripts).map(s => s.getAttribute('src'));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        scripts,
        serde_json::json!(["/dashboard/htmx.min.js"]),
        "the dashboard's own script and nothing the vendor wrote"
    );
    assert!(
        text.contains(SEEDED_EMAIL),
        "the subject's address on the request's page"
    );
    assert!(
        text.contains("Plan waits for approval request.awaiting_approval")
            && text.contains("Received request.received · by kari"),
        "{text}"
    );
    assert!(
        text.contains("You entered this request") && !page.contains("Approve this plan"),
        "four-eyes: {text}"
    );
    assert!(!page.contains("Extend the deadline"), "too late to extend (Art. 12(3))");
    accessible("request").await;

    browser.tab_to("nav a[href='/dashboard/requests']").await;
    browser.keys(&enter.to_string()).await;
    browser.wait_for("Received from").await;
    accessible("requests").await;

    browser.goto(&format!("{base}/dashboard/requests/{failing}")).await;
    browser.wait_for("Retry the failed tasks").await;
    // Each task attempt in the timeline: what happened, which attempt, its error code.
    let text = browser.find("ol.timeline").await.text().await.unwrap();
    assert!(
        text.contains("Task failed task.failed · wix · attempt 1 · error permanent:scripted"),
        "{text}"
    );
    act("form[action$='/retry'] button", "", "Done: retry").await;
    browser.goto(&format!("{base}/dashboard/requests/{to_reject}")).await;
    act("#reject-reason", "Matched the wrong person's records", "Done: reject").await;
    browser.goto(&format!("{base}/dashboard/requests/{to_cancel}")).await;
    let page = act("#extend-reason", "Two systems to search by hand", "Done: extend").await;
    assert!(page.contains("Deadline extended") && page.contains("Two systems to search by hand"));
    act("form[action$='/cancel'] button", "", "Done: cancel").await;
    sign_out().await;

    // Another approver approves the late plan, and it runs to its confirmation.
    sign_in_as("anne").await;
    browser.goto(&format!("{base}/dashboard/requests/{late}")).await;
    browser.wait_for("Approve this plan").await;
    // Executing takes Google two seconds here: the page after approving shows the request
    // running, and follows it by itself (htmx) until it is done — no reload from the test.
    let page = act("form[action$='/approve'] button", "", "Done: approve").await;
    assert!(
        page.contains("id=\"poller\" hx-get") && page.contains("in_progress"),
        "{page}"
    );
    // The same document (no reload: the mark survives) takes in the timeline and the status.
    let mark = "window.__dsr_test_mark = 'same page'; return true;";
    browser.c().execute(mark, vec![]).await.unwrap();
    let page = browser.wait_for("Finalised: completed").await;
    assert!(page.contains("The request is now completed."), "{page}");
    // Polling stops: no element asks for news any more.
    let started = std::time::Instant::now();
    loop {
        let polling = browser
            .c()
            .execute("return document.querySelectorAll('[hx-get]').length;", vec![])
            .await
            .unwrap();
        if polling == serde_json::json!(0) {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "still polling");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let same = browser
        .c()
        .execute("return window.__dsr_test_mark || null;", vec![])
        .await
        .unwrap();
    assert_eq!(same, serde_json::json!("same page"), "updated in place, not reloaded");
    // The notice's link (from the keyboard) loads the page with what applies now.
    browser.tab_to("#notice a").await;
    browser.keys(&enter.to_string()).await;
    let page = browser
        .wait_for("No action applies to this request now: it has ended")
        .await;
    assert!(page.contains("Download the signed confirmation"), "{page}");
    assert!(
        page.contains("<summary>Evidence</summary>"),
        "the processor's evidence: {page}"
    );
    browser.shot("dashboard-approved").await;

    browser.goto(&format!("{base}/dashboard/processors")).await;
    browser.wait_for("Run the checks now").await;
    act("form[action='/dashboard/processors'] button", "", "processor google").await;
    let runs = util::ledger_value(&d, "SELECT COUNT(*) FROM audit_log WHERE event = 'operator.ran_checks'");
    assert_eq!(runs, "1", "each run of the checks is recorded");
    let text = browser.find("main").await.text().await.unwrap();
    assert!(
        text.contains("processor google\nok") || text.contains("processor google ok"),
        "{text}"
    );
    accessible("processors").await;

    browser.goto(&format!("{base}/dashboard/audit")).await;
    act("form[action='/dashboard/audit'] button", "", "The chain is whole").await;
    accessible("audit").await;
    sign_out().await;

    // A viewer reads but cannot act: no form, and a post it makes anyway is refused with a page.
    sign_in_as("ola").await;
    browser.goto(&format!("{base}/dashboard/requests/{failing}")).await;
    let page = browser.wait_for("Your account can read but not act").await;
    assert!(!page.contains("Retry the failed tasks"), "{page}");
    browser
        .c()
        .execute(
            "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
             const c = document.createElement('input'); c.name = 'csrf';
             c.value = document.querySelector('input[name=csrf]').value; f.appendChild(c);
             document.body.appendChild(f); f.submit(); return true;",
            vec![serde_json::json!(format!("/dashboard/requests/{failing}/retry"))],
        )
        .await
        .unwrap();
    let page = browser.wait_for("Not allowed").await;
    assert!(page.contains("ola is a viewer"), "{page}");
    accessible("refused").await;
    browser.close().await;

    let events = |id: &str| d.dsr_json(&["audit", "events", id]).1.to_string();
    let late_events = events(&late);
    assert!(
        late_events.contains("request.approved") && late_events.contains("dashboard:anne"),
        "{late_events}"
    );
    let failing_events = events(&failing);
    assert!(failing_events.contains("request.retried"), "{failing_events}");
    assert!(
        failing_events.contains("operator.refused") && failing_events.contains("dashboard:ola"),
        "{failing_events}"
    );
    assert!(events(&to_reject).contains("request.rejected"));
    let cancelled = events(&to_cancel);
    assert!(
        cancelled.contains("request.extended") && cancelled.contains("dashboard:kari"),
        "{cancelled}"
    );
    assert!(cancelled.contains("request.cancelled"), "{cancelled}");
    let (_, status) = d.dsr_json(&["status", &to_cancel]);
    assert_eq!(status["status"], "cancelled", "{status}");
}

/// A deployment whose erasures wait for approval with four-eyes, whose Google finds two
/// records (`google` adds to its script) and whose Wix fails every time, with four
/// accounts: kari and anne (approvers), per (operator), ola (viewer).
fn team(google: &str) -> Deployment {
    let d = Deployment::sqlite(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[dashboard]\nsecure_cookie = false\n\
         [erasure]\napproval = \"required\"\nfour_eyes = true\n\
         [test_connector.google]\nrecords_per_email = 2\n{google}\
         [test_connector.wix]\nfail_attempts = 1000\nfailure = \"permanent\"\n"
    ));
    for (name, role) in [
        ("kari", "approver"),
        ("anne", "approver"),
        ("per", "operator"),
        ("ola", "viewer"),
    ] {
        assert_eq!(add_user(&d, name, role, PASSWORD).0, 0);
    }
    d
}

/// `dsr enqueue KIND --email … --processor PROCESSOR --by BY`: the request's id.
fn enter(d: &Deployment, kind: &str, processor: &str, by: &str) -> String {
    let (code, created) = d.dsr_json(&[
        "enqueue",
        kind,
        "--email",
        SEEDED_EMAIL,
        "--processor",
        processor,
        "--by",
        by,
    ]);
    assert_eq!(code, 0, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// Gets `url` with the session cookie `session`.
async fn get_as(session: &str, url: &str) -> reqwest::Response {
    client().get(url).header(COOKIE, session).send().await.unwrap()
}

/// Posts `form` to `url` with the session cookie `session`.
async fn post_form(session: &str, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(url)
        .header(COOKIE, session)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The value of the hidden field `name` in `page`.
fn hidden(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        .to_string()
}

async fn wait_status(d: &Deployment, id: &str, want: &str) {
    let started = std::time::Instant::now();
    loop {
        let (_, status) = d.dsr_json(&["status", id]);
        if status["status"] == want {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "waiting for {want}: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_approver_approves_a_plan_an_operator_retries_a_failed_task_and_a_viewer_cannot_act() {
    let d = team("");
    let erasure = enter(&d, "erasure", "google", "kari");
    let exported = enter(&d, "access", "google", "per");
    let access = enter(&d, "access", "wix", "per");
    let server = Server::start(&d, true);
    let base = &server.base;
    let http = client();
    wait_status(&d, &erasure, "awaiting_approval").await;
    wait_status(&d, &access, "failed").await;
    wait_status(&d, &exported, "completed").await;
    let page_of = |session: String, id: String| {
        let url = format!("{base}/dashboard/requests/{id}");
        async move { signed_in_page(&session, &url).await }
    };

    // A viewer sees the plan but no action, and a forged post is refused and recorded.
    let viewer = sign_in(base, "ola", PASSWORD).await.unwrap();
    let page = page_of(viewer.clone(), erasure.clone()).await;
    assert!(
        page.contains("waiting for approval") && !page.contains("Approve this plan"),
        "{page}"
    );
    assert!(page.contains("Your account can read but not act"));
    let refused = post_form(
        &viewer,
        &format!("{base}/dashboard/requests/{erasure}/approve"),
        &[("csrf", hidden(&page, "csrf").as_str()), ("plan", "anything")],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let said = refused.text().await.unwrap();
    assert!(
        said.contains("<h1>Not allowed</h1>") && said.contains("ola is a viewer"),
        "a refusal is a page: {said}"
    );
    // An operator may retry but not approve.
    let operator = sign_in(base, "per", PASSWORD).await.unwrap();
    let page = page_of(operator.clone(), erasure.clone()).await;
    assert!(
        !page.contains("Approve this plan") && page.contains("Cancel the request"),
        "{page}"
    );

    // Four-eyes: kari entered the erasure, so kari cannot approve it — not on the page, not
    // by a forged post, not on the command line.
    let entered = sign_in(base, "kari", PASSWORD).await.unwrap();
    let page = page_of(entered.clone(), erasure.clone()).await;
    assert!(
        page.contains("You entered this request") && !page.contains("Approve this plan"),
        "{page}"
    );
    let (_, plan_doc) = d.dsr_json(&["plan", &erasure]);
    let plan = plan_doc["plan"].as_str().unwrap().to_string();
    let own = post_form(
        &entered,
        &format!("{base}/dashboard/requests/{erasure}/approve"),
        &[("csrf", hidden(&page, "csrf").as_str()), ("plan", plan.as_str())],
    )
    .await;
    assert_eq!(own.status(), StatusCode::FORBIDDEN);
    assert!(own.text().await.unwrap().contains("Not allowed: four-eyes"));
    // An operator's forged approval is refused too (approvers only).
    let page = page_of(operator.clone(), erasure.clone()).await;
    let forged = post_form(
        &operator,
        &format!("{base}/dashboard/requests/{erasure}/approve"),
        &[("csrf", hidden(&page, "csrf").as_str()), ("plan", plan.as_str())],
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // On the command line, with four-eyes, names are accounts: an unknown one is refused,
    // and the account that entered the request cannot approve it there either.
    let out = d.dsr(&["approve", &erasure, "--plan", &plan, "--by", "nobody"]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(util::stderr(&out).contains("is no account"), "{}", util::stderr(&out));
    let out = d.dsr(&["approve", &erasure, "--plan", &plan, "--by", "per"]);
    assert!(
        util::stderr(&out).contains("takes an approver account"),
        "{}",
        util::stderr(&out)
    );
    let out = d.dsr(&["enqueue", "access", "--email", SEEDED_EMAIL, "--by", "someone-else"]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(
        util::stderr(&out).contains("`someone-else` is no account"),
        "{}",
        util::stderr(&out)
    );
    let out = d.dsr(&["approve", &erasure, "--plan", &plan, "--by", "kari"]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    assert!(
        util::stderr(&out).contains("another approver"),
        "{}",
        util::stderr(&out)
    );

    // Another approver approves exactly the plan shown, and the erasure runs.
    let approver = sign_in(base, "anne", PASSWORD).await.unwrap();
    let page = page_of(approver.clone(), erasure.clone()).await;
    assert_eq!(hidden(&page, "plan"), plan);
    let approved = post_form(
        &approver,
        &format!("{base}/dashboard/requests/{erasure}/approve"),
        &[("csrf", hidden(&page, "csrf").as_str()), ("plan", plan.as_str())],
    )
    .await;
    assert_eq!(
        approved.status(),
        StatusCode::SEE_OTHER,
        "{}",
        approved.text().await.unwrap()
    );
    wait_status(&d, &erasure, "completed").await;

    // The request's page links its confirmation and bundle for operators, not viewers; each
    // download is recorded.
    let page = page_of(viewer.clone(), erasure.clone()).await;
    assert!(
        !page.contains(&format!("/dashboard/requests/{erasure}/confirmation")),
        "{page}"
    );
    let refused = get_as(&viewer, &format!("{base}/dashboard/requests/{exported}/bundle")).await;
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "a viewer does not download a subject's data"
    );
    let page = page_of(operator.clone(), erasure.clone()).await;
    assert!(
        page.contains(&format!("/dashboard/requests/{erasure}/confirmation")),
        "{page}"
    );
    let confirmation = get_as(&operator, &format!("{base}/dashboard/requests/{erasure}/confirmation")).await;
    assert_eq!(confirmation.status(), StatusCode::OK);
    let confirmation: serde_json::Value = confirmation.json().await.unwrap();
    assert_eq!(confirmation["request_id"], erasure.as_str(), "{confirmation}");
    let bundle = get_as(&operator, &format!("{base}/dashboard/requests/{exported}/bundle")).await;
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().starts_with(b"PK\x03\x04"), "a ZIP");
    let none = get_as(&operator, &format!("{base}/dashboard/requests/{erasure}/bundle")).await;
    assert_eq!(none.status(), StatusCode::NOT_FOUND, "an erasure has no bundle");
    let downloads = |id: &str| {
        let (_, events) = d.dsr_json(&["audit", "events", id]);
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "export.downloaded")
            .map(|e| {
                format!(
                    "{}:{}",
                    e["detail"]["by"].as_str().unwrap(),
                    e["detail"]["file"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(downloads(&exported), ["dashboard:per:bundle"]);
    assert_eq!(
        downloads(&erasure),
        ["dashboard:per:confirmation"],
        "the missing bundle recorded nothing"
    );

    // A page polling a request (htmx): nothing new since the event it shows, nothing to swap
    // (204); otherwise the regions to swap, and a notice when the status it was loaded with
    // ended; an ended request's page does not poll. Polling does not keep the session alive.
    let seq = util::ledger_value(
        &d,
        &format!("SELECT MAX(seq) FROM audit_log WHERE request_id = '{access}'"),
    );
    let poll = |query: String, session: String| {
        client()
            .get(format!("{base}/dashboard/requests/{access}?{query}"))
            .header(COOKIE, session)
            .header("hx-request", "true")
            .header("hx-trigger", "poller")
            .send()
    };
    let seen = |who: &str| {
        util::ledger_value(
            &d,
            &format!("SELECT MAX(last_seen_at) FROM operator_sessions WHERE operator = '{who}' AND ended_at IS NULL"),
        )
    };
    let before = seen("per");
    let quiet = poll(format!("since=failed&acts=retry&seq={seq}&late=0"), operator.clone())
        .await
        .unwrap();
    assert_eq!(quiet.status(), StatusCode::NO_CONTENT);
    assert_eq!(seen("per"), before, "a poll is not someone using the dashboard");
    let moved = poll("since=in_progress&acts=cancel,extend&seq=1".into(), operator.clone())
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    let page = moved.text().await.unwrap();
    assert!(page.contains("The request is now failed."), "{page}");
    assert!(!page.contains("hx-get"), "no poller on an ended request's page: {page}");
    // The actions on offer changed (as when a task fails while others run): said so.
    let offer = poll("since=failed&acts=cancel&seq=1&late=0".into(), operator.clone())
        .await
        .unwrap();
    let page = offer.text().await.unwrap();
    assert!(
        page.contains("What can be done with this request has changed."),
        "{page}"
    );
    // A page from before polls carried the last event is loaded again once.
    let old = poll("since=in_progress".into(), operator.clone()).await.unwrap();
    assert_eq!(
        old.headers().get("hx-refresh").map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let health = client().get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        health.headers()["x-content-type-options"],
        "nosniff",
        "every answer, not only pages"
    );
    let expired = poll("seq=1".into(), "dsr_session=not-a-session".into()).await.unwrap();
    assert_eq!(
        expired.headers().get("hx-redirect").map(|v| v.to_str().unwrap()),
        Some("/dashboard/sign-in"),
        "a poll whose session ended sends the page to the sign-in page"
    );

    // Through the API, four-eyes holds for the token that entered the request.
    let desk = util::server::token(&d, "desk", "requests:write,requests:read,requests:approve");
    let created: serde_json::Value = http
        .post(format!("{base}/v1/requests"))
        .bearer_auth(&desk)
        .json(&serde_json::json!({"kind": "erasure", "email": [SEEDED_EMAIL], "processors": ["google"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_token = created["id"].as_str().unwrap().to_string();
    wait_status(&d, &by_token, "awaiting_approval").await;
    let (_, plan_doc) = d.dsr_json(&["plan", &by_token]);
    let own = http
        .post(format!("{base}/v1/requests/{by_token}/approve"))
        .bearer_auth(&desk)
        .json(&serde_json::json!({"plan": plan_doc["plan"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::CONFLICT);
    assert!(own.text().await.unwrap().contains("four_eyes"));
    let (_, events) = d.dsr_json(&["audit", "events", &by_token]);
    assert!(
        events.to_string().contains("\"why\":\"four_eyes\"") && events.to_string().contains("token:desk"),
        "the API's four-eyes refusal is recorded: {events}"
    );
    // The API's downloads are recorded as the dashboard's are; a HEAD is not a download.
    let head = http
        .head(format!("{base}/v1/requests/{exported}/bundle"))
        .bearer_auth(&desk)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let got = http
        .get(format!("{base}/v1/requests/{exported}/bundle"))
        .bearer_auth(&desk)
        .send()
        .await
        .unwrap();
    assert!(got.bytes().await.unwrap().starts_with(b"PK\x03\x04"));
    assert_eq!(downloads(&exported), ["dashboard:per:bundle", "token:desk:bundle"]);

    // Something missing is said as such (400), and nothing changes.
    let page = page_of(operator.clone(), access.clone()).await;
    let missing = post_form(
        &operator,
        &format!("{base}/dashboard/requests/{access}/extend"),
        &[
            ("csrf", hidden(&page, "csrf").as_str()),
            ("months", "1"),
            ("reason", " "),
        ],
    )
    .await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert!(missing.text().await.unwrap().contains("An extension needs a reason"));

    // A viewer cannot run the processors' checks; the refusal is recorded.
    let page = signed_in_page(&viewer, &format!("{base}/dashboard/processors")).await;
    assert!(!page.contains("Run the checks now"), "{page}");
    let refused = post_form(
        &viewer,
        &format!("{base}/dashboard/processors"),
        &[("csrf", hidden(&page, "csrf").as_str())],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refusals = util::ledger_value(
        &d,
        "SELECT COUNT(*) FROM audit_log WHERE event = 'operator.refused' AND detail LIKE '%\"checks\"%'",
    );
    assert_eq!(refusals, "1");

    // The operator retries the failed task: it is queued again, in the operator's name.
    let page = page_of(operator.clone(), access.clone()).await;
    assert!(page.contains("Retry the failed tasks"), "{page}");
    let retried = post_form(
        &operator,
        &format!("{base}/dashboard/requests/{access}/retry"),
        &[("csrf", hidden(&page, "csrf").as_str())],
    )
    .await;
    assert_eq!(
        retried.status(),
        StatusCode::SEE_OTHER,
        "{}",
        retried.text().await.unwrap()
    );

    let (_, events) = d.dsr_json(&["audit", "events", &erasure]);
    let text = events.to_string();
    assert!(
        text.contains("\"by\":\"dashboard:anne\""),
        "the approval names the approver: {text}"
    );
    assert!(
        text.contains("operator.refused") && text.contains("dashboard:ola") && text.contains("four_eyes"),
        "the viewer's and the enterer's refusals are recorded: {text}"
    );
    let (_, events) = d.dsr_json(&["audit", "events", &access]);
    assert!(events.to_string().contains("dashboard:per"), "{events}");

    // The audit page verifies the chain on demand, and names the first broken event.
    let whole = signed_in_page(&viewer, &format!("{base}/dashboard/audit?verify=1")).await;
    assert!(whole.contains("The chain is whole"), "{whole}");
    util::ledger_sql(&d, "UPDATE audit_log SET detail = '{\"forged\":true}' WHERE seq = 2");
    let broken = signed_in_page(&viewer, &format!("{base}/dashboard/audit?verify=1")).await;
    assert!(
        broken.contains("The chain is broken") && broken.contains("#2"),
        "{broken}"
    );
}

#[test]
fn the_vendored_htmx_is_the_npm_packages_file_unchanged() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let package = root.join("tests/browser/node_modules/htmx.org/dist/htmx.min.js");
    let package = std::fs::read(&package).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/test installs it: npm ci --prefix tests/browser)",
            package.display()
        )
    });
    let vendored = std::fs::read(root.join("src/server/dashboard/assets/htmx.min.js")).unwrap();
    assert!(
        vendored == package,
        "src/server/dashboard/assets/htmx.min.js differs from htmx.org's dist/htmx.min.js"
    );
}
