//! Nothing personal is kept by mistake: every fake vendor answers its error paths (its API
//! calls with 400, 403, 404 and 500, its token endpoint with 401) with words that quote the
//! subject's address in every encoding a vendor might echo it in (plain, upper case,
//! percent-encoded, Gmail's dot-free form), a service account's address, a key id and a URL
//! with a query — as real vendors do when they echo the request. The real `dsr` binary runs
//! access and erasure requests against all four through them, and then the ledger (tasks,
//! requests, plans, the audit chain), the audit notes beside the chain, what `dsr status`
//! prints, the bundle, the confirmation and the worker's log are searched for each of them.
//! Only the audit notes may keep the vendor's words, scrubbed of identities and addresses
//! (pseudonymisation removes them: `tests/ledger.rs`).

mod util;

use std::io::Read;
use std::path::Path;

use dsr_fixtures::faults::VendorErrorFault;
use dsr_fixtures::google::{GoogleFake, TEST_PRIVATE_KEY};
use dsr_fixtures::graph::GraphFake;
use dsr_fixtures::superoffice::{SYSTEM_USER_KEY_PEM, SuperOfficeFake};
use dsr_fixtures::wix::WixFake;
use serde_json::Value;
use util::Deployment;

const SUBJECT: &str = util::SEEDED_EMAIL;
/// Words only a vendor's error answer carries: never in what dsr stores or shows.
const MARKER: &str = "vendor-words-7731";
const SERVICE_ACCOUNT: &str = "dsr-sa@dsr-project.iam.gserviceaccount.com";
const KEY_ID: &str = "4f2a9c0e11b7";

/// The subject's phone number, as the operator types it.
const PHONE: &str = "+47 912 34 567";

/// The subject's address and phone number as vendors echo them, lowercase (haystacks are
/// lowercased).
fn subject_forms() -> Vec<String> {
    let (local, domain) = SUBJECT.split_once('@').unwrap();
    vec![
        SUBJECT.to_string(),
        format!("{local}%40{domain}"),
        format!("{local}%2540{domain}"),
        format!("{}@{domain}", local.replace('.', "")),
        "4791234567".to_string(),
        "912 34 567".to_string(),
        "91234567".to_string(),
    ]
}

/// What every fake's error says.
fn vendor_text() -> String {
    let (local, domain) = SUBJECT.split_once('@').unwrap();
    format!(
        "{MARKER}: no match for '{SUBJECT}' ({}), {} nor {}@{domain}, phone {PHONE} (912 34 567, %2B4791234567); \
         request https://api.vendor.example/v1/search?q={local}%40{domain}&key={KEY_ID} refused for {SERVICE_ACCOUNT} \
         (key {KEY_ID})",
        SUBJECT.to_uppercase(),
        format_args!("{local}%40{domain}"),
        local.replace('.', ""),
    )
}

struct Fakes {
    graph: GraphFake,
    google: GoogleFake,
    superoffice: SuperOfficeFake,
    wix: WixFake,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            graph: GraphFake::start().await.unwrap(),
            google: GoogleFake::start().await.unwrap(),
            superoffice: SuperOfficeFake::start().await.unwrap(),
            wix: WixFake::start().await.unwrap(),
        }
    }

    fn arm(&self, fault: VendorErrorFault) {
        self.graph.arm_vendor_error(fault.clone());
        self.google.arm_vendor_error(fault.clone());
        self.superoffice.arm_vendor_error(fault.clone());
        self.wix.arm_vendor_error(fault);
    }

    /// A deployment with all four processors configured against the fakes.
    fn deployment(&self) -> Deployment {
        let d = Deployment::sqlite("");
        let dir = d.path();
        let graph = self.graph.connector_toml(&dir.join("graph-secret")).unwrap();
        let google = self
            .google
            .connector_toml(&dir.join("google-sa.json"), TEST_PRIVATE_KEY)
            .unwrap();
        let users: Vec<String> = self
            .google
            .workspace_users()
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect();
        let superoffice = self
            .superoffice
            .connector_toml(&dir.join("so.pem"), SYSTEM_USER_KEY_PEM)
            .unwrap();
        let wix = self.wix.connector_toml(&dir.join("wix-key")).unwrap();
        let text = std::fs::read_to_string(&d.config)
            .unwrap()
            .replace("[worker]\n", "[worker]\nmax_attempts = 2\n");
        std::fs::write(
            &d.config,
            format!(
                "{text}[processors.microsoft365]\n{graph}\n[processors.google]\n{google}\
                 workspace = {{ mailboxes = [{}] }}\n[processors.superoffice]\n{superoffice}\n\
                 [processors.wix]\n{wix}\n",
                users.join(", ")
            ),
        )
        .unwrap();
        d
    }
}

/// Runs `kind` for the subject through the real binary; the status it printed and its log.
async fn run(d: &Deployment, kind: &str) -> (Value, String) {
    let mut command = tokio::process::Command::from(d.command());
    let out = command
        .args([
            "--json",
            "run",
            kind,
            "--email",
            SUBJECT,
            "--phone",
            PHONE,
            "--timeout",
            "120s",
        ])
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let status: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("dsr run {kind} printed no JSON ({e}); log:\n{log}"));
    (status, log)
}

