//! `dsr.toml`, strictly typed: an unknown key is an error that names it. `DSR_SECTION__KEY`
//! variables (a `DSR_` name with `__` in it) override keys (`DSR_QUEUE__URL=redis://…`; lists
//! as TOML arrays); other `DSR_` names are left alone, so secrets can live in variables such
//! as `DSR_GRAPH_SECRET`. Secrets are references (`env:NAME`, `file:PATH`), resolved when
//! used and never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dsr_connector::SecretRef;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::ExposeSecret;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub export: ExportConfig,
    #[serde(default)]
    pub controller: ControllerConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub erasure: ErasureConfig,
    #[serde(default)]
    pub rectification: ChangeConfig,
    #[serde(default)]
    pub objection: ChangeConfig,
    #[serde(default)]
    pub processors: ProcessorsConfig,
    /// Scripted stand-ins for processors, only in test builds.
    #[cfg(feature = "test-connector")]
    #[serde(default)]
    pub test_connector: std::collections::BTreeMap<String, dsr_fixtures::scripted::Script>,
    /// The `DSR_…__…` variables that overrode keys, by name (never their values).
    #[serde(skip)]
    pub overrides: Vec<String>,
    /// Keys still holding a `dsr init` placeholder, by dotted path.
    #[serde(skip)]
    pub placeholders: Vec<String>,
}

/// How `dsr init` marks a value the operator must fill in.
pub const PLACEHOLDER: &str = "<fill in";

/// The `DSR_` variables that are overrides: only names with `__` in them.
fn is_override(name: &str) -> bool {
    name.strip_prefix("DSR_").is_some_and(|rest| rest.contains("__"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (default) or `postgres://…` for several machines.
    #[serde(default = "default_store_url")]
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
        }
    }
}

fn default_store_url() -> String {
    "sqlite://dsr-data/ledger.db".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// `sqlite://PATH` (default, embedded) or `redis://HOST:PORT`.
    #[serde(default = "default_queue_url")]
    pub url: String,
    /// Queue name and Redis key prefix.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    #[serde(default = "default_missed_heartbeats")]
    pub missed_heartbeats: usize,
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            url: default_queue_url(),
            prefix: default_prefix(),
            poll_ms: default_poll_ms(),
            heartbeat_secs: default_heartbeat_secs(),
            missed_heartbeats: default_missed_heartbeats(),
            response_timeout_ms: default_response_timeout_ms(),
        }
    }
}

fn default_queue_url() -> String {
    "sqlite://dsr-data/queue.db".into()
}
fn default_prefix() -> String {
    "dsr".into()
}
fn default_poll_ms() -> u64 {
    500
}
fn default_heartbeat_secs() -> u64 {
    10
}
fn default_missed_heartbeats() -> usize {
    3
}
fn default_response_timeout_ms() -> u64 {
    5000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_task_lease_secs")]
    pub task_lease_secs: u64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_backoff_max_secs")]
    pub backoff_max_secs: u64,
    #[serde(default = "default_sweep_every_secs")]
    pub sweep_every_secs: u64,
    #[serde(default = "default_recover_after_secs")]
    pub recover_after_secs: u64,
    #[serde(default = "default_deadline_warning_days")]
    pub deadline_warning_days: i64,
    /// How often each worker writes its heartbeat to the ledger; it counts as live while
    /// its last one is within three of these (`dsr workers`, `dsr status`, `dsr doctor`).
    #[serde(default = "default_worker_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// How long a worker keeps reconnecting to a queue that went away (or a SQLite queue
    /// locked by another process) before it exits non-zero for its supervisor to restart it.
    #[serde(default = "default_give_up_after_secs")]
    pub give_up_after_secs: u64,
    /// How long one task attempt may run before it is stopped and retried by policy.
    #[serde(default = "default_task_timeout_secs")]
    pub task_timeout_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: default_concurrency(),
            task_lease_secs: default_task_lease_secs(),
            max_attempts: default_max_attempts(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_secs: default_backoff_max_secs(),
            sweep_every_secs: default_sweep_every_secs(),
            recover_after_secs: default_recover_after_secs(),
            deadline_warning_days: default_deadline_warning_days(),
            heartbeat_secs: default_worker_heartbeat_secs(),
            give_up_after_secs: default_give_up_after_secs(),
            task_timeout_secs: default_task_timeout_secs(),
        }
    }
}

