//! `[subject]`, `[smtp]` and `[delivery]`: the subject's own way in (the request form and the
//! proof that they own the address) and the way a finished request reaches them (an e-mail
//! with an expiring, audited link). docs/subject.md tells the whole story.

use std::time::Duration;

use dsr_connector::SecretRef;
use serde::Deserialize;

use super::ConfigError;
use super::values::{self, DAY, HOUR, MINUTE, check_count, check_span, days};

/// `[subject]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubjectConfig {
    /// How the subject reaches `dsr serve`, without a trailing path: links in e-mails are
    /// `public_url` + `/privacy/…`. Needed for the form and for delivery; https unless the
    /// host is a loopback address (tests, a proxy on the same machine).
    pub public_url: Option<url::Url>,
    /// How long the link and code sent for a form submission work. 5m to 1d; default 30m.
    #[serde(deserialize_with = "values::span")]
    pub verify_ttl: Duration,
    /// Wrong codes before a submission (or a download's code) is locked. 1 to 20; default 5.
    pub max_tries: u32,
    /// Where the one-month deadline counts from for a request from the form: `submission`
    /// (default, the conservative reading) or `verification`.
    pub deadline_from: DeadlineFrom,
    /// Whether requests entered by operators or through the API must say how the subject's
    /// identity was checked (`--verified-by`) for access, portability and erasure:
    /// `required` (default) or `optional`.
    pub operator_verification: OperatorVerification,
    /// Form submissions per e-mail address per hour, and per client address per hour.
    pub per_address_per_hour: u32,
    pub per_client_per_hour: u32,
    /// Behind a proxy every client has the proxy's address: the header the proxy writes the
    /// client's into (`X-Forwarded-For`; its last entry is read). Unset, the peer's address.
    pub client_address_header: Option<String>,
}

impl Default for SubjectConfig {
    fn default() -> Self {
        SubjectConfig {
            public_url: None,
            verify_ttl: 30 * MINUTE,
            max_tries: 5,
            deadline_from: DeadlineFrom::Submission,
            operator_verification: OperatorVerification::Required,
            per_address_per_hour: 3,
            per_client_per_hour: 20,
            client_address_header: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineFrom {
    Submission,
    Verification,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorVerification {
    Required,
    Optional,
}

/// `[smtp]`: the server e-mails go through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 587 with `starttls`, 465 with `tls`, 25 with `none`.
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (only to a loopback host:
    /// a relay on the same machine).
    #[serde(default = "SmtpConfig::default_security")]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    /// The sender: `Personvern <personvern@example.no>`.
    pub from: String,
    /// Authorities trusted for the mail server's certificate besides the public web's (a
    /// private CA), one PEM certificate.
    pub ca_file: Option<std::path::PathBuf>,
    /// How long one delivery to the server may take. 1s to 5m; default 30s.
    #[serde(default = "SmtpConfig::default_timeout", deserialize_with = "values::span")]
    pub timeout: Duration,
}

impl SmtpConfig {
    fn default_security() -> SmtpSecurity {
        SmtpSecurity::Starttls
    }

    fn default_timeout() -> Duration {
        Duration::from_secs(30)
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

/// `[delivery]`: how a finished request's bundle or confirmation reaches the subject.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// E-mail the subject a link when their request ends (needs `[smtp]` and
    /// `[subject] public_url`). Default true.
    pub enabled: bool,
    /// How long a link works. 1h to 30d; default 7d.
    #[serde(deserialize_with = "values::span")]
    pub link_ttl: Duration,
    /// Downloads a link allows. 1 to 100; default 5.
    pub max_downloads: u32,
    /// How long the code sent when a link is opened works. 5m to 1d; default 15m.
    #[serde(deserialize_with = "values::span")]
    pub code_ttl: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            link_ttl: days(7),
            max_downloads: 5,
            code_ttl: 15 * MINUTE,
        }
    }
}

/// Ranges and the combinations that cannot work.
pub(super) fn validate(
    subject: &SubjectConfig,
    smtp: Option<&SmtpConfig>,
    delivery: &DeliveryConfig,
) -> Result<(), ConfigError> {
    check_span("subject.verify_ttl", subject.verify_ttl, 5 * MINUTE, DAY)?;
    check_count("subject.max_tries", subject.max_tries, 1, 20)?;
    check_count("subject.per_address_per_hour", subject.per_address_per_hour, 1, 1000)?;
    check_count("subject.per_client_per_hour", subject.per_client_per_hour, 1, 100_000)?;
    check_span("delivery.link_ttl", delivery.link_ttl, HOUR, days(30))?;
    check_count("delivery.max_downloads", delivery.max_downloads, 1, 100)?;
    check_span("delivery.code_ttl", delivery.code_ttl, 5 * MINUTE, DAY)?;
    if let Some(url) = &subject.public_url {
        let host = url.host_str().unwrap_or_default();
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(host)) {
            return Err(ConfigError::Invalid(format!(
                "subject.public_url = \"{url}\": subjects follow links to it from e-mail, so it must be https \
                 (http only for a loopback host)"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
            return Err(ConfigError::Invalid(format!(
                "subject.public_url = \"{url}\": write the origin only, e.g. \"https://privacy.example.no\" \
                 (the pages are under /privacy/)"
            )));
        }
    }
    if let Some(smtp) = smtp {
        check_span("smtp.timeout", smtp.timeout, values::SECOND, 5 * MINUTE)?;
        if smtp.host.trim().is_empty() {
            return Err(ConfigError::Invalid("smtp.host is empty: name the mail server".into()));
        }
        if smtp.security == SmtpSecurity::None && !is_loopback(&smtp.host) {
            return Err(ConfigError::Invalid(format!(
                "smtp.security = \"none\" sends codes and links in clear text to {}: use \"starttls\" or \"tls\" \
                 (\"none\" is for a relay on this machine only)",
                smtp.host
            )));
        }
        if smtp.username.is_some() != smtp.password.is_some() {
            return Err(ConfigError::Invalid(
                "smtp.username and smtp.password go together: set both or neither".into(),
            ));
        }
        smtp.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| ConfigError::Invalid(format!("smtp.from = \"{}\" is not an address: {e}", smtp.from)))?;
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `[dashboard]`: the operators' pages under `dsr serve`'s `/dashboard`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard. Default true (nobody signs in until `dsr user add`).
    pub enabled: bool,
    /// A session unused this long is signed out. 1m to 12h; default 30m.
    #[serde(deserialize_with = "values::span")]
    pub idle: Duration,
    /// A session ends this long after sign-in whatever its use. 1h to 7d; default 12h.
    #[serde(deserialize_with = "values::span")]
    pub absolute: Duration,
    /// Mark the session cookie `Secure` (sent over https only). Default true; false only for
    /// a dashboard reached over plain http on this machine.
    pub secure_cookie: bool,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: true,
            idle: 30 * MINUTE,
            absolute: 12 * HOUR,
            secure_cookie: true,
        }
    }
}

pub(super) fn validate_dashboard(dashboard: &DashboardConfig) -> Result<(), ConfigError> {
    check_span("dashboard.idle", dashboard.idle, MINUTE, 12 * HOUR)?;
    check_span("dashboard.absolute", dashboard.absolute, HOUR, days(7))?;
    Ok(())
}
