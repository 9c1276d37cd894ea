//! `dsr.toml`, strictly typed: an unknown key is an error that names it, and so is a value
//! outside its allowed range (each key's range is in its doc comment). Spans of time are
//! humantime strings (`"500ms"`, `"30s"`, `"2h"`, `"7d"`); the old keys that carried their
//! unit in their name (`task_lease_secs = 3`) still read, with a warning in
//! [`Config::deprecations`]. `DSR_SECTION__KEY` variables (a `DSR_` name with `__` in it)
//! override keys (`DSR_QUEUE__URL=redis://…`, `DSR_WORKER__TASK_LEASE=30s`; lists as TOML
//! arrays); other `DSR_` names are left alone, so secrets can live in variables such as
//! `DSR_GRAPH_SECRET`. Secrets are references (`env:NAME`, `file:PATH`), resolved when used
//! and never printed.

mod subject;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dsr_connector::SecretRef;
use dsr_jobs::model::Lang;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::ExposeSecret;
use serde::Deserialize;

pub use subject::{
    DashboardConfig, DeadlineFrom, DeliveryConfig, OperatorVerification, SmtpConfig, SmtpSecurity, SubjectConfig,
};
pub use values::span_text;
use values::{DAY, HOUR, MINUTE, Renamed, SECOND, Unit, check_count, check_span, days, millis, seconds};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub store: StoreConfig,
    pub queue: QueueConfig,
    pub worker: WorkerConfig,
    pub export: ExportConfig,
    pub controller: ControllerConfig,
    pub privacy: PrivacyConfig,
    pub erasure: ErasureConfig,
    pub rectification: ChangeConfig,
    pub objection: ChangeConfig,
    pub processors: ProcessorsConfig,
    pub server: ServerConfig,
    /// dsr as an OpenDSR processor under `dsr serve`; absent, the OpenDSR routes are not served.
    pub opendsr: Option<OpenDsrConfig>,
    /// The subject's request form and proof of identity (docs/subject.md).
    pub subject: SubjectConfig,
    /// The mail server codes and links go through; absent, the form is not served and
    /// nothing is mailed.
    pub smtp: Option<SmtpConfig>,
    /// E-mailed links to finished requests.
    pub delivery: DeliveryConfig,
    /// The operators' web pages.
    pub dashboard: DashboardConfig,
    pub log: LogConfig,
    /// Scripted stand-ins for processors, only in test builds.
    #[cfg(feature = "test-connector")]
    pub test_connector: std::collections::BTreeMap<dsr_connector::Processor, dsr_fixtures::scripted::Script>,
    /// The `DSR_…__…` variables that overrode keys, by name (never their values).
    #[serde(skip)]
    pub overrides: Vec<String>,
    /// Keys still holding a `dsr init` placeholder, by dotted path.
    #[serde(skip)]
    pub placeholders: Vec<String>,
    /// One line per old key still in use, naming the key that replaces it and its value
    /// (`[worker] task_lease_secs is deprecated: write task_lease = "3s"`), for the operator
    /// to see when dsr starts.
    #[serde(skip)]
    pub deprecations: Vec<String>,
}

/// How `dsr init` marks a value the operator must fill in.
pub const PLACEHOLDER: &str = "<fill in";

/// The `DSR_` variables that are overrides: only names with `__` in them.
fn is_override(name: &str) -> bool {
    name.strip_prefix("DSR_").is_some_and(|rest| rest.contains("__"))
}

/// How dsr logs (to stderr; the level from `DSR_LOG`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`: one JSON object per line, for a log collector.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `dsr serve`, the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on (default 127.0.0.1:8480; port 0 picks a free one and
    /// prints it).
    pub listen: String,
    /// TLS in the server itself: the certificate chain and the private key, PEM files. Both
    /// or neither; without them, a TLS-terminating proxy is expected in front.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8480".into(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[opendsr]`: dsr as the processor other systems submit OpenDSR requests to