fn default_concurrency() -> usize {
    8
}
fn default_task_lease_secs() -> u64 {
    120
}
fn default_max_attempts() -> u32 {
    8
}
fn default_backoff_base_ms() -> u64 {
    5000
}
fn default_backoff_max_secs() -> u64 {
    3600
}
fn default_sweep_every_secs() -> u64 {
    30
}
fn default_recover_after_secs() -> u64 {
    60
}
fn default_deadline_warning_days() -> i64 {
    7
}
fn default_worker_heartbeat_secs() -> u64 {
    15
}
fn default_give_up_after_secs() -> u64 {
    300
}
fn default_task_timeout_secs() -> u64 {
    1800
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Where spools, bundles and confirmations go when `store` is unset.
    #[serde(default = "default_export_dir")]
    pub dir: PathBuf,
    /// A shared store instead of `dir`, for several machines: `s3://bucket/prefix`
    /// (S3-compatible), `gs://bucket/prefix`, `az://container/prefix`.
    #[serde(default)]
    pub store: Option<String>,
    /// The store's options by their object_store names (`aws_region`, `aws_endpoint`,
    /// `aws_access_key_id`, `google_service_account`, `azure_storage_account_name`…);
    /// credentials (a name with a word ending in key, secret, token or password, or naming a
    /// credential or SAS; ids and file paths excepted) must be
    /// `env:NAME` or `file:/path` references like every other secret; the rest may be
    /// literal.
    #[serde(default)]
    pub store_options: std::collections::BTreeMap<String, String>,
    /// The Art. 15(1) texts for bundles (TOML, `[nb]` and `[en]`); the example written from
    /// the privacy notice when unset (docs/processing-info.toml).
    #[serde(default)]
    pub processing_info: Option<PathBuf>,
    /// Ed25519 key (PKCS#8 PEM) that signs bundle manifests and confirmations:
    /// `file:/path/key.pem` or `env:NAME`. Unsigned when unset.
    #[serde(default)]
    pub signing_key: Option<SecretRef>,
    /// Days a finished request's bundle and confirmation stay in the export storage.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            dir: default_export_dir(),
            store: None,
            store_options: Default::default(),
            processing_info: None,
            signing_key: None,
            retention_days: default_retention_days(),
        }
    }
}

impl ExportConfig {
    /// The store options with references resolved; a literal credential is refused.
    pub fn resolved_store_options(&self) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
        let mut resolved = std::collections::BTreeMap::new();
        for (name, value) in &self.store_options {
            let is_reference = value.starts_with("env:") || value.starts_with("file:");
            let value = if is_reference || looks_secret(name) {
                SecretRef::try_from(value.clone())
                    .and_then(|r| r.resolve())
                    .map_err(|source| ConfigError::Secret {
                        key: format!("export.store_options.{name}"),
                        source,
                    })?
                    .expose_secret()
                    .to_string()
            } else {
                value.clone()
            };
            resolved.insert(name.clone(), value);
        }
        Ok(resolved)
    }
}

/// Whether a store option names a credential, which must then be an `env:`/`file:`
/// reference: a word (split at `_`, `-`, `.`) that is or ends in `key` (`account_key`,
/// `master_key`, `masterkey`), or is `secret`, `token`, `password`, `credential(s)`, `sas`…
/// An id (`aws_access_key_id`) and a path to a file (`*_file`, `*_path`,
/// `google_application_credentials`, which names the file rather than holding the key) may
/// be literal.
fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const SECRET_WORDS: [&str; 5] = ["passwd", "passphrase", "credential", "credentials", "sas"];
    const SECRET_ENDINGS: [&str; 5] = ["key", "secret", "secrets", "token", "password"];
    let literal = ["_id", "_file", "_path", "_enabled", "application_credentials"]
        .iter()
        .any(|end| name.ends_with(end));
    !literal
        && name
            .split(['_', '-', '.'])
            .any(|word| SECRET_WORDS.contains(&word) || SECRET_ENDINGS.iter().any(|end| word.ends_with(end)))
}

fn default_retention_days() -> u32 {
    30
}

fn default_pseudonymise_after_days() -> u32 {
    90
}

fn default_export_dir() -> PathBuf {
    PathBuf::from("dsr-data/export")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    #[serde(default = "default_controller_name")]
    pub name: String,
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    #[serde(default = "default_language")]
    pub default_language: String,
    #[serde(default = "default_phone_region")]
    pub default_phone_region: String,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            name: default_controller_name(),
            time_zone: default_time_zone(),
            default_language: default_language(),
            default_phone_region: default_phone_region(),
        }
    }
}

