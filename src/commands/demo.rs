//! `dsr demo`: the whole path on this machine, with no config and no server — access,
//! objection, rectification, an erasure preview (dry run) and the erasure itself (its plan
//! shown and approved, as `[erasure] approval = "required"` asks) for a seeded subject,
//! through the real queue and connectors, written under `./dsr-demo/` and signed with a
//! throwaway Ed25519 key (`./dsr-demo/signing-key.pem`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use dsr_connector::{Email, FieldChange, Identities, RectifyField, SecretRef};
use dsr_jobs::model::{Lang, NewRequest, RequestKind};
use serde_json::json;

use crate::config::Config;
use crate::error::{CliError, bad_input};
use crate::output::status_json;

/// The subject the fake vendors are seeded with.
pub const DEMO_SUBJECT: &str = "kari.nordmann@example.no";

pub async fn demo(loaded: &Config, as_json: bool) -> Result<ExitCode, CliError> {
    let root = std::path::absolute(DEMO_DIR).unwrap_or_else(|_| PathBuf::from(DEMO_DIR));
    std::fs::create_dir_all(&root)
        .map_err(|e| CliError::Unreachable(format!("cannot create {}: {e}", root.display())))?;
    let config = demo_config(loaded, &root)?;
    let written = write_demo_config(&config, &root)?;
    let ignored: Vec<&str> = loaded.enabled_processors().iter().map(|p| p.as_str()).collect();
    if !as_json && !ignored.is_empty() {
        eprintln!(
            "ignoring [processors.{}] from your config and environment: the demo talks only to its own fakes",
            ignored.join("], [processors.")
        );
    }
    let mut config = config;
    config.processors.google = Some(start_google_fake(&root).await?.1);
    config.processors.superoffice = Some(start_superoffice_fake(&root).await?.1);
    config.processors.wix = Some(start_wix_fake(&root).await?.1);
    config.processors.microsoft365 = Some(start_graph_fake(&root).await?.1);
    if !as_json {
        eprintln!(
            "started fake vendors on loopback: Google Analytics, BigQuery, Gmail and People; SuperOffice; Wix; Microsoft Graph"
        );
    }
    let (connectors, _) = crate::wiring::connectors(&config)?;
    let engine = crate::wiring::engine(&config).await?;
    let without: Vec<&str> = dsr_connector::Processor::ALL
        .into_iter()
        .filter(|p| connectors.get(*p).is_none())
        .map(|p| p.display_name())
        .collect();
    if !as_json && !without.is_empty() {
        eprintln!("no connector yet for {}: the demo leaves them out", without.join(", "));
    }
    let subject = demo_subject(&config)?;
    let mut documents = Vec::new();
    let mut all_completed = true;
    let rename = vec![FieldChange {
        field: RectifyField::FamilyName,
        value: "Nordmann-Lie".into(),
    }];
    let steps = [
        (RequestKind::Access, vec![], false),
        (RequestKind::Objection, vec![], false),
        (RequestKind::Rectification, rename, false),
        (RequestKind::Erasure, vec![], true),
        (RequestKind::Erasure, vec![], false),
    ];
    for (kind, changes, dry_run) in steps {
        let new = NewRequest {
            kind,
            identities: subject.clone(),
            changes,
            lang: Lang::En,
            dry_run,
            processors: connectors.processors(),
            received_at: Utc::now(),
            // As an operator would record it (`dsr run … --verified-by`).
            verified_by: crate::request::needs_verification(kind).then(|| "demo: the subject is a fixture".to_string()),
            verified_at: None,
        };
        let (id, mut status) =
            super::requests::process_here(&engine, new, "dsr demo", Duration::from_secs(120), as_json).await?;
        if status == dsr_jobs::model::RequestStatus::AwaitingApproval {
            status = approve_in_demo(&engine, &id, as_json).await?;
        }
        all_completed &= status == dsr_jobs::model::RequestStatus::Completed;
        let request = engine.ledger().get_request(&id).await?;
        let tasks = engine.ledger().tasks(&id).await?;
        if !as_json {
            let preview = if dry_run { " (preview, nothing changed)" } else { "" };
            println!("{kind} request {id}{preview}: {}", request.status);
            println!(
                "  {:<13} {:<15} {:<15} {:>6} {:>8}",
                "processor", "status", "outcome", "found", "changed"
            );
            for t in &tasks {
                println!(
                    "  {:<13} {:<15} {:<15} {:>6} {:>8}",
                    t.processor.as_str(),
                    t.status.as_str(),
                    t.outcome.map(|o| o.as_str()).unwrap_or("-"),
                    t.found,
                    t.changed
                );
            }
            if let Some(b) = &request.bundle {
                println!("  bundle:       {b}");
            }
            if let Some(c) = &request.confirmation {
                println!("  confirmation: {c}");
            }
        }
        documents.push(status_json(&request, &tasks));
    }
    let next = follow_ups(&written, &documents);
    if as_json {
        println!(
            "{}",
            json!({"ran": true, "config": written.display().to_string(), "ignored_processors": ignored, "requests": documents, "next": next})
        );
    } else {
        println!(
            "\nThe demo's ledger, queue, exports and signing key are described by {}:",
            written.display()
        );
        for command in &next {
            println!("  {command}");
        }
    }
    Ok(if all_completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The seeded subject's identities, as the fake vendors hold them.
pub(crate) fn demo_subject(config: &Config) -> Result<Identities, CliError> {
    Ok(Identities {
        emails: vec![Email::parse(DEMO_SUBJECT).map_err(|e| bad_input(e.to_string()))?],
        names: vec!["Kari Nordmann".into()],
        ga_client_ids: vec![dsr_fixtures::google::GoogleState::seed_value(&["subject", "client_id"])],
        ga_user_ids: vec![dsr_fixtures::google::GoogleState::seed_value(&["subject", "user_id"])],
        phones: vec![dsr_connector::Phone::parse("+47 912 34 567", "NO").map_err(|e| bad_input(e.to_string()))?],
        phone_region: Some(config.controller.default_phone_region.clone()),
    })
}

/// The demo's erasure waits for approval (`[erasure] approval = "required"`): shows its plan
/// as `dsr plan` would, approves exactly that plan as `dsr approve` would, and carries it out.
async fn approve_in_demo(
    engine: &dsr_jobs::Engine,
    id: &str,
    as_json: bool,
) -> Result<dsr_jobs::model::RequestStatus, CliError> {
    let ledger = engine.ledger();
    let plans = ledger.plans_awaiting(id).await?;
    let hash = dsr_jobs::ledger::request_plan_hash(&plans);
    let request = ledger.get_request(id).await?;
    if !as_json {
        print!("{}", super::plans::plan_text(id, request.status, &hash, &plans, true));
        println!("\napproving plan {hash} as `dsr approve {id} --plan {hash} --by \"dsr demo\"` would");
    }
    let approved = ledger.approve(id, &hash, "dsr demo", false).await?;
    engine.queue_tasks(id, &approved).await?;
    super::requests::work_on(engine, id, Duration::from_secs(120), as_json).await
}

/// Where the demo writes everything, relative to the working directory.
const DEMO_DIR: &str = "dsr-demo";

/// The demo's own deployment: the embedded ledger and queue, local exports and a throwaway
/// signing key under `root`, worker pacing and controller from the loaded config, and no
/// processor sections (the fakes are added later) and no keys of the operator's.
pub(crate) fn demo_config(loaded: &Config, root: &std::path::Path) -> Result<Config, CliError> {
    let mut config = Config {
        worker: loaded.worker.clone(),
        controller: loaded.controller.clone(),
        ..Config::default()
    };
    config.queue.poll = loaded.queue.poll;
    config.store.url = format!("sqlite://{}/ledger.db", root.display());
    config.queue.url = format!("sqlite://{}/queue.db", root.display());
    config.export.dir = root.join("export");
    config.export.signing_key = Some(throwaway_signing_key(root)?);
    // One approval in the demo: the erasure's plan is shown and approved before it runs.
    config.erasure.approval = crate::config::Approval::Required;
    Ok(config)
}

/// Writes `dsr-demo/dsr.toml`: what `status`, `verify` and `audit verify` need to read the
/// demo's output after its fakes are gone.
fn write_demo_config(config: &Config, root: &std::path::Path) -> Result<PathBuf, CliError> {
    let key = match &config.export.signing_key {
        Some(SecretRef::File(path)) => format!("signing_key = {}\n", toml_string(&format!("file:{}", path.display()))),
        _ => String::new(),
    };
    let text = format!(
        "# Written by `dsr demo`: the demo's ledger, queue, exports and signing key.\n\
         # Use it with `dsr --config {DEMO_DIR}/dsr.toml status|verify|audit verify`.\n\
         [store]\nurl = {}\n\n[queue]\nurl = {}\n\n[export]\ndir = {}\n{key}",
        toml_string(&config.store.url),
        toml_string(&config.queue.url),
        toml_string(&config.export.dir.display().to_string()),
    );
    let path = root.join("dsr.toml");
    std::fs::write(&path, text).map_err(|e| CliError::Unreachable(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// A TOML basic string.
pub(crate) fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Commands that work on what the demo wrote, in the order an operator would try them.
fn follow_ups(config: &std::path::Path, documents: &[serde_json::Value]) -> Vec<String> {
    let config = std::env::current_dir()
        .ok()
        .and_then(|cwd| config.strip_prefix(cwd).ok().map(PathBuf::from))
        .unwrap_or_else(|| config.to_path_buf());
    let dsr = format!("dsr --config {}", shell_word(&config.display().to_string()));
    let mut next = Vec::new();
    if let Some(access) = documents.iter().find(|d| d["kind"] == "access") {
        if let Some(id) = access["id"].as_str() {
            next.push(format!("{dsr} status {}", shell_word(id)));
        }
        if let Some(bundle) = access["bundle"].as_str() {
            next.push(format!("{dsr} verify {}", shell_word(bundle)));
        }
    }
    if let Some(erasure) = documents
        .iter()
        .rev()
        .find(|d| d["kind"] == "erasure" && d["dry_run"] == false)
    {
        if let Some(id) = erasure["id"].as_str() {
            next.push(format!("{dsr} plan {}", shell_word(id)));
        }
        if let Some(confirmation) = erasure["confirmation"].as_str() {
            next.push(format!("{dsr} verify {}", shell_word(confirmation)));
        }
    }
    next.push(format!("{dsr} audit verify"));
    next
}

/// A word a POSIX shell reads back unchanged.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The demo's Ed25519 key, so its bundle and confirmations are signed: made on the first run
/// and kept, so bundles from earlier runs still verify.
fn throwaway_signing_key(root: &std::path::Path) -> Result<SecretRef, CliError> {
    let path = root.join("signing-key.pem");
    let existing = std::fs::read_to_string(&path).ok();
    if existing.is_some_and(|pem| dsr_jobs::signing::Signer::from_pem(&pem).is_ok()) {
        return SecretRef::try_from(format!("file:{}", path.display())).map_err(|e| bad_input(e.to_string()));
    }
    let (_, pem) = dsr_jobs::signing::Signer::generate().map_err(|e| CliError::Failed(anyhow::anyhow!(e)))?;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    open.open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, pem.as_bytes()))
        .map_err(|e| CliError::Unreachable(format!("cannot write {}: {e}", path.display())))?;
    SecretRef::try_from(format!("file:{}", path.display())).map_err(|e| bad_input(e.to_string()))
}

/// Starts the fake Graph with its seed data and configures the connector for it.
pub(crate) async fn start_graph_fake(
    root: &std::path::Path,
) -> Result<(dsr_fixtures::graph::GraphFake, dsr_microsoft365::Microsoft365Config), CliError> {
    let fake = dsr_fixtures::graph::GraphFake::start()
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot start the fake Graph on loopback: {e}")))?;
    let text = fake
        .connector_toml(&root.join("graph-client-secret"))
        .map_err(|e| CliError::Unreachable(format!("cannot write under {}: {e}", root.display())))?;
    Ok((fake, toml_config(&format!("{text}page_size = 5\n"))?))
}

/// Starts the fake Google APIs and configures the connector for them, with the fake's test
/// service-account key.
pub(crate) async fn start_google_fake(
    root: &std::path::Path,
) -> Result<(dsr_fixtures::google::GoogleFake, dsr_google::GoogleConfig), CliError> {
    use dsr_fixtures::google::{GoogleFake, TEST_PRIVATE_KEY};
    let fake = GoogleFake::start()
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot start the fake Google APIs on loopback: {e}")))?;
    let text = fake
        .connector_toml(&root.join("google-service-account.json"), TEST_PRIVATE_KEY)
        .map_err(|e| CliError::Unreachable(format!("cannot write under {}: {e}", root.display())))?;
    let users: Vec<String> = fake.workspace_users().iter().map(|u| format!("\"{u}\"")).collect();
    let config = toml_config(&format!("{text}workspace = {{ mailboxes = [{}] }}\n", users.join(", ")))?;
    Ok((fake, config))
}

/// Starts the fake SuperOffice and configures the system-user flow for it, keeping sales
/// for the Bookkeeping Act as the company would.
pub(crate) async fn start_superoffice_fake(
    root: &std::path::Path,
) -> Result<
    (
        dsr_fixtures::superoffice::SuperOfficeFake,
        dsr_superoffice::SuperOfficeConfig,
    ),
    CliError,
> {
    use dsr_fixtures::superoffice::{SYSTEM_USER_KEY_PEM, SuperOfficeFake};
    let fake = SuperOfficeFake::start()
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot start the fake SuperOffice on loopback: {e}")))?;
    let text = fake
        .connector_toml(&root.join("superoffice-system-user.pem"), SYSTEM_USER_KEY_PEM)
        .map_err(|e| CliError::Unreachable(format!("cannot write under {}: {e}", root.display())))?;
    let config = toml_config(&format!(
        "{text}[[retain]]\ncategory = \"Sales\"\nreason = \"Sales are accounting records\"\nlegal_basis = \"Bokføringsloven § 13: kept five years\"\n"
    ))?;
    Ok((fake, config))
}

/// Starts the fake Wix site and configures API-key access to it.
pub(crate) async fn start_wix_fake(
    root: &std::path::Path,
) -> Result<(dsr_fixtures::wix::WixFake, dsr_wix::WixConfig), CliError> {
    let fake = dsr_fixtures::wix::WixFake::start()
        .await
        .map_err(|e| CliError::Unreachable(format!("cannot start the fake Wix on loopback: {e}")))?;
    let text = fake
        .connector_toml(&root.join("wix-api-key"))
        .map_err(|e| CliError::Unreachable(format!("cannot write under {}: {e}", root.display())))?;
    Ok((fake, toml_config(&text)?))
}

fn toml_config<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, CliError> {
    use figment::providers::Format;
    figment::Figment::from(figment::providers::Toml::string(text))
        .extract()
        .map_err(|e| bad_input(format!("demo configuration: {e}")))
}
