//! Bad input exits 2 with a message naming the problem, and writes nothing.

mod util;

use util::{Deployment, SEEDED_EMAIL, stderr};

const CONNECTORS: &str = "[test_connector.google]\n[test_connector.wix]\n";

fn assert_refused(deployment: &Deployment, args: &[&str], names: &str) {
    let out = deployment.dsr(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "dsr {args:?} should exit 2; stderr: {err}");
    assert!(
        err.contains(names),
        "dsr {args:?}: the message should name `{names}`: {err}"
    );
    assert!(
        !deployment.data().exists(),
        "dsr {args:?} wrote {} although the input was bad",
        deployment.data().display()
    );
}

#[test]
fn bad_requests_exit_2_naming_the_problem_and_write_nothing() {
    let d = Deployment::sqlite(CONNECTORS);
    assert_refused(&d, &["enqueue", "access", "--name", "Kari Nordmann"], "--email");
    assert_refused(&d, &["enqueue", "access"], "no identity");
    assert_refused(
        &d,
        &["enqueue", "access", "--email", "kari@@example.no"],
        "kari@@example.no",
    );
    assert_refused(
        &d,
        &["enqueue", "access", "--email", "Kari <kari@example.no>"],
        "not a valid e-mail",
    );
    assert_refused(&d, &["enqueue", "deletion", "--email", SEEDED_EMAIL], "deletion");
    assert_refused(&d, &["retry", "some-id", "--processor", "dropbox"], "dropbox");
    assert_refused(&d, &["list", "--status", "done"], "done");
    // Each with a valid subject, so only the named part is wrong.
    let cases: &[(&str, &[&str], &str)] = &[
        ("access", &["--processor", "dropbox"], "dropbox"),
        ("access", &["--processor", "superoffice"], "superoffice"),
        ("rectification", &["--set", "shoe_size=44"], "shoe_size"),
        ("rectification", &[], "--set"),
        ("rectification", &["--set", "email=not-an-address"], "not-an-address"),
        ("access", &["--set", "company=Racom"], "rectification"),
        ("access", &["--dry-run"], "--dry-run"),
        ("access", &["--phone", "12"], "12"),
        ("access", &["--lang", "de"], "de"),
    ];
    for (kind, extra, names) in cases {
        let mut args = vec!["enqueue", kind, "--email", SEEDED_EMAIL];
        args.extend_from_slice(extra);
        assert_refused(&d, &args, names);
    }
}

#[test]
fn a_config_with_an_unknown_key_exits_2_naming_the_key() {
    let d = Deployment::sqlite("[controller]\ntimezone = \"Europe/Oslo\"\n");
    assert_refused(&d, &["enqueue", "access", "--email", SEEDED_EMAIL], "timezone");
    assert_refused(&d, &["status", "x"], "timezone");
    let d = Deployment::sqlite("[processors.dropbox]\nenabled = true\n");
    assert_refused(&d, &["doctor"], "dropbox");
}

#[test]
fn environment_overrides_are_checked_like_the_file() {
    let d = Deployment::sqlite(CONNECTORS);
    let out = d
        .command()
        .env("DSR_QUEUE__URLL", "redis://127.0.0.1:6379")
        .args(["enqueue", "access", "--email", SEEDED_EMAIL])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("urll"), "{}", stderr(&out));
    assert!(!d.data().exists());
}

#[test]
fn unknown_commands_and_missing_config_exit_2() {
    let d = Deployment::sqlite(CONNECTORS);
    let out = d.dsr(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(util::dsr_bin())
        .args(["--config", "/nonexistent/dsr.toml", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/dsr.toml"), "{}", stderr(&out));
}

#[test]
fn an_unreachable_ledger_exits_3() {
    let d = Deployment::sqlite(&format!("{CONNECTORS}\n"));
    let out = d
        .command()
        .env("DSR_STORE__URL", "postgres://nobody:wrong@127.0.0.1:1/none")
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("ledger"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("wrong"),
        "the password must not be printed: {}",
        stderr(&out)
    );
}

/// Request kinds, processors and languages are the enums' names: clap refuses any other
/// before anything runs, listing the allowed values, and `--help` lists them too.
#[test]
fn kinds_processors_and_languages_are_refused_by_clap_with_the_allowed_values() {
    let d = Deployment::sqlite(CONNECTORS);
    let kinds = "[possible values: access, erasure, rectification, objection, portability]";
    // Processors are the four or `opendsr.<name>`: checked by a parser, not a fixed list.
    let processors = "google, microsoft365, superoffice, wix, or opendsr.<name>";
    let langs = "[possible values: nb, en]";
    assert_refused(&d, &["run", "deletion", "--email", SEEDED_EMAIL], kinds);
    assert_refused(
        &d,
        &["run", "access", "--email", SEEDED_EMAIL, "--processor", "nope"],
        processors,
    );
    assert_refused(
        &d,
        &["enqueue", "access", "--email", SEEDED_EMAIL, "--lang", "de"],
        langs,
    );
    assert_refused(&d, &["retry", "some-id", "--processor", "nope"], processors);

    for command in ["run", "enqueue"] {
        let out = d.dsr(&[command, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        for listed in [kinds, processors, langs] {
            assert!(
                help.contains(listed),
                "dsr {command} --help should list {listed}: {help}"
            );
        }
    }
}