fn default_controller_name() -> String {
    "Racom AS".into()
}
fn default_time_zone() -> String {
    "Europe/Oslo".into()
}
fn default_language() -> String {
    "nb".into()
}
fn default_phone_region() -> String {
    "NO".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Key for the hashes that stand in for subjects in logs. A random one per process
    /// when unset (the hashes then do not correlate across processes).
    pub log_key: Option<SecretRef>,
    /// Days after a request finished when its identities in the ledger are replaced by
    /// keyed hashes.
    #[serde(default = "default_pseudonymise_after_days")]
    pub pseudonymise_after_days: u32,
    /// Key for those hashes (the same subject gets the same hash, so a later request can be
    /// matched to what was done). Falls back to `log_key`; random when both are unset.
    pub pseudonym_key: Option<SecretRef>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            log_key: None,
            pseudonymise_after_days: default_pseudonymise_after_days(),
            pseudonym_key: None,
        }
    }
}

/// Whether an operator approves a change's plan before it is executed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Plans are executed as soon as they are made and checked.
    #[default]
    None,
    /// A request stops at `awaiting_approval` until `dsr approve <id> --plan <hash>`.
    Required,
}

/// `[rectification]` and `[objection]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeConfig {
    #[serde(default)]
    pub approval: Approval,
}

/// The reason retained shared items are listed with: one text, or one per language.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SharedReason {
    Both(String),
    PerLanguage { nb: String, en: String },
}

/// `[erasure]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureConfig {
    #[serde(default)]
    pub approval: Approval,
    /// What to do with items that also concern other people, unless a processor's own
    /// `shared` says otherwise. `retain` (the default: an erasure cannot be undone) or
    /// `delete`.
    #[serde(default)]
    pub shared: dsr_connector::SharedPolicy,
    /// Why retained shared items are kept, as the confirmation says it. A sensible text in
    /// bokmål and English when unset.
    pub shared_reason: Option<SharedReason>,
}