/// (docs/opendsr.md). The routes live under `public_url`'s path, `/v1/…`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenDsrConfig {
    /// How controllers reach the OpenDSR routes, without the `/v1`: `https://opendsr.example.no/opendsr`
    /// serves `https://opendsr.example.no/opendsr/v1/discovery`. Its host is the OpenDSR domain
    /// (`X-OpenDSR-Processor-Domain`), which the certificate must be issued for. https only.
    pub public_url: url::Url,
    /// The key that signs responses and callbacks: RSA (2048 bits or more) or ECDSA P-256, PEM.
    pub signing_key: SecretRef,
    /// The key's X.509 certificate, issued by a certificate authority for the domain, leaf
    /// first with its intermediates (PEM); discovery publishes it.
    pub certificate: SecretRef,
    /// The hosts status callbacks may go to: `controller.example.no` (any port) or
    /// `controller.example.no:8443` (that port only). A request naming any other callback URL
    /// is refused, and nothing is ever sent elsewhere.
    #[serde(default)]
    pub callback_allow: Vec<String>,
    /// Authorities trusted for the callback hosts' TLS besides the public web's (a private
    /// CA), PEM.
    pub callback_roots: Option<PathBuf>,
    /// How often the worker looks for status changes and due callbacks. 1s to 10m; default 5s.
    #[serde(default = "OpenDsrConfig::default_callback_every", deserialize_with = "values::span")]
    pub callback_every: Duration,
    /// Attempts per callback before dsr gives up on it (backoff from 10s, doubling, to 1h
    /// between attempts). 1 to 100; default 20 (about 14 hours).
    #[serde(default = "OpenDsrConfig::default_callback_attempts")]
    pub callback_attempts: u32,
}

impl OpenDsrConfig {
    fn default_callback_every() -> Duration {
        Duration::from_secs(5)
    }

    fn default_callback_attempts() -> u32 {
        20
    }

    /// The OpenDSR domain: `public_url`'s host.
    pub fn domain(&self) -> &str {
        self.public_url.host_str().unwrap_or_default()
    }

    /// The base of the versioned routes, `…/v1`, without a trailing slash.
    pub fn versioned_base(&self) -> String {
        format!(
            "{}/{}",
            self.public_url.as_str().trim_end_matches('/'),
            dsr_opendsr::protocol::MAJOR_PATH
        )
    }