/// The ledger's text outside the columns that hold the request's identities (which must
/// hold them until pseudonymisation), and the audit notes apart.
async fn ledger_text(db: &Path) -> (String, String) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let mut stored = String::new();
    for query in [
        "SELECT COALESCE(bundle, '') || COALESCE(confirmation, '') || COALESCE(finalize_error, '') FROM requests",
        "SELECT evidence || COALESCE(reason, '') || COALESCE(error, '') || COALESCE(spool, '') FROM tasks",
        "SELECT event || detail FROM audit_log",
        "SELECT item || state FROM plan_items",
        "SELECT body || COALESCE(verification, '') FROM plans",
    ] {
        for row in sqlx::query(query).fetch_all(&pool).await.unwrap() {
            stored.push_str(&sqlx::Row::get::<String, _>(&row, 0));
            stored.push('\n');
        }
    }
    let mut notes = String::new();
    for row in sqlx::query("SELECT COALESCE(text, '') FROM audit_notes")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        notes.push_str(&sqlx::Row::get::<String, _>(&row, 0));
        notes.push('\n');
    }
    pool.close().await;
    (stored.to_lowercase(), notes.to_lowercase())
}

/// Every entry of the ZIP at `path`, as text.
fn zip_text(path: &Path) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut text = String::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    text.to_lowercase()
}

/// `haystack` (lowercase) holds none of `needles`; `what` names it in the failure.
fn assert_none(what: &str, haystack: &str, needles: &[String]) {
    for needle in needles {
        if let Some(at) = haystack.find(&needle.to_lowercase()) {
            let context: String = haystack[at..].chars().take(needle.len() + 160).collect();
            let before: String = haystack[..at]
                .chars()
                .rev()
                .take(160)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("{what} holds `{needle}`: …{before}{context}…");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_error_words_are_never_stored_shown_or_logged() {
    let fakes = Fakes::start().await;
    let d = fakes.deployment();
    let text = vendor_text();
    let vendor_only: Vec<String> = vec![MARKER.into(), SERVICE_ACCOUNT.into(), KEY_ID.into()];
    let mut everything = subject_forms();
    everything.extend(vendor_only.iter().cloned());

    let mut logs = String::new();
    let mut shown = String::new();
    let mut codes = Vec::new();
    let mut requests = Vec::new();
    // API calls with each kind of refusal (the token is fetched as usual), then the token
    // endpoints themselves.
    let rounds = [
        ("erasure", VendorErrorFault::forever(400, &text).api_only()),
        ("erasure", VendorErrorFault::forever(403, &text).api_only()),
        ("access", VendorErrorFault::forever(404, &text).api_only()),
        ("access", VendorErrorFault::forever(500, &text).api_only()),
        ("erasure", VendorErrorFault::forever(401, &text)),
    ];
    for (kind, fault) in rounds {
        let status_code = fault.status;
        fakes.arm(fault);
        let (status, log) = run(&d, kind).await;
        assert!(
            matches!(status["status"].as_str(), Some("failed" | "partially_completed")),
            "{kind} with every call answered {status_code}: {status}"
        );
        for task in status["processors"].as_array().unwrap() {
            if task["status"] == "failed" {
                codes.push(format!("{}:{}", task["processor"], task["error"]));
            }
        }
        logs.push_str(&log.to_lowercase());
        // What an operator sees of it later.
        let id = status["id"].as_str().unwrap().to_string();
        let (_, later) = d.dsr_json(&["status", &id]);
        shown.push_str(&status.to_string().to_lowercase());
        shown.push_str(&later.to_string().to_lowercase());
        requests.push(status);
    }
    // Each processor failed in each round, with dsr's text naming the status.
    assert!(codes.len() >= 4 * 5 - 2, "{codes:#?}");
    assert!(codes.iter().any(|c| c.contains("403")), "{codes:#?}");

    let (stored, notes) = ledger_text(&d.data().join("ledger.db")).await;
    assert_none("the ledger", &stored, &everything);
    assert_none("dsr status", &shown, &everything);
    assert_none("the worker's log", &logs, &everything);
    // The vendor's words are kept beside the chain for the operator, without identities.
    assert!(notes.contains(MARKER), "the notes keep what the vendor said");
    assert_none("the audit notes", &notes, &subject_forms());
    assert_none(
        "the audit notes",
        &notes,
        &[SERVICE_ACCOUNT.to_string(), "key=".to_string()],
    );

    // The operator reads them with the event's code: `dsr audit events <id>`.
    let id = requests[1]["id"].as_str().unwrap();
    let (code, events) = d.dsr_json(&["audit", "events", id]);
    assert_eq!(code, 0, "{events}");
    let failed: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "task.failed")
        .collect();
    assert_eq!(failed.len(), 4, "{events}");
    for event in &failed {
        assert!(
            event["detail"]["code"].as_str().unwrap().starts_with("permanent:403"),
            "{event}"
        );
        let note = event["note"].as_str().unwrap().to_lowercase();
        assert!(note.contains("the vendor said: ") && note.contains(MARKER), "{note}");
    }
    assert_none("dsr audit events", &events.to_string().to_lowercase(), &subject_forms());

    // What the subject receives: no vendor words in the bundle (whose records are the
    // subject's own and may name them) or the confirmations.
    for status in &requests {
        if let Some(bundle) = status["bundle"].as_str() {
            assert_none("the bundle", &zip_text(Path::new(bundle)), &vendor_only);
        }
        if let Some(confirmation) = status["confirmation"].as_str() {
            let json = std::fs::read_to_string(confirmation).unwrap().to_lowercase();
            let html = std::fs::read_to_string(Path::new(confirmation).with_extension("html"))
                .unwrap()
                .to_lowercase();
            assert_none("the confirmation", &json, &everything);
            assert_none("the confirmation page", &html, &everything);
        }
    }
    assert!(
        requests.iter().any(|r| r["bundle"].is_string()),
        "an access request made a bundle"
    );
}