impl Config {
    /// The approval and shared-item rules the engine applies to every change.
    pub fn change_rules(&self) -> dsr_jobs::change::ChangeRules {
        use dsr_jobs::model::RequestKind;
        let mut rules = dsr_jobs::change::ChangeRules::default();
        for (kind, approval) in [
            (RequestKind::Erasure, self.erasure.approval),
            (RequestKind::Rectification, self.rectification.approval),
            (RequestKind::Objection, self.objection.approval),
        ] {
            if approval == Approval::Required {
                rules.approval.insert(kind);
            }
        }
        rules.shared = self.erasure.shared;
        let p = &self.processors;
        for (processor, shared) in [
            (
                dsr_connector::Processor::Google,
                p.google.as_ref().and_then(|c| c.shared),
            ),
            (
                dsr_connector::Processor::Microsoft365,
                p.microsoft365.as_ref().and_then(|c| c.shared),
            ),
            (
                dsr_connector::Processor::Superoffice,
                p.superoffice.as_ref().and_then(|c| c.shared),
            ),
            (dsr_connector::Processor::Wix, p.wix.as_ref().and_then(|c| c.shared)),
        ] {
            if let Some(shared) = shared {
                rules.shared_by_processor.insert(processor, shared);
            }
        }
        match &self.erasure.shared_reason {
            Some(SharedReason::Both(text)) => {
                rules.shared_reason_nb = text.clone();
                rules.shared_reason_en = text.clone();
            }
            Some(SharedReason::PerLanguage { nb, en }) => {
                rules.shared_reason_nb = nb.clone();
                rules.shared_reason_en = en.clone();
            }
            None => {}
        }
        rules
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorsConfig {
    pub google: Option<dsr_google::GoogleConfig>,
    pub microsoft365: Option<dsr_microsoft365::Microsoft365Config>,
    pub superoffice: Option<dsr_superoffice::SuperOfficeConfig>,
    pub wix: Option<dsr_wix::WixConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A processor's section that cannot work (a secret missing, a key unreadable).
    #[error("invalid configuration: {0}")]
    Processor(#[from] dsr_connector::ConfigError),
    /// `[export] store` or `store_options` that cannot work.
    #[error("invalid configuration: {0}")]
    Store(#[from] dsr_jobs::storage::StoreConfigError),
    /// A secret reference (`env:`, `file:`) that cannot be read.
    #[error("invalid configuration: {key}: {source}")]
    Secret {
        key: String,
        #[source]
        source: dsr_connector::SecretError,
    },
}

impl Config {
    /// Loads `path` (or `DSR_CONFIG`, or `./dsr.toml` when present), then `DSR_…` overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("DSR_CONFIG").map(PathBuf::from));
        match explicit {
            Some(p) if !p.exists() => return Err(ConfigError::Missing(p)),
            Some(p) => figment = figment.merge(Toml::file_exact(p)),
            None if Path::new("dsr.toml").exists() => figment = figment.merge(Toml::file_exact("dsr.toml")),
            None => {}
        }
        figment = figment.merge(Env::prefixed("DSR_").filter(|k| k.as_str().contains("__")).split("__"));
        let mut config: Config = figment.extract().map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.overrides = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| is_override(name))
            .collect();
        config.overrides.sort();
        if let Ok(tree) = figment.find_value("processors") {
            placeholders(&tree, "processors", &mut config.placeholders);
        }
        config.validate()?;
        Ok(config)
    }

    /// Every secret the config names, by its dotted key: privacy keys, the signing key,
    /// export store credentials and each enabled processor's secrets.
    pub fn secrets(&self) -> Vec<(String, SecretRef)> {
        let mut named: Vec<(String, SecretRef)> = Vec::new();
        let mut add = |key: String, secret: &SecretRef| named.push((key, secret.clone()));
        if let Some(s) = &self.privacy.log_key {
            add("privacy.log_key".into(), s);
        }
        if let Some(s) = &self.privacy.pseudonym_key {
            add("privacy.pseudonym_key".into(), s);
        }
        if let Some(s) = &self.export.signing_key {
            add("export.signing_key".into(), s);
        }
        for (name, value) in &self.export.store_options {
            if let Ok(s) = SecretRef::try_from(value.clone()) {
                add(format!("export.store_options.{name}"), &s);
            }
        }
        for (processor, secrets) in self.processor_secrets() {
            for (key, s) in secrets {
                add(format!("processors.{processor}.{key}"), &s);
            }
        }
        named
    }

    /// Each enabled processor's secrets, by key.
    pub fn processor_secrets(&self) -> Vec<(dsr_connector::Processor, Vec<(&'static str, SecretRef)>)> {
        use dsr_connector::Processor::*;
        let owned = |v: Vec<(&'static str, &SecretRef)>| v.into_iter().map(|(k, s)| (k, s.clone())).collect();
        let p = &self.processors;
        let mut all = Vec::new();
        if let Some(c) = p.google.as_ref().filter(|c| c.enabled) {
            all.push((Google, owned(c.secrets())));
        }
        if let Some(c) = p.microsoft365.as_ref().filter(|c| c.enabled) {
            all.push((Microsoft365, owned(c.secrets())));
        }
        if let Some(c) = p.superoffice.as_ref().filter(|c| c.enabled) {
            all.push((Superoffice, owned(c.secrets())));
        }
        if let Some(c) = p.wix.as_ref().filter(|c| c.enabled) {
            all.push((Wix, owned(c.secrets())));
        }
        all
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.zone()?;
        if !["nb", "en"].contains(&self.controller.default_language.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "controller.default_language `{}`: use nb or en",
                self.controller.default_language
            )));
        }
        dsr_connector::Phone::parse("+4791234567", &self.controller.default_phone_region)
            .map_err(|e| ConfigError::Invalid(format!("controller.default_phone_region: {e}")))?;
        if self.worker.max_attempts == 0 {
            return Err(ConfigError::Invalid("worker.max_attempts must be at least 1".into()));
        }
        if self.worker.task_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "worker.task_timeout_secs must be at least 1 (seconds one task attempt may run)".into(),
            ));
        }
        #[cfg(feature = "test-connector")]
        for name in self.test_connector.keys() {
            name.parse::<dsr_connector::Processor>()
                .map_err(|e| ConfigError::Invalid(format!("test_connector.{name}: {e}")))?;
        }
        Ok(())
    }

    pub fn zone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.controller.time_zone.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "controller.time_zone `{}` is not an IANA time zone such as Europe/Oslo",
                self.controller.time_zone
            ))
        })
    }

    pub fn queue_settings(&self) -> dsr_jobs::QueueSettings {
        dsr_jobs::QueueSettings {
            url: self.queue.url.clone(),
            prefix: self.queue.prefix.clone(),
            poll_interval: Duration::from_millis(self.queue.poll_ms.max(10)),
            heartbeat: Duration::from_secs(self.queue.heartbeat_secs.max(1)),
            missed_heartbeats: self.queue.missed_heartbeats.max(1),
            response_timeout: Duration::from_millis(self.queue.response_timeout_ms.max(100)),
            concurrency: self.worker.concurrency.max(1),
        }
    }

    /// The processors with `enabled = true`.
    pub fn enabled_processors(&self) -> Vec<dsr_connector::Processor> {
        use dsr_connector::Processor::*;
        let p = &self.processors;
        [
            (Google, p.google.as_ref().is_some_and(|g| g.enabled)),
            (Microsoft365, p.microsoft365.as_ref().is_some_and(|m| m.enabled)),
            (Superoffice, p.superoffice.as_ref().is_some_and(|s| s.enabled)),
            (Wix, p.wix.as_ref().is_some_and(|w| w.enabled)),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(p, _)| p)
        .collect()
    }
}

