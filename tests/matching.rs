//! Every vendor fake switched to ignore its search filters and return everyone: through the
//! real binary, every right at all four processors exports and changes only what carries the
//! subject's identifier, and the bundle and confirmations count what was refused.

mod util;

use dsr_fixtures::google::{GoogleFake, GoogleState, TEST_PRIVATE_KEY};
use dsr_fixtures::graph::GraphFake;
use dsr_fixtures::superoffice::{SYSTEM_USER_KEY_PEM, SuperOfficeFake};
use dsr_fixtures::wix::WixFake;
use serde_json::Value;
use util::Deployment;

const KARI: &str = "kari.nordmann@example.no";
const LOOK_ALIKE: &str = "annkari.nordmann@example.no";

struct Fakes {
    graph: GraphFake,
    google: GoogleFake,
    superoffice: SuperOfficeFake,
    wix: WixFake,
}

/// All four fakes, each ignoring its search filters, and a deployment configured for them.
async fn deployment() -> (Fakes, Deployment) {
    let fakes = Fakes {
        graph: GraphFake::start().await.unwrap(),
        google: GoogleFake::start().await.unwrap(),
        superoffice: SuperOfficeFake::start().await.unwrap(),
        wix: WixFake::start().await.unwrap(),
    };
    fakes.graph.with(|s| s.faults.ignore_search_filter = true);
    fakes.google.with(|s| s.faults.ignore_search_filter = true);
    fakes.superoffice.with(|s| s.faults.ignore_search_filter = true);
    fakes.wix.with(|s| s.faults.ignore_search_filter = true);
    // Shared items deleted too: the rule must hold even when the company erases the most.
    let d = Deployment::sqlite("[erasure]\nshared = \"delete\"\n");
    let root = d.path().to_path_buf();
    let users: Vec<String> = fakes
        .google
        .workspace_users()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect();
    let sections = format!(
        "[processors.microsoft365]\n{}\n[processors.google]\n{}workspace = {{ mailboxes = [{}] }}\n\n[processors.superoffice]\n{}\n[processors.wix]\n{}",
        fakes.graph.connector_toml(&root.join("graph-secret")).unwrap(),
        fakes
            .google
            .connector_toml(&root.join("google-sa.json"), TEST_PRIVATE_KEY)
            .unwrap(),
        users.join(", "),
        fakes
            .superoffice
            .connector_toml(&root.join("so.pem"), SYSTEM_USER_KEY_PEM)
            .unwrap(),
        fakes.wix.connector_toml(&root.join("wix-key")).unwrap(),
    );
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{text}{sections}")).unwrap();
    (fakes, d)
}

fn subject_args(kind: &'static str) -> Vec<String> {
    [
        "run",
        kind,
        "--email",
        KARI,
        "--phone",
        "+47 912 34 567",
        "--ga-client-id",
        &GoogleState::seed_value(&["subject", "client_id"]),
        "--timeout",
        "120s",
    ]
    .map(String::from)
    .to_vec()
}

async fn run(d: &Deployment, args: &[String]) -> Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, status) = util::dsr_json_async(d, &args).await;
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["status"], "completed", "{status}");
    status
}