    /// Whether a callback may go to `url`: https, and its host (or host:port) allowed.
    pub fn callback_allowed(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let with_port = url.port().map(|port| format!("{host}:{port}"));
        url.scheme() == "https"
            && url.username().is_empty()
            && url.password().is_none()
            && self
                .callback_allow
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host) || with_port.as_deref() == Some(allowed.as_str()))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` (default) or `postgres://…` for several machines.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://dsr-data/ledger.db".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// `sqlite://PATH` (default, embedded) or `redis://HOST:PORT`.
    pub url: String,
    /// Queue name and Redis key prefix.
    pub prefix: String,
    /// How often an idle worker asks the queue for work. 10ms to 1m; default 100ms. A job
    /// queued by the worker's own process (a fan-out's tasks, a finalize) wakes it at once;
    /// one queued elsewhere (`dsr enqueue`, another machine) waits up to one poll.
    #[serde(deserialize_with = "values::span")]
    pub poll: Duration,
    /// The queue's own keep-alive. 1s to 10m; default 10s.
    #[serde(deserialize_with = "values::span")]
    pub heartbeat: Duration,
    /// A worker silent for this many `heartbeat`s is declared dead and its jobs handed on.
    /// 1 to 100; default 3.
    pub missed_heartbeats: usize,
    /// A Redis answer slower than this is an error. 100ms to 5m; default 5s.
    #[serde(deserialize_with = "values::span")]
    pub response_timeout: Duration,
    /// Deprecated: `poll`.
    poll_ms: Option<u64>,
    /// Deprecated: `heartbeat`.
    heartbeat_secs: Option<u64>,
    /// Deprecated: `response_timeout`.
    response_timeout_ms: Option<u64>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            url: "sqlite://dsr-data/queue.db".into(),
            prefix: "dsr".into(),
            poll: millis(100),
            heartbeat: seconds(10),
            missed_heartbeats: 3,
            response_timeout: seconds(5),
            poll_ms: None,
            heartbeat_secs: None,
            response_timeout_ms: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Tasks one worker runs at once. 1 to 256; default 8.
    pub concurrency: usize,
    /// How long a task is held without renewal before another worker takes it over.
    /// 1s to 1d; default 2m.
    #[serde(deserialize_with = "values::span")]
    pub task_lease: Duration,
    /// Attempts per task before it fails (throttling waited out does not count).
    /// 1 to 100; default 8.
    pub max_attempts: u32,
    /// The first retry's backoff, doubled per attempt with jitter. 10ms to 1h; default 5s.
    #[serde(deserialize_with = "values::span")]
    pub backoff_base: Duration,
    /// The longest backoff. `backoff_base` to 1d; default 1h.
    #[serde(deserialize_with = "values::span")]
    pub backoff_max: Duration,
    /// How often the sweeps (recovery, deadline watch, retention) run. 1s to 1h; default 30s.
    #[serde(deserialize_with = "values::span")]
    pub sweep_every: Duration,
    /// How long a job may be missing from the queue before a sweep queues its work again.
    /// 1s to 1d; default 1m.
    #[serde(deserialize_with = "values::span")]
    pub recover_after: Duration,
    /// A task still failing this close to its request's deadline needs attention. Whole
    /// days, 1d to 30d (the deadline itself is a month); default 7d.
    #[serde(deserialize_with = "values::span")]
    pub deadline_warning: Duration,
    /// How often each worker writes its heartbeat to the ledger; it counts as live while
    /// its last one is within three of these (`dsr workers`, `dsr status`, `dsr doctor`).
    /// 1s to 10m; default 15s.
    #[serde(deserialize_with = "values::span")]
    pub heartbeat: Duration,
    /// How long a worker keeps reconnecting to a queue that went away (or a SQLite queue
    /// locked by another process) before it exits non-zero for its supervisor to restart it.
    /// 1s to 1d; default 5m.
    #[serde(deserialize_with = "values::span")]
    pub give_up_after: Duration,
    /// How long one task attempt may run before it is stopped and retried by policy.
    /// 1s to 1d; default 30m.
    #[serde(deserialize_with = "values::span")]
    pub task_timeout: Duration,
    /// Deprecated: `task_lease`.
    task_lease_secs: Option<u64>,
    /// Deprecated: `backoff_base`.
    backoff_base_ms: Option<u64>,
    /// Deprecated: `backoff_max`.
    backoff_max_secs: Option<u64>,
    /// Deprecated: `sweep_every`.
    sweep_every_secs: Option<u64>,
    /// Deprecated: `recover_after`.
    recover_after_secs: Option<u64>,
    /// Deprecated: `deadline_warning`.
    deadline_warning_days: Option<u64>,
    /// Deprecated: `heartbeat`.
    heartbeat_secs: Option<u64>,
    /// Deprecated: `give_up_after`.
    give_up_after_secs: Option<u64>,
    /// Deprecated: `task_timeout`.
    task_timeout_secs: Option<u64>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 8,
            task_lease: 2 * MINUTE,
            max_attempts: 8,
            backoff_base: seconds(5),
            backoff_max: HOUR,
            sweep_every: seconds(30),
            recover_after: MINUTE,
            deadline_warning: days(7),
            heartbeat: seconds(15),
            give_up_after: 5 * MINUTE,
            task_timeout: 30 * MINUTE,
            task_lease_secs: None,
            backoff_base_ms: None,
            backoff_max_secs: None,
            sweep_every_secs: None,
            recover_after_secs: None,
            deadline_warning_days: None,
            heartbeat_secs: None,
            give_up_after_secs: None,
            task_timeout_secs: None,
        }
    }
}