/// Collects the dotted keys under `path` whose value is still a `dsr init` placeholder.
fn placeholders(value: &figment::value::Value, path: &str, out: &mut Vec<String>) {
    use figment::value::Value;
    match value {
        Value::String(_, text) if text.starts_with(PLACEHOLDER) => out.push(path.to_string()),
        Value::Dict(_, dict) => {
            for (key, v) in dict {
                placeholders(v, &format!("{path}.{key}"), out);
            }
        }
        Value::Array(_, items) => {
            for (i, v) in items.iter().enumerate() {
                placeholders(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Figment's errors name the key; say which file or variable it came from too.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!(" at `{}`", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(figment::Source::File(path)) => format!(" (from {})", path.display()),
                    _ => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            format!("{}{key}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile_dir();
        let path = dir.join("dsr.toml");
        std::fs::write(&path, text).unwrap();
        let result = Config::load(Some(&path));
        std::fs::remove_dir_all(dir).unwrap();
        result
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dsr-config-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn defaults_are_embedded_and_oslo() {
        let config = load_str("").unwrap();
        assert!(config.store.url.starts_with("sqlite://"));
        assert!(config.queue.url.starts_with("sqlite://"));
        assert_eq!(config.zone().unwrap(), chrono_tz::Europe::Oslo);
    }

    #[test]
    fn every_credential_name_is_refused_as_a_literal() {
        for name in [
            "account_key",
            "master_key",
            "azure_storage_account_key",
            "azure_storage_master_key",
            "masterkey",
            "azure_storage_sas_key",
            "sas",
            "sas_token",
            "azure_storage_sas_token",
            "bearer_token",
            "aws_session_token",
            "aws_secret_access_key",
            "azure_client_secret",
            "client_secret",
            "google_service_account_key",
            "aws_sse_customer_key_base64",
            "password",
            "db_password",
            "credential",
            "api_key",
            "key",
        ] {
            assert!(looks_secret(name), "{name} is a credential");
            let text = format!("[export]\nstore = \"s3://bucket/dsr\"\n[export.store_options]\n{name} = \"plain\"\n");
            let err = load_str(&text)
                .unwrap()
                .export
                .resolved_store_options()
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("export.store_options.{name}")), "{err}");
        }
        for name in [
            "aws_region",
            "aws_access_key_id",
            "aws_endpoint",
            "azure_storage_account_name",
            "azure_client_id",
            "azure_tenant_id",
            "google_service_account",
            "google_application_credentials",
            "azure_federated_token_file",
            "aws_skip_signature",
            "aws_sse_kms_key_id",
            "aws_sse_bucket_key_enabled",
            "google_bucket",
        ] {
            assert!(!looks_secret(name), "{name} may be literal");
        }
    }

    #[test]
    fn store_credentials_must_be_references_and_the_rest_may_be_literal() {
        let text = "[export]\nstore = \"s3://bucket/dsr\"\n[export.store_options]\naws_region = \"eu-north-1\"\naws_access_key_id = \"AKIA\"\naws_secret_access_key = \"plain\"\n";
        let config = load_str(text).unwrap();
        let err = config.export.resolved_store_options().unwrap_err().to_string();
        assert!(err.contains("export.store_options.aws_secret_access_key"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s3-secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let text = text.replace("\"plain\"", &format!("\"file:{}\"", secret.display()));
        let config = load_str(&text).unwrap();
        let options = config.export.resolved_store_options().unwrap();
        assert_eq!(options["aws_secret_access_key"], "s3cret");
        assert_eq!(options["aws_region"], "eu-north-1");
        assert_eq!(options["aws_access_key_id"], "AKIA");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_str("[queue]\nurll = \"redis://x\"\n").unwrap_err().to_string();
        assert!(err.contains("urll"), "{err}");
        let err = load_str("[processors.dropbox]\nenabled = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dropbox"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = load_str("[controller]\ntime_zone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Mars/Olympus"), "{err}");
        let err = load_str("[privacy]\nlog_key = \"plaintext\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("env:NAME"), "{err}");
    }

    #[test]
    fn processors_are_enabled_by_section() {
        let wix = "[processors.wix]\nenabled = true\nsite_id = \"s\"\napi_key = \"env:WIX_KEY\"\n";
        let config = load_str(wix).unwrap();
        assert_eq!(config.enabled_processors(), vec![dsr_connector::Processor::Wix]);
        let implied = load_str(&wix.replace("enabled = true\n", "")).unwrap();
        assert_eq!(
            implied.enabled_processors(),
            vec![dsr_connector::Processor::Wix],
            "a section without `enabled` is enabled"
        );
        let off = load_str(&wix.replace("enabled = true", "enabled = false")).unwrap();
        assert!(off.enabled_processors().is_empty());
        let err = load_str("[processors.wix]\nenabled = true\nsite_id = \"s\"\napi_key = \"literal\"\n").unwrap_err();
        assert!(
            err.to_string().contains("env:NAME"),
            "a secret written in the clear is refused: {err}"
        );
    }

    #[test]
    fn change_rules_come_from_the_erasure_section_and_each_processor() {
        use dsr_connector::{Processor, SharedPolicy};
        use dsr_jobs::model::{Lang, RequestKind};
        let defaults = load_str("").unwrap().change_rules();
        assert!(defaults.approval.is_empty(), "no approval unless asked for");
        assert_eq!(
            defaults.plan_rules(Processor::Wix, Lang::En).shared,
            SharedPolicy::Retain
        );
        let config = load_str(
            "[erasure]\napproval = \"required\"\nshared = \"delete\"\nshared_reason = { nb = \"Andres data\", en = \"Others' data\" }\n\
             [objection]\napproval = \"required\"\n\
             [processors.wix]\nsite_id = \"s\"\napi_key = \"env:WIX_KEY\"\nshared = \"retain\"\n",
        )
        .unwrap();
        let rules = config.change_rules();
        assert!(rules.needs_approval(RequestKind::Erasure) && rules.needs_approval(RequestKind::Objection));
        assert!(!rules.needs_approval(RequestKind::Rectification));
        assert_eq!(
            rules.plan_rules(Processor::Google, Lang::En).shared,
            SharedPolicy::Delete
        );
        assert_eq!(
            rules.plan_rules(Processor::Wix, Lang::En).shared,
            SharedPolicy::Retain,
            "a processor's own rule wins"
        );
        assert_eq!(rules.plan_rules(Processor::Wix, Lang::Nb).shared_reason, "Andres data");
        let err = load_str("[erasure]\nshared = \"sometimes\"\n").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        let err = load_str("[erasure]\napproval = \"maybe\"\n").unwrap_err();
        assert!(err.to_string().contains("maybe"), "{err}");
    }

    #[test]
    fn only_names_with_a_double_underscore_are_overrides() {
        assert!(is_override("DSR_QUEUE__URL"));
        assert!(is_override("DSR_PROCESSORS__WIX__API_KEY"));
        assert!(!is_override("DSR_GRAPH_SECRET"));
        assert!(!is_override("DSR_CONFIG"));
        assert!(!is_override("OTHER_QUEUE__URL"));
    }

    #[test]
    fn placeholders_and_secrets_are_named_by_key() {
        let text = format!(
            "[privacy]\nlog_key = \"env:DSR_LOG_KEY\"\n[processors.wix]\nsite_id = \"{PLACEHOLDER}: the site id>\"\napi_key = \"env:DSR_WIX_API_KEY\"\n"
        );
        let config = load_str(&text).unwrap();
        assert_eq!(config.placeholders, vec!["processors.wix.site_id"]);
        let keys: Vec<String> = config.secrets().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["privacy.log_key", "processors.wix.api_key"]);
    }
}
