//! Builds the runtime from config: the ledger, the queue, and one connector per configured
//! processor. A connector added to the project is registered here and nowhere else.

use std::sync::Arc;
use std::time::Duration;

use dsr_connector::Processor;
use dsr_jobs::storage::ExportStore;
use dsr_jobs::{Connectors, Engine, Ledger, Queue, Settings};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::error::{CliError, bad_input};

/// The connectors for the processors the config enables, and the enabled processors this
/// build has no connector for yet. A connector that cannot be built (a secret missing) is
/// bad config.
pub fn connectors(config: &Config) -> Result<(Connectors, Vec<Processor>), CliError> {
    let mut connectors = Connectors::default();
    if let Some(wix) = config.processors.wix.as_ref().filter(|w| w.enabled) {
        let connector = dsr_wix::Wix::new(wix.clone())?;
        connectors.insert(Arc::new(connector));
    }
    if let Some(superoffice) = config.processors.superoffice.as_ref().filter(|s| s.enabled) {
        let connector = dsr_superoffice::SuperOffice::new(superoffice.clone())?;
        connectors.insert(Arc::new(connector));
    }
    if let Some(google) = config.processors.google.as_ref().filter(|g| g.enabled) {
        let connector = dsr_google::Google::new(google.clone())?;
        connectors.insert(Arc::new(connector));
    }
    if let Some(m365) = config.processors.microsoft365.as_ref().filter(|m| m.enabled) {
        let connector = dsr_microsoft365::Microsoft365::new(m365.clone())?;
        connectors.insert(Arc::new(connector));
    }
    for (_, connector) in opendsr_connectors(config) {
        connectors.insert(connector?);
    }
    #[cfg(feature = "test-connector")]
    for (processor, script) in &config.test_connector {
        connectors.insert(Arc::new(dsr_fixtures::scripted::ScriptedConnector::new(
            *processor,
            script.clone(),
        )));
    }
    let missing = config
        .enabled_processors()
        .into_iter()
        .filter(|p| connectors.get(*p).is_none())
        .collect();
    Ok((connectors, missing))
}

/// A connector for each enabled `[processors.opendsr.<name>]`, each built on its own.
pub fn opendsr_connectors(
    config: &Config,
) -> Vec<(
    Processor,
    Result<Arc<dsr_opendsr::OpenDsrConnector>, dsr_connector::ConfigError>,
)> {
    config
        .processors
        .opendsr_enabled()
        .into_iter()
        .map(|(processor, section)| {
            let built = dsr_opendsr::OpenDsrConnector::new(processor, section.clone()).map(Arc::new);
            (processor, built)
        })
        .collect()
}

/// The connectors that can hold work to withdraw when a request is cancelled (OpenDSR
/// processors'): one that cannot be built is left out (and the cancellation says so), and
/// never stops the others or the cancellation.
pub fn withdrawing_connectors(config: &Config) -> Connectors {
    let mut connectors = Connectors::default();
    for (_, built) in opendsr_connectors(config) {
        match built {
            Ok(connector) => connectors.insert(connector),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    connectors
}

pub fn settings(config: &Config) -> Result<Settings, CliError> {
    let log_key = match &config.privacy.log_key {
        Some(secret) => secret
            .resolve()
            .map_err(|e| bad_input(format!("privacy.log_key: {e}")))?
            .expose_secret()
            .as_bytes()
            .to_vec(),
        None => rand::random::<[u8; 32]>().to_vec(),
    };
    let pseudonym_key = match &config.privacy.pseudonym_key {
        Some(secret) => secret
            .resolve()
            .map_err(|e| bad_input(format!("privacy.pseudonym_key: {e}")))?
            .expose_secret()
            .as_bytes()
            .to_vec(),
        None => log_key.clone(),
    };
    let signer = match &config.export.signing_key {
        None => None,
        Some(secret) => {
            let pem = secret
                .resolve()
                .map_err(|e| bad_input(format!("export.signing_key: {e}")))?;
            Some(
                dsr_jobs::signing::Signer::from_pem(pem.expose_secret())
                    .map_err(|e| bad_input(format!("export.signing_key: {e}")))?,
            )
        }
    };
    let w = &config.worker;
    // The engine counts retention in chrono's durations; the checked ranges (up to ten
    // years) always fit, so this only fails for a config built in code and never checked.
    let chrono_span =
        |key: &str, span: Duration| chrono::Duration::from_std(span).map_err(|e| bad_input(format!("{key}: {e}")));
    Ok(Settings {
        zone: config.zone(),
        export: export_store(config)?,
        task_lease: w.task_lease,
        max_attempts: w.max_attempts,
        task_timeout: w.task_timeout,
        backoff_base: w.backoff_base,
        backoff_max: w.backoff_max,
        sweep_every: w.sweep_every,
        recover_after: w.recover_after,
        deadline_warning_days: w.deadline_warning_days(),
        heartbeat_every: w.heartbeat,
        log_key,
        queue: config.queue_settings(),
        processing_info: processing_info(config)?,
        signer,
        retention: chrono_span("export.retention", config.export.retention)?,
        pseudonymise_after: chrono_span("privacy.pseudonymise_after", config.privacy.pseudonymise_after)?,
        pseudonym_key,
        changes: config.change_rules(),
        give_up_after: w.give_up_after,
        deliver: crate::subject::delivers(config),
    })
}

/// The export storage: `[export] store` when set (a shared store), else `[export] dir`.
pub fn export_store(config: &Config) -> Result<ExportStore, CliError> {
    match &config.export.store {
        None => ExportStore::local(&config.export.dir).map_err(|e| {
            CliError::Unreachable(format!(
                "{e}; check that export.dir exists or can be created and is writable by this user"
            ))
        }),
        Some(url) => {
            let options = config.export.resolved_store_options()?;
            Ok(ExportStore::from_url(url, &options).map_err(crate::config::ConfigError::from)?)
        }
    }
}

pub async fn ledger(config: &Config) -> Result<Ledger, CliError> {
    Ok(Ledger::open(&config.store.url).await?)
}

pub async fn engine(config: &Config) -> Result<Engine, CliError> {
    let settings = settings(config)?;
    let ledger = ledger(config).await?;
    let queue = Queue::connect(&settings.queue).await?;
    let (connectors, _) = connectors(config)?;
    Ok(Engine::new(ledger, queue, connectors, settings))
}

/// The Art. 15(1) texts: the configured file, else the shipped example.
pub fn processing_info(config: &Config) -> Result<dsr_jobs::bundle::ProcessingInfo, CliError> {
    match &config.export.processing_info {
        None => Ok(dsr_jobs::bundle::ProcessingInfo::example()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad_input(format!("export.processing_info: cannot read {}: {e}", path.display())))?;
            dsr_jobs::bundle::ProcessingInfo::parse(&text)
                .map_err(|e| bad_input(format!("export.processing_info: {} is not valid: {e}", path.display())))
        }
    }
}
