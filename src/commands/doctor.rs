//! `dsr doctor`: is everything in place? Config, ledger, queue, export storage, and every
//! processor's credentials and permissions, each with what to fix.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use dsr_connector::{Processor, SecretError, SecretRef};
use dsr_jobs::ledger::workers::{Worker, live_window};
use dsr_jobs::queue::redacted;
use serde_json::json;

use super::workers::when;

use crate::config::Config;
use crate::error::CliError;

/// One thing checked: its name (`processor google`, `ledger`, …), whether it is fine, and
/// what was found or what to fix.
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

pub async fn doctor(config: &Config, as_json: bool) -> Result<ExitCode, CliError> {
    let checks = checks(config, None).await;
    let ok = checks.iter().all(|c| c.ok);
    if as_json {
        let items: Vec<_> = checks
            .iter()
            .map(|c| json!({"check": c.name, "ok": c.ok, "detail": c.detail}))
            .collect();
        println!("{}", json!({"ok": ok, "checks": items}));
    } else {
        let width = checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
        for c in &checks {
            println!("{} {:<width$} {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.detail);
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Everything `dsr doctor` checks, in its order (the dashboard's processors page runs the
/// same on demand, with the server's `running` ledger rather than opening another).
pub async fn checks(config: &Config, running: Option<&dsr_jobs::Ledger>) -> Vec<Check> {
    let mut checks = vec![check(
        "config",
        true,
        format!(
            "parsed; controller {} in {}",
            config.controller.name, config.controller.time_zone
        ),
    )];
    if !config.overrides.is_empty() {
        checks.push(check(
            "overrides",
            true,
            format!("applied from the environment: {}", config.overrides.join(", ")),
        ));
    }
    let mut unusable: Vec<String> = Vec::new();
    for (key, secret) in config.secrets() {
        if let Err(e) = secret.check() {
            checks.push(check(key.clone(), false, secret_advice(&secret, &e)));
            unusable.push(key);
        }
    }
    for key in &config.placeholders {
        checks.push(check(
            key.clone(),
            false,
            "still the placeholder `dsr init` wrote: fill in the real value",
        ));
        unusable.push(key.clone());
    }
    if config.privacy.log_key.is_none() {
        checks.push(check(
            "privacy.log_key",
            true,
            "not set: subject hashes in logs will not correlate across processes (set privacy.log_key = \"env:NAME\")",
        ));
    }
    if config.privacy.pseudonym_key.is_none() {
        checks.push(check(
            "privacy.pseudonym_key",
            true,
            "not set: pseudonyms are keyed with privacy.log_key (random per process when that is unset too, so a later request cannot be matched to an earlier one)",
        ));
    }
    checks.extend(signing_check(config));
    let opened = match running {
        Some(ledger) => Ok(ledger.clone()),
        None => dsr_jobs::Ledger::open(&config.store.url).await,
    };
    match opened {
        Ok(ledger) => {
            checks.push(check(
                "ledger",
                true,
                format!(
                    "{} at {} reachable, schema up to date",
                    kind_of(&config.store.url),
                    redacted(&config.store.url)
                ),
            ));
            match ledger.verify_audit_chain().await {
                Ok(v) if v.problem.is_none() => checks.push(check(
                    "audit chain",
                    true,
                    format!("{} events, each linked to the one before", v.events),
                )),
                Ok(v) => checks.push(check(
                    "audit chain",
                    false,
                    format!(
                        "{}; run `dsr audit verify` for the details",
                        v.problem.unwrap_or_default()
                    ),
                )),
                Err(e) => checks.push(check("audit chain", false, e.to_string())),
            }
            match ledger.workers().await {
                Ok(workers) => checks.push(workers_check(config, &workers, ledger.now())),
                Err(e) => checks.push(check("workers", false, e.to_string())),
            }
            if running.is_none() {
                ledger.close().await;
            }
        }
        Err(e) => checks.push(check(
            "ledger",
            false,
            format!("{e}: check [store] url and that the server runs"),
        )),
    }
    match dsr_jobs::Queue::connect(&config.queue_settings()).await {
        Ok(_) => checks.push(check(
            "queue",
            true,
            format!(
                "{} at {} reachable",
                kind_of(&config.queue.url),
                redacted(&config.queue.url)
            ),
        )),
        Err(e) => checks.push(check(
            "queue",
            false,
            format!("{e}: check [queue] url and that the server runs"),
        )),
    }
    checks.push(export_check(config).await);
    if let Some(smtp) = &config.smtp {
        let answered = match crate::subject::mail::Mailer::new(smtp) {
            Ok(mailer) => mailer.check().await,
            Err(e) => Err(e),
        };
        let what = if crate::subject::delivers(config) {
            "the request form's codes and the delivery links"
        } else if config.subject.public_url.is_some() {
            "the request form's codes ([delivery] enabled = false: nothing delivered)"
        } else {
            "nothing yet: set [subject] public_url for the form and the delivery links"
        };
        checks.push(match answered {
            Ok(()) => check(
                "smtp",
                true,
                format!("{}:{} answers; it carries {what}", smtp.host, smtp.port()),
            ),
            Err(e) => check(
                "smtp",
                false,
                format!("{e}: check [smtp] host, port, security and credentials"),
            ),
        });
    }
    if let Some(section) = &config.opendsr {
        match crate::opendsr::OpenDsr::from_config(section) {
            Ok(opendsr) => checks.push(check(
                "opendsr",
                true,
                format!(
                    "dsr serve takes OpenDSR requests at {}, signing with a certificate for {}",
                    opendsr.config.versioned_base(),
                    opendsr.domain()
                ),
            )),
            Err(e) => checks.push(check("opendsr", false, e.message())),
        }
    }
    match crate::wiring::processing_info(config) {
        Ok(info) => {
            let missing = info.missing();
            let source = match &config.export.processing_info {
                Some(p) => p.display().to_string(),
                None => "the shipped example (written from Racom's privacy notice; review it)".into(),
            };
            let detail = if missing.is_empty() {
                format!("every Art. 15(1) item filled in, from {source}")
            } else {
                format!(
                    "warning: Art. 15(1) items left empty in {source}: {}",
                    missing.join(", ")
                )
            };
            checks.push(check("processing info", true, detail));
        }
        Err(e) => checks.push(check("processing info", false, e.message())),
    }
    // Connectors whose secrets or values are missing cannot be built; those were named above.
    let (connectors, missing) = match crate::wiring::connectors(config) {
        Ok(found) => found,
        Err(_) if !unusable.is_empty() => Default::default(),
        Err(e) => {
            checks.push(check("processors", false, e.message()));
            Default::default()
        }
    };
    let opendsr = config.processors.opendsr_enabled().into_iter().map(|(p, _)| p);
    for p in Processor::ALL.into_iter().chain(opendsr) {
        let name = format!("processor {p}");
        if missing.contains(&p) {
            checks.push(check(
                name,
                false,
                "enabled, but this build has no connector for it yet: disable the section or upgrade dsr",
            ));
        } else if let Some(blocking) = blocked(&unusable, p) {
            checks.push(check(
                name,
                false,
                format!(
                    "not checked until {} above {} fixed",
                    blocking.join(", "),
                    if blocking.len() == 1 { "is" } else { "are" }
                ),
            ));
        } else if let Some(connector) = connectors.get(p) {
            match connector.check().await {
                Ok(report) if report.ok => checks.push(check(name, true, report.details.join("; "))),
                Ok(report) => checks.push(check(name, false, report.details.join("; "))),
                // The operator's terminal, or the dashboard's page to a signed-in operator: the
                // vendor's words help there, and are not kept.
                Err(e) => checks.push(check(
                    name,
                    false,
                    match e.said() {
                        Some(said) => format!("{e} — the vendor said: {said}"),
                        None => e.to_string(),
                    },
                )),
            }
        } else {
            checks.push(check(
                name,
                true,
                format!("not configured (add a [processors.{p}] section to use it)"),
            ));
        }
    }
    if connectors.is_empty() && config.enabled_processors().is_empty() {
        checks.push(check(
            "processors",
            false,
            "no processor is configured: requests have nowhere to go",
        ));
    }
    checks
}

/// The live workers, each with when it last polled and what it holds: a warning when none is
/// live (requests wait until one runs), or when a live one has not had an answer from the
/// queue for three heartbeats (its or the queue's: it is reconnecting); a failure when that
/// lasted longer than `[worker] give_up_after_secs` (it is alive but takes no work, and
/// should have exited).
fn workers_check(config: &Config, workers: &[Worker], now: DateTime<Utc>) -> Check {
    let live: Vec<&Worker> = workers.iter().filter(|w| w.live).collect();
    if live.is_empty() {
        let last = workers
            .iter()
            .max_by_key(|w| w.last_heartbeat_at)
            .map(|w| {
                format!(
                    "; last heard of: {} on {} at {}",
                    w.name,
                    w.host,
                    when(w.last_heartbeat_at, now)
                )
            })
            .unwrap_or_default();
        return check(
            "workers",
            true,
            format!(
                "warning: no worker is live (none wrote a heartbeat within three of its [worker] heartbeat_secs): \
                 requests wait until one runs; start `dsr worker`{last}"
            ),
        );
    }
    let give_up = chrono::Duration::from_std(config.worker.give_up_after).unwrap_or(chrono::Duration::MAX);
    let (mut stuck, mut quiet, mut fine) = (Vec::new(), Vec::new(), Vec::new());
    for w in &live {
        let polled = w.last_poll_at.unwrap_or(w.started_at);
        let line = format!(
            "{} on {} pid {}, last poll {}, holds {} task{}",
            w.name,
            w.host,
            w.pid,
            w.last_poll_at.map(|t| when(t, now)).unwrap_or_else(|| "never".into()),
            w.holds.len(),
            if w.holds.len() == 1 { "" } else { "s" }
        );
        // The last poll is only as fresh as the queue's keep-alive and the worker's beat.
        let queue_beats = chrono::Duration::from_std(3 * config.queue.heartbeat).unwrap_or(chrono::Duration::MAX);
        let quiet_after = w.live_window().max(queue_beats) + live_window(w.heartbeat_every) / 3;
        if now - polled > give_up {
            stuck.push(line);
        } else if now - polled > quiet_after {
            quiet.push(line);
        } else {
            fine.push(line);
        }
    }
    let mut detail = format!("{} live", live.len());
    if !fine.is_empty() {
        detail.push_str(&format!(": {}", fine.join("; ")));
    }
    if !stuck.is_empty() {
        detail.push_str(&format!(
            "; alive but its queue poller has had no answer for longer than [worker] give_up_after_secs, so it takes no work \
             (check [queue] url and that the server runs, then restart it): {}",
            stuck.join("; ")
        ));
    }
    if !quiet.is_empty() {
        detail.push_str(&format!(
            "; warning: no answer from the queue for three heartbeats (reconnecting?): {}",
            quiet.join("; ")
        ));
    }
    check("workers", stuck.is_empty(), detail)
}

fn kind_of(url: &str) -> &'static str {
    if url.starts_with("postgres") {
        "postgres"
    } else if url.starts_with("redis") {
        "redis"
    } else {
        "sqlite"
    }
}

/// The signing key: readable and an Ed25519 key, or a warning that nothing is signed. An
/// unreadable one was named with the other secrets.
fn signing_check(config: &Config) -> Option<Check> {
    let Some(secret) = &config.export.signing_key else {
        return Some(check(
            "export.signing_key",
            true,
            "not set: bundles and confirmations are hashed into the audit chain but not signed (set export.signing_key = \"file:…\" to an Ed25519 PEM from `openssl genpkey -algorithm ed25519`)",
        ));
    };
    let pem = secret.resolve().ok()?;
    Some(
        match dsr_jobs::signing::Signer::from_pem(secrecy::ExposeSecret::expose_secret(&pem)) {
            Ok(signer) => check(
                "export.signing_key",
                true,
                format!("Ed25519, public key {}", signer.public_key()),
            ),
            Err(e) => check("export.signing_key", false, format!("export.signing_key: {e}")),
        },
    )
}

/// What to do about a secret that cannot be read.
fn secret_advice(secret: &SecretRef, error: &SecretError) -> String {
    match secret {
        SecretRef::Env(name) => format!("{error}: set {name} in the environment dsr runs in (or write file:PATH)"),
        SecretRef::File(path) => format!(
            "{error}: create {} readable by this user only (chmod 600)",
            path.display()
        ),
    }
}

/// The missing secrets or placeholder values that keep processor `p` from being checked.
fn blocked(unusable: &[String], p: Processor) -> Option<Vec<String>> {
    let prefix = format!("processors.{p}.");
    let keys: Vec<String> = unusable.iter().filter(|k| k.starts_with(&prefix)).cloned().collect();
    (!keys.is_empty()).then_some(keys)
}

/// Writes, reads back and deletes a probe object in the export storage.
async fn export_check(config: &Config) -> Check {
    let store = match crate::wiring::export_store(config) {
        Ok(store) => store,
        Err(e) => return check("export storage", false, e.message()),
    };
    // Its own name each run: two checks at once do not delete each other's probe.
    let probe = dsr_jobs::storage::key(&format!(".dsr-doctor-probe-{}", crate::subject::secrets::token()));
    let result = async {
        store.put(&probe, b"probe".to_vec()).await?;
        let back = store.get(&probe).await;
        // Removed whatever the read said, so no probe is left behind.
        let removed = store.delete(&probe).await;
        let back = back?;
        removed?;
        Ok::<_, dsr_jobs::storage::StorageError>(back)
    }
    .await;
    let place = store.locate(&dsr_jobs::storage::key(""));
    match result {
        Ok(back) if &back[..] == b"probe" => check("export storage", true, format!("{place} is writable")),
        Ok(_) => check(
            "export storage",
            false,
            format!("{place} returned other bytes than were written"),
        ),
        Err(e) => check(
            "export storage",
            false,
            format!("{e}; fix [export] dir or store (and store_options) or their permissions"),
        ),
    }
}
