//! The Microsoft 365 connector through the real `dsr` binary against the fake Graph in
//! `fixtures/`. The connector's own tests are in `connectors/microsoft365/tests/` (access,
//! erasure, rectification).

mod util;

use dsr_fixtures::graph::GraphFake;

const KARI: &str = "kari.nordmann@example.no";

fn config_text(fake: &GraphFake, dir: &std::path::Path, extra: &str) -> String {
    let text = fake.connector_toml(&dir.join("graph-secret")).unwrap();
    format!("{text}page_size = 4\n{extra}")
}

/// The real binary, a request through the queue against the fake, with Graph misbehaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_completes_through_token_expiry_429s_and_a_503() {
    let fake = GraphFake::start().await.unwrap();
    let deployment = util::Deployment::sqlite("");
    let section = config_text(&fake, deployment.path(), "");
    let text = std::fs::read_to_string(&deployment.config).unwrap();
    std::fs::write(
        &deployment.config,
        format!("{text}[processors.microsoft365]\n{section}"),
    )
    .unwrap();

    // Warm a token, then expire it and queue throttling and an outage for the real run.
    let (code, first) =
        util::dsr_json_async(&deployment, &["run", "access", "--email", KARI, "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{first}");
    assert_eq!(util::task(&first, "microsoft365")["records"]["found"], 33);
    // `dsr status` names the mailboxes that could not be searched, to the operator.
    let notes = util::task(&first, "microsoft365")["operator_notes"].to_string();
    assert!(
        notes.contains("eva.lund@racom.no") && notes.contains("hr@racom.no"),
        "{notes}"
    );
    let bundle = std::fs::read(first["bundle"].as_str().unwrap()).unwrap();
    assert!(
        !String::from_utf8_lossy(&bundle).contains("eva.lund") && !bundle.windows(10).any(|w| w == b"hr@racom.n"),
        "the subject's bundle names no colleague's account"
    );
    // So does `dsr doctor`.
    let (_, doctor) = util::dsr_json_async(&deployment, &["doctor"]).await;
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "processor microsoft365")
        .unwrap();
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["detail"].as_str().unwrap().contains("lars.berg@partner.example"),
        "{check}"
    );
    fake.expire_tokens();
    fake.throttle_next(3, "0.1");
    fake.fail_next(1);
    let (code, status) =
        util::dsr_json_async(&deployment, &["run", "erasure", "--email", KARI, "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["status"], "completed");
    assert_eq!(util::task(&status, "microsoft365")["records"]["changed"], 30);
    assert_eq!(
        fake.holdings_of(KARI),
        (3, 0),
        "the three messages that also name other people are retained by default"
    );
    let confirmation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(status["confirmation"].as_str().unwrap()).unwrap()).unwrap();
    let evidence = &confirmation["processors"][0]["evidence"];
    assert!(
        evidence
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "verification_search"),
        "{confirmation}"
    );

    let (code, doctor) = util::dsr_json_async(&deployment, &["doctor"]).await;
    let m365 = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "processor microsoft365")
        .unwrap();
    assert_eq!(m365["ok"], true, "{doctor}");
    assert_eq!(code, 0, "doctor finds everything in order: {doctor}");

    let (code, objection) =
        util::dsr_json_async(&deployment, &["run", "objection", "--email", KARI, "--timeout", "60s"]).await;
    assert_eq!(code, 0, "{objection}");
    assert_eq!(util::task(&objection, "microsoft365")["status"], "not_applicable");
}
