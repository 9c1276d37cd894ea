//! The first hour of a new operator, following the README: secrets in `DSR_…` variables,
//! overrides, `dsr init` and what `dsr doctor` then says.

mod util;

use std::collections::BTreeSet;

use serde_json::Value;
use util::{Deployment, stderr};

/// Every `env:NAME` the README and the operator's guide tell operators to write.
fn readme_secret_names() -> BTreeSet<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = ["README.md", "docs/operator.md"]
        .iter()
        .map(|doc| std::fs::read_to_string(format!("{root}/{doc}")).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    readme
        .split("env:")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| name.starts_with("DSR_"))
        .collect()
}

fn checks(report: &Value) -> Vec<(String, bool, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_readmes_secret_variables_do_not_stop_dsr() {
    let names = readme_secret_names();
    for want in [
        "DSR_GRAPH_SECRET",
        "DSR_LOG_KEY",
        "DSR_WIX_API_KEY",
        "DSR_SO_APP_TOKEN",
        "DSR_SO_SYSTEM_USER_TOKEN",
    ] {
        assert!(names.contains(want), "the README no longer names {want}: {names:?}");
    }
    let d = Deployment::sqlite("[test_connector.wix]\n");
    let mut cmd = d.command();
    for name in &names {
        cmd.env(name, "a-secret-value");
    }
    cmd.env("DSR_QUEUE__POLL", "75ms");
    let out = cmd.args(["--json", "doctor"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "with {names:?} set: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let overrides = checks(&report)
        .into_iter()
        .find(|(name, _, _)| name == "overrides")
        .expect("doctor lists the overrides it applied");
    assert!(overrides.2.contains("DSR_QUEUE__POLL"), "{overrides:?}");
    for name in &names {
        assert!(
            !overrides.2.contains(name.as_str()),
            "{name} is a secret, not an override"
        );
    }
    // The same variables with an ordinary command.
    let mut cmd = d.command();
    for name in &names {
        cmd.env(name, "a-secret-value");
    }
    let out = cmd.args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn an_unknown_key_in_an_override_is_named() {
    let d = Deployment::sqlite("");
    let out = d
        .command()
        .env("DSR_QUEUE__URLL", "redis://x")
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("urll") && err.contains("DSR_"), "{err}");
}

#[test]
fn init_writes_a_config_that_doctor_reads_naming_each_missing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(util::dsr_bin())
            .current_dir(dir.path())
            .env_remove("DSR_CONFIG")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["init", "--processors", "microsoft365,wix"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    for what in [
        "DSR_GRAPH_SECRET",
        "DSR_WIX_API_KEY",
        "DSR_LOG_KEY",
        "Mail.ReadWrite",
        "dsr doctor",
    ] {
        assert!(printed.contains(what), "init does not mention {what}:\n{printed}");
    }
    let text = std::fs::read_to_string(dir.path().join("dsr.toml")).unwrap();
    assert!(text.contains("[processors.microsoft365]") && text.contains("[processors.wix]"));
    assert!(!text.contains("[processors.google]"), "only the processors named");
    assert!(!text.contains("enabled"), "a section present is enabled by itself");

    // A second init does not overwrite the operator's edits.
    let again = run(&["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));

    let out = run(&["--json", "doctor"]);
    assert_eq!(out.status.code(), Some(1), "secrets are missing");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<(String, bool, String)> = checks(&report).into_iter().filter(|c| !c.1).collect();
    let failed_names: BTreeSet<&str> = failed.iter().map(|c| c.0.as_str()).collect();
    let expected: BTreeSet<&str> = [
        // the secrets, each named with its variable
        "privacy.log_key",
        "privacy.pseudonym_key",
        "processors.microsoft365.client_secret",
        "processors.wix.api_key",
        // the company's own values, still placeholders
        "processors.microsoft365.tenant_id",
        "processors.microsoft365.client_id",
        "processors.wix.site_id",
        // and the processors that cannot be checked until those are in place
        "processor microsoft365",
        "processor wix",
    ]
    .into_iter()
    .collect();
    assert_eq!(failed_names, expected, "{report}");
    for (name, variable) in [
        ("privacy.log_key", "DSR_LOG_KEY"),
        ("privacy.pseudonym_key", "DSR_PSEUDONYM_KEY"),
        ("processors.microsoft365.client_secret", "DSR_GRAPH_SECRET"),
        ("processors.wix.api_key", "DSR_WIX_API_KEY"),
    ] {
        let detail = &failed.iter().find(|c| c.0 == name).unwrap().2;
        assert!(detail.contains(variable), "{name}: {detail}");
    }
    let passed: BTreeSet<String> = checks(&report).into_iter().filter(|c| c.1).map(|c| c.0).collect();
    for part in ["config", "ledger", "queue", "export storage"] {
        assert!(
            passed.contains(part),
            "{part} should pass with init's defaults: {report}"
        );
    }
}