fn zip_text(path: &str) -> (String, Value) {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut all = String::new();
    let mut manifest = Value::Null;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if entry.name().unwrap() == "manifest.json" {
            manifest = serde_json::from_str(&text).unwrap();
        }
        all.push_str(&text);
    }
    (all, manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendors_that_ignore_their_filters_never_make_dsr_export_or_change_anyone_else() {
    let (fakes, d) = deployment().await;

    // Access: nothing of the look-alike (or anyone else the vendors returned) in the bundle,
    // and each processor's count of what it refused.
    let access = run(&d, &subject_args("access")).await;
    let (bundle, manifest) = zip_text(access["bundle"].as_str().unwrap());
    assert!(!bundle.contains(LOOK_ALIKE), "the look-alike's data reached the bundle");
    assert!(
        !bundle.contains("ingrid@sensorfirma.example"),
        "the site owner's data reached the bundle"
    );
    let refused: Vec<(String, u64)> = manifest["processors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["processor"].as_str().unwrap().to_string(),
                p["refused_records"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for (processor, n) in &refused {
        assert!(
            *n > 0,
            "{processor} counts what the vendor returned that was not hers: {refused:?}"
        );
    }
    assert!(
        bundle.contains("not yours") || bundle.contains("ikke dine"),
        "the index page says so"
    );

    // Rectification, objection and erasure change nothing of anyone else.
    let before = (
        fakes.graph.holdings_of(LOOK_ALIKE),
        fakes.wix.holdings_of(LOOK_ALIKE),
        fakes.superoffice.with(|s| s.person(102).cloned().map(|p| p.entity)),
    );
    let google_before = fakes.google.holdings_of(LOOK_ALIKE, "");
    let mut rectify = subject_args("rectification");
    rectify.extend(["--set".into(), "family_name=Hansen".into()]);
    run(&d, &rectify).await;
    let look_alike = fakes.superoffice.with(|s| s.person(102).cloned().unwrap());
    assert_eq!(
        look_alike.entity["Lastname"], "Nordmann",
        "SuperOffice's look-alike was renamed"
    );
    let contacts = fakes.graph.with(|s| s.contacts.clone());
    for c in contacts.iter().filter(|c| c.json.to_string().contains(LOOK_ALIKE)) {
        assert_ne!(
            c.json["surname"], "Hansen",
            "Graph's look-alike contact was renamed: {}",
            c.json
        );
    }
    let wix_look_alike = fakes
        .wix
        .with(|s| s.contacts.iter().find(|c| c["id"] == "ct-annkari").cloned().unwrap());
    assert_ne!(
        wix_look_alike["info"]["name"]["last"], "Hansen",
        "Wix's look-alike contact was renamed"
    );
    run(&d, &subject_args("objection")).await;
    let subscriptions = fakes.wix.with(|s| s.subscriptions.clone());
    let theirs = subscriptions.iter().find(|s| s["email"] == LOOK_ALIKE).unwrap();
    assert_eq!(
        theirs["subscriptionStatus"], "SUBSCRIBED",
        "the look-alike was unsubscribed"
    );
    assert!(
        fakes.superoffice.with(|s| s.consent_in_force(102, "EMARKETING")),
        "the look-alike's marketing consent was withdrawn"
    );
    let erasure = run(&d, &subject_args("erasure")).await;
    let after = (
        fakes.graph.holdings_of(LOOK_ALIKE),
        fakes.wix.holdings_of(LOOK_ALIKE),
        fakes.superoffice.with(|s| s.person(102).cloned().map(|p| p.entity)),
    );
    assert_eq!(
        before.0, after.0,
        "Graph: the look-alike's mail or contacts were erased"
    );
    assert_eq!(before.1, after.1, "Wix: the look-alike's records were erased");
    assert!(after.2.is_some(), "SuperOffice: the look-alike person was erased");
    let google_after = fakes.google.holdings_of(LOOK_ALIKE, "");
    assert_eq!(
        (google_before.mail, google_before.contacts, google_before.other_contacts),
        (google_after.mail, google_after.contacts, google_after.other_contacts),
        "Google: the look-alike's mail or contacts were erased"
    );
    assert_eq!(
        fakes.google.holdings_of(KARI, "+4791234567").contacts,
        0,
        "and hers are gone"
    );
    assert_eq!(fakes.graph.holdings_of(KARI), (0, 0), "and hers are gone");
    assert_eq!(fakes.wix.holdings_of(KARI).0, 0);

    // The confirmation lists what was refused, and the verification search counts only hers.
    let confirmation: Value =
        serde_json::from_str(&std::fs::read_to_string(erasure["confirmation"].as_str().unwrap()).unwrap()).unwrap();
    let processors = confirmation["processors"].as_array().unwrap();
    for name in ["microsoft365", "superoffice", "wix"] {
        let p = processors.iter().find(|p| p["processor"] == name).unwrap();
        assert!(
            !p["refused"].as_array().unwrap().is_empty(),
            "{name}: the confirmation lists the items refused as not hers: {p}"
        );
        assert_eq!(
            p["verification"]["remaining"], 0,
            "{name}: a look-alike the search returns again is not 'remaining': {p}"
        );
        let items = p["items"].as_array().unwrap();
        assert!(
            items.iter().any(|i| i["state"] == "not_hers"),
            "{name}: the plan lists the look-alike's items as not hers: {p}"
        );
    }
}
