//! `[processors.opendsr.<name>]`: a processor reached over OpenDSR.

use std::path::PathBuf;
use std::time::Duration;

use dsr_connector::{SecretRef, section_enabled};
use serde::{Deserialize, Deserializer};

/// One OpenDSR processor, as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorConfig {
    /// A section present is enabled unless it says `enabled = false`.
    #[serde(default = "section_enabled")]
    pub enabled: bool,
    /// The processor's OpenDSR base, with its major version: `https://opendsr.example.com/v1`
    /// (its `/discovery` and `/requests` are under it). Its host is the processor's domain.
    /// https, except on the loopback interface (tests, a local gateway).
    pub url: String,
    /// The pin of the key of the processor's signing certificate (`sha256/…`,
    /// docs/opendsr.md): the certificate discovery publishes must carry this key.
    pub certificate_pin: String,
    /// The header the processor's API authenticates with (default `Authorization`) and its
    /// whole value (`Bearer …`), as `env:` or `file:`.
    #[serde(default = "ProcessorConfig::default_auth_header")]
    pub auth_header: String,
    pub auth_value: Option<SecretRef>,
    /// Authorities trusted for the processor's certificate instead of the public web's (a
    /// private CA, PEM). Unset: the public web's (Mozilla's list).
    pub trust_roots: Option<PathBuf>,
    /// How long dsr waits before it looks again at a request the processor is still
    /// fulfilling (a callback makes it look at once). 1s to 1d; default 1h.
    #[serde(default = "ProcessorConfig::default_poll", deserialize_with = "span")]
    pub poll: Duration,
    /// Where the processor sends status callbacks: `dsr serve`'s
    /// `/opendsr/callbacks/<name>` as the processor reaches it. Unset: none are asked for,
    /// and dsr polls.
    pub callback_url: Option<String>,
}

impl ProcessorConfig {
    fn default_auth_header() -> String {
        "Authorization".into()
    }

    fn default_poll() -> Duration {
        Duration::from_secs(3600)
    }

    /// The secrets it names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        self.auth_value.iter().map(|s| ("auth_value", s)).collect()
    }
}

/// A span of time written `"30s"`, `"1h"`.
fn span<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a span of time such as \"30s\" or \"1h\": {e}")))
}