impl WorkerConfig {
    /// `deadline_warning` in the whole days the engine counts in (whole by validation).
    pub fn deadline_warning_days(&self) -> i64 {
        i64::try_from(self.deadline_warning.as_secs() / DAY.as_secs()).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Where spools, bundles and confirmations go when `store` is unset.
    pub dir: PathBuf,
    /// A shared store instead of `dir`, for several machines: `s3://bucket/prefix`
    /// (S3-compatible), `gs://bucket/prefix`, `az://container/prefix`.
    pub store: Option<String>,
    /// The store's options by their object_store names (`aws_region`, `aws_endpoint`,
    /// `aws_access_key_id`, `google_service_account`, `azure_storage_account_name`…);
    /// credentials (a name with a word ending in key, secret, token or password, or naming a
    /// credential or SAS; ids and file paths excepted) must be
    /// `env:NAME` or `file:/path` references like every other secret; the rest may be
    /// literal.
    pub store_options: std::collections::BTreeMap<String, String>,
    /// The Art. 15(1) texts for bundles (TOML, `[nb]` and `[en]`); the example written from
    /// the privacy notice when unset (docs/processing-info.toml).
    pub processing_info: Option<PathBuf>,
    /// Ed25519 key (PKCS#8 PEM) that signs bundle manifests and confirmations:
    /// `file:/path/key.pem` or `env:NAME`. Unsigned when unset.
    pub signing_key: Option<SecretRef>,
    /// How long a finished request's bundle and confirmation stay in the export storage.
    /// 0s to 3650d; default 30d.
    #[serde(deserialize_with = "values::span")]
    pub retention: Duration,
    /// Deprecated: `retention`.
    retention_days: Option<u64>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            dir: PathBuf::from("dsr-data/export"),
            store: None,
            store_options: Default::default(),
            processing_info: None,
            signing_key: None,
            retention: days(30),
            retention_days: None,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    pub name: String,
    /// The IANA zone deadlines and dates are shown in; default Europe/Oslo.
    #[serde(deserialize_with = "values::time_zone")]
    pub time_zone: chrono_tz::Tz,
    /// The language of subject-facing texts when a request names none: `nb` (default) or `en`.
    pub default_language: Lang,
    pub default_phone_region: String,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            name: "Racom AS".into(),
            time_zone: chrono_tz::Europe::Oslo,
            default_language: Lang::Nb,
            default_phone_region: "NO".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Key for the hashes that stand in for subjects in logs. A random one per process
    /// when unset (the hashes then do not correlate across processes).
    pub log_key: Option<SecretRef>,
    /// How long after a request finished its identities in the ledger are replaced by
    /// keyed hashes. 0s to 3650d; default 90d.
    #[serde(deserialize_with = "values::span")]
    pub pseudonymise_after: Duration,
    /// Key for those hashes (the same subject gets the same hash, so a later request can be
    /// matched to what was done). Falls back to `log_key`; random when both are unset.
    pub pseudonym_key: Option<SecretRef>,
    /// Deprecated: `pseudonymise_after`.
    pseudonymise_after_days: Option<u64>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            log_key: None,
            pseudonymise_after: days(90),
            pseudonym_key: None,
            pseudonymise_after_days: None,
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
#[serde(default, deny_unknown_fields)]
pub struct ChangeConfig {
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
#[serde(default, deny_unknown_fields)]
pub struct ErasureConfig {
    pub approval: Approval,
    /// What to do with items that also concern other people, unless a processor's own
    /// `shared` says otherwise. `retain` (the default: an erasure cannot be undone) or
    /// `delete`.
    pub shared: dsr_connector::SharedPolicy,
    /// Why retained shared items are kept, as the confirmation says it. A sensible text in
    /// bokmål and English when unset.
    pub shared_reason: Option<SharedReason>,
    /// Nobody approves a plan of a request they entered themselves (the dashboard, `dsr
    /// approve` and the API alike): another approver must. Off by default.
    pub four_eyes: bool,
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
#[serde(default, deny_unknown_fields)]
pub struct ProcessorsConfig {
    pub google: Option<dsr_google::GoogleConfig>,
    pub microsoft365: Option<dsr_microsoft365::Microsoft365Config>,
    pub superoffice: Option<dsr_superoffice::SuperOfficeConfig>,
    pub wix: Option<dsr_wix::WixConfig>,
    /// Processors reached over OpenDSR, by name (`[processors.opendsr.<name>]`).
    pub opendsr: std::collections::BTreeMap<String, dsr_opendsr::ProcessorConfig>,
}

impl ProcessorsConfig {
    /// The enabled OpenDSR processors with their sections (names checked at load).
    pub fn opendsr_enabled(&self) -> Vec<(dsr_connector::Processor, &dsr_opendsr::ProcessorConfig)> {
        self.opendsr
            .iter()
            .filter(|(_, c)| c.enabled)
            .filter_map(|(name, c)| dsr_connector::Processor::opendsr(name).ok().map(|p| (p, c)))
            .collect()
    }
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
        config.adopt_renamed_keys(&figment)?;
        config.overrides = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| is_override(name))
            .collect();
        config.overrides.sort();
        if let Ok(tree) = figment.find_value("processors") {
            placeholders(&tree, "processors", &mut config.placeholders);
        }
        // A range error names the new key; when the value came from an old one, say so, or
        // the operator is pointed at a key they never wrote.
        config
            .validate()
            .map_err(|e| match (e, config.deprecations.is_empty()) {
                (ConfigError::Invalid(why), false) => ConfigError::Invalid(format!(
                    "{why} (values of old keys are read as their new keys: {})",
                    config.deprecations.join("; ")
                )),
                (e, _) => e,
            })?;
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
        if let Some(o) = &self.opendsr {
            add("opendsr.signing_key".into(), &o.signing_key);
            add("opendsr.certificate".into(), &o.certificate);
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
        for (processor, c) in p.opendsr_enabled() {
            all.push((processor, owned(c.secrets())));
        }
        all
    }

    /// Moves each old unit-suffixed key's value into the key that replaced it, noting a
    /// deprecation; an old key written beside its replacement is refused.
    fn adopt_renamed_keys(&mut self, figment: &Figment) -> Result<(), ConfigError> {
        use Unit::*;
        let (q, w, e, p) = (&mut self.queue, &mut self.worker, &mut self.export, &mut self.privacy);
        let renamed = [
            (
                Renamed::new("queue", "poll_ms", "poll", Millis),
                q.poll_ms.take(),
                &mut q.poll,
            ),
            (
                Renamed::new("queue", "heartbeat_secs", "heartbeat", Secs),
                q.heartbeat_secs.take(),
                &mut q.heartbeat,
            ),
            (
                Renamed::new("queue", "response_timeout_ms", "response_timeout", Millis),
                q.response_timeout_ms.take(),
                &mut q.response_timeout,
            ),
            (
                Renamed::new("worker", "task_lease_secs", "task_lease", Secs),
                w.task_lease_secs.take(),
                &mut w.task_lease,
            ),
            (
                Renamed::new("worker", "backoff_base_ms", "backoff_base", Millis),
                w.backoff_base_ms.take(),
                &mut w.backoff_base,
            ),
            (
                Renamed::new("worker", "backoff_max_secs", "backoff_max", Secs),
                w.backoff_max_secs.take(),
                &mut w.backoff_max,
            ),
            (
                Renamed::new("worker", "sweep_every_secs", "sweep_every", Secs),
                w.sweep_every_secs.take(),
                &mut w.sweep_every,
            ),
            (
                Renamed::new("worker", "recover_after_secs", "recover_after", Secs),
                w.recover_after_secs.take(),
                &mut w.recover_after,
            ),
            (
                Renamed::new("worker", "deadline_warning_days", "deadline_warning", Days),
                w.deadline_warning_days.take(),
                &mut w.deadline_warning,
            ),
            (
                Renamed::new("worker", "heartbeat_secs", "heartbeat", Secs),
                w.heartbeat_secs.take(),
                &mut w.heartbeat,
            ),
            (
                Renamed::new("worker", "give_up_after_secs", "give_up_after", Secs),
                w.give_up_after_secs.take(),
                &mut w.give_up_after,
            ),
            (
                Renamed::new("worker", "task_timeout_secs", "task_timeout", Secs),
                w.task_timeout_secs.take(),
                &mut w.task_timeout,
            ),
            (
                Renamed::new("export", "retention_days", "retention", Days),
                e.retention_days.take(),
                &mut e.retention,
            ),
            (
                Renamed::new("privacy", "pseudonymise_after_days", "pseudonymise_after", Days),
                p.pseudonymise_after_days.take(),
                &mut p.pseudonymise_after,
            ),
        ];
        for (rename, old_value, target) in renamed {
            let new_is_set = figment.contains(&format!("{}.{}", rename.section, rename.new));
            rename.adopt(old_value, new_is_set, target, &mut self.deprecations)?;
        }
        // The processors' sections read their own old keys; their warnings are printed too.
        let pr = &self.processors;
        let processors = [
            pr.google.as_ref().map(|c| c.deprecations()),
            pr.microsoft365.as_ref().map(|c| c.deprecations()),
            pr.superoffice.as_ref().map(|c| c.deprecations()),
            pr.wix.as_ref().map(|c| c.deprecations()),
        ];
        self.deprecations.extend(processors.into_iter().flatten().flatten());
        Ok(())
    }

    /// Refuses a value outside its key's range (the ranges are in the keys' doc comments)
    /// rather than quietly clamping it to something the operator did not write.
    fn validate(&self) -> Result<(), ConfigError> {
        dsr_connector::Phone::parse("+4791234567", &self.controller.default_phone_region)
            .map_err(|e| ConfigError::Invalid(format!("controller.default_phone_region: {e}")))?;
        let (q, w) = (&self.queue, &self.worker);
        check_span("queue.poll", q.poll, millis(10), MINUTE)?;
        check_span("queue.heartbeat", q.heartbeat, SECOND, 10 * MINUTE)?;
        check_count("queue.missed_heartbeats", q.missed_heartbeats, 1, 100)?;
        check_span("queue.response_timeout", q.response_timeout, millis(100), 5 * MINUTE)?;
        check_count("worker.concurrency", w.concurrency, 1, 256)?;
        check_span("worker.task_lease", w.task_lease, SECOND, DAY)?;
        check_count("worker.max_attempts", w.max_attempts, 1, 100)?;
        check_span("worker.backoff_base", w.backoff_base, millis(10), HOUR)?;
        check_span("worker.backoff_max", w.backoff_max, w.backoff_base, DAY)?;
        check_span("worker.sweep_every", w.sweep_every, SECOND, HOUR)?;
        check_span("worker.recover_after", w.recover_after, SECOND, DAY)?;
        check_span("worker.deadline_warning", w.deadline_warning, DAY, days(30))?;
        if !w.deadline_warning.as_millis().is_multiple_of(DAY.as_millis()) {
            return Err(ConfigError::Invalid(format!(
                "worker.deadline_warning = \"{}\" is not a whole number of days: write e.g. \"7d\"",
                span_text(w.deadline_warning)
            )));
        }
        check_span("worker.heartbeat", w.heartbeat, SECOND, 10 * MINUTE)?;
        check_span("worker.give_up_after", w.give_up_after, SECOND, DAY)?;
        check_span("worker.task_timeout", w.task_timeout, SECOND, DAY)?;
        check_span("export.retention", self.export.retention, Duration::ZERO, days(3650))?;
        for (name, c) in &self.processors.opendsr {
            dsr_connector::Processor::opendsr(name).map_err(|_| {
                ConfigError::Invalid(format!(
                    "[processors.opendsr.{name}]: a name is 1 to 40 of a-z, 0-9, _ and -"
                ))
            })?;
            check_span(&format!("processors.opendsr.{name}.poll"), c.poll, SECOND, DAY)?;
        }
        if let Some(o) = &self.opendsr {
            check_span("opendsr.callback_every", o.callback_every, SECOND, 10 * MINUTE)?;
            check_count("opendsr.callback_attempts", o.callback_attempts, 1, 100)?;
            if o.public_url.scheme() != "https" || o.public_url.host_str().is_none() {
                return Err(ConfigError::Invalid(format!(
                    "opendsr.public_url = \"{}\": OpenDSR is served over https to a domain its certificate names; \
                     write e.g. \"https://opendsr.example.no/opendsr\"",
                    o.public_url
                )));
            }
            if o.public_url.path().trim_matches('/').is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "opendsr.public_url = \"{}\" has no path: the OpenDSR routes need one of their own \
                     (dsr's API is at /v1), e.g. \"{}opendsr\"",
                    o.public_url, o.public_url
                )));
            }
            if o.public_url.query().is_some() || o.public_url.fragment().is_some() {
                return Err(ConfigError::Invalid(
                    "opendsr.public_url takes no query or fragment: it is the base the routes are under".into(),
                ));
            }
        }
        subject::validate(&self.subject, self.smtp.as_ref(), &self.delivery)?;
        subject::validate_dashboard(&self.dashboard)?;
        check_span(
            "privacy.pseudonymise_after",
            self.privacy.pseudonymise_after,
            Duration::ZERO,
            days(3650),
        )?;
        Ok(())
    }

    pub fn zone(&self) -> chrono_tz::Tz {
        self.controller.time_zone
    }

    pub fn queue_settings(&self) -> dsr_jobs::QueueSettings {
        dsr_jobs::QueueSettings {
            url: self.queue.url.clone(),
            prefix: self.queue.prefix.clone(),
            poll_interval: self.queue.poll,
            heartbeat: self.queue.heartbeat,
            missed_heartbeats: self.queue.missed_heartbeats,
            response_timeout: self.queue.response_timeout,
            concurrency: self.worker.concurrency,
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
        .chain(p.opendsr_enabled().into_iter().map(|(p, _)| p))
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
        assert_eq!(config.zone(), chrono_tz::Europe::Oslo);
        assert_eq!(config.controller.default_language, Lang::Nb);
        assert!(config.deprecations.is_empty());
        config.validate().expect("the defaults are within their ranges");
        Config::default()
            .validate()
            .expect("so are those of a config built in code");
    }

    /// Every old unit-suffixed key, its value, and what it must read as.
    const RENAMED: [(&str, &str, &str, Duration); 14] = [
        ("queue", "poll_ms = 50", "poll = \"50ms\"", millis(50)),
        ("queue", "heartbeat_secs = 2", "heartbeat = \"2s\"", seconds(2)),
        (
            "queue",
            "response_timeout_ms = 1500",
            "response_timeout = \"1500ms\"",
            millis(1500),
        ),
        ("worker", "task_lease_secs = 3", "task_lease = \"3s\"", seconds(3)),
        (
            "worker",
            "backoff_base_ms = 100",
            "backoff_base = \"100ms\"",
            millis(100),
        ),
        ("worker", "backoff_max_secs = 60", "backoff_max = \"1m\"", MINUTE),
        ("worker", "sweep_every_secs = 1", "sweep_every = \"1s\"", SECOND),
        (
            "worker",
            "recover_after_secs = 7200",
            "recover_after = \"2h\"",
            seconds(7200),
        ),
        (
            "worker",
            "deadline_warning_days = 5",
            "deadline_warning = \"5d\"",
            days(5),
        ),
        ("worker", "heartbeat_secs = 4", "heartbeat = \"4s\"", seconds(4)),
        (
            "worker",
            "give_up_after_secs = 90",
            "give_up_after = \"90s\"",
            seconds(90),
        ),
        (
            "worker",
            "task_timeout_secs = 600",
            "task_timeout = \"10m\"",
            seconds(600),
        ),
        ("export", "retention_days = 0", "retention = \"0s\"", Duration::ZERO),
        (
            "privacy",
            "pseudonymise_after_days = 14",
            "pseudonymise_after = \"14d\"",
            days(14),
        ),
    ];

    /// The value `RENAMED`'s row `i` lands in.
    fn renamed_value(config: &Config, i: usize) -> Duration {
        let (q, w) = (&config.queue, &config.worker);
        [
            q.poll,
            q.heartbeat,
            q.response_timeout,
            w.task_lease,
            w.backoff_base,
            w.backoff_max,
            w.sweep_every,
            w.recover_after,
            w.deadline_warning,
            w.heartbeat,
            w.give_up_after,
            w.task_timeout,
            config.export.retention,
            config.privacy.pseudonymise_after,
        ][i]
    }

    fn sectioned(rows: impl Iterator<Item = (&'static str, String)>) -> String {
        let mut by_section: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (section, line) in rows {
            by_section.entry(section).or_default().push(line);
        }
        by_section
            .into_iter()
            .map(|(section, lines)| format!("[{section}]\n{}\n", lines.join("\n")))
            .collect()
    }

    #[test]
    fn every_old_key_reads_as_its_new_key_and_warns_naming_it() {
        let old = load_str(&sectioned(RENAMED.iter().map(|(s, old, _, _)| (*s, old.to_string())))).unwrap();
        let new = load_str(&sectioned(RENAMED.iter().map(|(s, _, new, _)| (*s, new.to_string())))).unwrap();
        assert!(new.deprecations.is_empty(), "{:?}", new.deprecations);
        assert_eq!(old.deprecations.len(), RENAMED.len(), "{:?}", old.deprecations);
        for (i, (section, old_line, new_line, want)) in RENAMED.iter().enumerate() {
            assert_eq!(renamed_value(&old, i), *want, "{old_line}");
            assert_eq!(renamed_value(&new, i), *want, "{new_line}");
            let old_key = old_line.split(' ').next().unwrap();
            let warning = format!("[{section}] {old_key} is deprecated: write {new_line}");
            assert!(
                old.deprecations.contains(&warning),
                "{warning} in {:?}",
                old.deprecations
            );
        }
    }

    #[test]
    fn an_old_key_beside_its_new_key_is_refused_naming_both() {
        for (section, old, new, _) in RENAMED {
            let err = load_str(&format!("[{section}]\n{old}\n{new}\n"))
                .unwrap_err()
                .to_string();
            let old_key = old.split(' ').next().unwrap();
            let new_key = new.split(' ').next().unwrap();
            assert!(err.contains(&format!("{old_key} and {new_key} are both set")), "{err}");
        }
    }

    #[test]
    fn spans_need_a_unit_the_key_is_named() {
        let err = load_str("[worker]\ntask_lease = \"3 fortnights\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("worker.task_lease") && err.contains("3 fortnights"),
            "{err}"
        );
        let err = load_str("[worker]\ntask_lease = 3\n").unwrap_err().to_string();
        assert!(err.contains("worker.task_lease") && err.contains("no unit"), "{err}");
        let config = load_str("[worker]\ntask_lease = \"1m 30s\"\n").unwrap();
        assert_eq!(config.worker.task_lease, seconds(90));
    }

    #[test]
    fn values_out_of_range_are_refused_with_the_range() {
        for (text, words) in [
            (
                "[queue]\npoll = \"1ms\"",
                "queue.poll = \"1ms\" is out of range: allowed 10ms to 1m",
            ),
            ("[queue]\nheartbeat = \"0s\"", "allowed 1s to 10m"),
            (
                "[queue]\nmissed_heartbeats = 0",
                "queue.missed_heartbeats = 0 is out of range: allowed 1 to 100",
            ),
            ("[queue]\nresponse_timeout = \"10ms\"", "allowed 100ms to 5m"),
            (
                "[worker]\nconcurrency = 0",
                "worker.concurrency = 0 is out of range: allowed 1 to 256",
            ),
            ("[worker]\nconcurrency = 1000", "allowed 1 to 256"),
            (
                "[worker]\ntask_lease = \"500ms\"",
                "worker.task_lease = \"500ms\" is out of range: allowed 1s to 1d",
            ),
            (
                "[worker]\ntask_lease_secs = 0",
                "worker.task_lease = \"0s\" is out of range",
            ),
            (
                "[worker]\nmax_attempts = 0",
                "worker.max_attempts = 0 is out of range: allowed 1 to 100",
            ),
            (
                "[worker]\nbackoff_base = \"2m\"\nbackoff_max = \"1m\"",
                "worker.backoff_max = \"1m\" is out of range: allowed 2m to 1d",
            ),
            ("[worker]\nsweep_every = \"2h\"", "allowed 1s to 1h"),
            (
                "[worker]\ndeadline_warning = \"31d\"",
                "worker.deadline_warning = \"31d\" is out of range: allowed 1d to 30d",
            ),
            (
                "[worker]\ndeadline_warning_days = 45",
                "worker.deadline_warning = \"45d\" is out of range",
            ),
            ("[worker]\ndeadline_warning = \"36h\"", "not a whole number of days"),
            (
                "[worker]\ntask_timeout = \"0s\"",
                "worker.task_timeout = \"0s\" is out of range: allowed 1s to 1d",
            ),
            (
                "[export]\nretention = \"3651d\"",
                "export.retention = \"3651d\" is out of range: allowed 0s to 3650d",
            ),
            (
                "[privacy]\npseudonymise_after_days = 99999999999999",
                "privacy.pseudonymise_after",
            ),
        ] {
            let err = load_str(&format!("{text}\n")).unwrap_err().to_string();
            assert!(err.contains(words), "{text}: {err}");
        }
    }

    #[test]
    fn closed_sets_are_enums_and_name_their_values() {
        let config = load_str("[controller]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n").unwrap();
        assert_eq!(config.controller.default_language, Lang::En);
        assert_eq!(config.zone(), chrono_tz::UTC);
        let err = load_str("[controller]\ndefault_language = \"de\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`de`") && err.contains("`nb`") && err.contains("`en`"),
            "{err}"
        );
        assert!(err.contains("controller.default_language"), "{err}");
        let err = load_str("[controller]\ntime_zone = \"Europe/Olso\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Europe/Olso") && err.contains("Europe/Oslo"), "{err}");
        assert!(err.contains("controller.time_zone"), "{err}");
    }

    #[cfg(feature = "test-connector")]
    #[test]
    fn scripted_connectors_are_keyed_by_processor() {
        let config = load_str("[test_connector.wix]\n[test_connector.google]\n").unwrap();
        let keys: Vec<_> = config.test_connector.keys().copied().collect();
        assert_eq!(keys, [dsr_connector::Processor::Google, dsr_connector::Processor::Wix]);
        let err = load_str("[test_connector.dropbox]\n").unwrap_err().to_string();
        assert!(err.contains("dropbox") && err.contains("superoffice"), "{err}");
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
