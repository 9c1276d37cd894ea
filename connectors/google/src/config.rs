//! `[processors.google]` in `dsr.toml`, and what in it cannot work, named by its key.

use std::ops::RangeInclusive;
use std::time::Duration;

use dsr_connector::{ConfigError, SecretRef};
use serde::Deserialize;

use crate::client::PROCESSOR;

pub use dsr_connector::DeleteMode;

/// The section as written. Only [`GoogleConfig`] is handed out, built by `TryFrom`, so a wait
/// out of its range, or given twice, is refused when the file is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGoogleConfig {
    #[serde(default = "dsr_connector::section_enabled")]
    enabled: bool,
    shared: Option<dsr_connector::SharedPolicy>,
    service_account_key: SecretRef,
    #[serde(default = "default_token_url")]
    token_url: String,
    #[serde(default = "default_analytics_url")]
    analytics_url: String,
    #[serde(default = "default_admin_url")]
    analytics_admin_url: String,
    #[serde(default)]
    ga4_property_ids: Vec<String>,
    #[serde(default)]
    use_user_provided_data: bool,
    #[serde(default = "default_bigquery_url")]
    bigquery_url: String,
    bigquery_dataset: Option<String>,
    /// A duration, `"2m"`.
    bigquery_wait: Option<String>,
    /// Deprecated: the same wait in seconds. Wider than any wait, so a negative number is
    /// answered with the range too.
    bigquery_wait_secs: Option<i64>,
    #[serde(default = "default_gmail_url")]
    gmail_url: String,
    #[serde(default = "default_people_url")]
    people_url: String,
    workspace: Option<WorkspaceConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawGoogleConfig")]
pub struct GoogleConfig {
    /// A section present is enabled unless it says `enabled = false`.
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// The service-account JSON key file Google issues (`file:PATH`), the only credential:
    /// Workspace is reached through the same account's domain-wide delegation.
    pub service_account_key: SecretRef,
    pub token_url: String,
    pub analytics_url: String,
    pub analytics_admin_url: String,
    /// GA4 property ids, numeric, as strings.
    pub ga4_property_ids: Vec<String>,
    /// Also delete by the subject's e-mail and phone through the Admin API's
    /// `userProvidedData` (only where the property collects user-provided data).
    pub use_user_provided_data: bool,
    pub bigquery_url: String,
    /// `project.dataset` of the GA4 BigQuery export, when there is one.
    pub bigquery_dataset: Option<String>,
    /// How long an access request waits for the export's query to finish, within
    /// [`BIGQUERY_WAITS`]; then the task is retried later (`retry_later:bigquery_timeout`).
    pub bigquery_wait: Duration,
    pub gmail_url: String,
    pub people_url: String,
    /// Google Workspace mail and contacts, through domain-wide delegation.
    pub workspace: Option<WorkspaceConfig>,
    /// Keys written in a form that still works but should change, each with the new form.
    deprecations: Vec<String>,
}

/// What `bigquery_wait` may be: at least a second, at most a day (a deadline that far ahead
/// is always representable).
pub const BIGQUERY_WAITS: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(86_400);

/// `bigquery_wait` unless the section says otherwise.
const DEFAULT_BIGQUERY_WAIT: Duration = Duration::from_secs(120);

impl TryFrom<RawGoogleConfig> for GoogleConfig {
    type Error = ConfigError;

    fn try_from(raw: RawGoogleConfig) -> Result<Self, ConfigError> {
        let mut deprecations = Vec::new();
        let bigquery_wait = match (raw.bigquery_wait, raw.bigquery_wait_secs) {
            (Some(_), Some(_)) => {
                let reason = "give bigquery_wait or the deprecated bigquery_wait_secs, not both";
                return Err(ConfigError::new(PROCESSOR, "bigquery_wait", reason));
            }
            (Some(text), None) => {
                let wait = parse_duration(&text).map_err(|e| {
                    let reason = format!("`{text}` is not a duration ({e}): write it like \"90s\", \"2m\" or \"1h\"");
                    ConfigError::new(PROCESSOR, "bigquery_wait", reason)
                })?;
                bigquery_wait("bigquery_wait", &text, wait)?
            }
            (None, Some(secs)) => {
                let wait = u64::try_from(secs).map(Duration::from_secs).unwrap_or(Duration::ZERO);
                let wait = bigquery_wait("bigquery_wait_secs", &secs.to_string(), wait)?;
                deprecations.push(format!(
                    "processors.google.bigquery_wait_secs is deprecated: write bigquery_wait = \"{}\" instead",
                    format_duration(wait)
                ));
                wait
            }
            (None, None) => DEFAULT_BIGQUERY_WAIT,
        };
        Ok(GoogleConfig {
            enabled: raw.enabled,
            shared: raw.shared,
            service_account_key: raw.service_account_key,
            token_url: raw.token_url,
            analytics_url: raw.analytics_url,
            analytics_admin_url: raw.analytics_admin_url,
            ga4_property_ids: raw.ga4_property_ids,
            use_user_provided_data: raw.use_user_provided_data,
            bigquery_url: raw.bigquery_url,
            bigquery_dataset: raw.bigquery_dataset,
            bigquery_wait,
            gmail_url: raw.gmail_url,
            people_url: raw.people_url,
            workspace: raw.workspace,
            deprecations,
        })
    }
}

/// `wait` (written `written` under `key`) within [`BIGQUERY_WAITS`], or the error that gives
/// the range.
fn bigquery_wait(key: &str, written: &str, wait: Duration) -> Result<Duration, ConfigError> {
    if BIGQUERY_WAITS.contains(&wait) {
        return Ok(wait);
    }
    let (low, high) = (BIGQUERY_WAITS.start(), BIGQUERY_WAITS.end());
    let reason = if key == "bigquery_wait_secs" {
        format!(
            "{written} is out of range: give a number of seconds from {} to {}",
            low.as_secs(),
            high.as_secs()
        )
    } else {
        format!(
            "`{written}` is out of range: give a duration from {} to {}",
            format_duration(*low),
            format_duration(*high)
        )
    };
    Err(ConfigError::new(PROCESSOR, key, reason))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// The Workspace users whose mail and contacts are searched.
    pub mailboxes: Vec<String>,
    #[serde(default)]
    pub delete_mode: DeleteMode,
}

impl GoogleConfig {
    /// The secrets this section names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("service_account_key", &self.service_account_key)]
    }

    /// Keys written in a form that still works but should change, as lines for the operator.
    pub fn deprecations(&self) -> Vec<String> {
        self.deprecations.clone()
    }

    /// What in this section cannot work, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bigquery_export()?;
        // Checked when the file is read; again here for a section changed since.
        bigquery_wait(
            "bigquery_wait",
            &format_duration(self.bigquery_wait),
            self.bigquery_wait,
        )?;
        let numeric = |p: &String| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
        match self.ga4_property_ids.iter().find(|p| !numeric(p)) {
            Some(bad) => Err(ConfigError::new(
                PROCESSOR,
                "ga4_property_ids",
                format!("`{bad}` is not a numeric GA4 property id"),
            )),
            None => Ok(()),
        }
    }

    /// The GA4 BigQuery export's project and dataset, when one is configured.
    pub fn bigquery_export(&self) -> Result<Option<(String, String)>, ConfigError> {
        self.bigquery_dataset.as_deref().map(parse_dataset).transpose()
    }

    /// The Workspace mailboxes searched (none without Workspace).
    pub fn mailboxes(&self) -> impl Iterator<Item = &String> {
        self.workspace.iter().flat_map(|w| &w.mailboxes)
    }

    /// How Workspace items are deleted (hard without Workspace, where nothing is).
    pub fn delete_mode(&self) -> DeleteMode {
        self.workspace.as_ref().map(|w| w.delete_mode).unwrap_or_default()
    }
}

/// Checks `project.dataset` so it can be placed in SQL and a URL path: only the characters
/// Google allows in project ids (a domain-scoped one, `example.com:project`, included) and
/// dataset names, nothing that could end the quoted table name.
/// https://cloud.google.com/resource-manager/docs/creating-managing-projects (project ids)
pub fn parse_dataset(value: &str) -> Result<(String, String), ConfigError> {
    let bad = || {
        let reason = format!(
            "`{value}` must be `project.dataset` or `domain:project.dataset` \
             (letters, digits, - in the project, _ in the dataset)"
        );
        ConfigError::new(PROCESSOR, "bigquery_dataset", reason)
    };
    // Dataset names hold no dot; a domain-scoped project id does.
    let (project, dataset) = value.rsplit_once('.').ok_or_else(bad)?;
    let (domain, name) = match project.split_once(':') {
        Some((domain, name)) => (Some(domain), name),
        None => (None, project),
    };
    let label = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let domain_ok = domain.is_none_or(|d| d.contains('.') && d.split('.').all(label));
    let name_ok = label(name) && name.len() <= 30;
    let dataset_ok =
        !dataset.is_empty() && dataset.len() <= 1024 && dataset.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if domain_ok && name_ok && dataset_ok {
        Ok((project.to_string(), dataset.to_string()))
    } else {
        Err(bad())
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| e.to_string())
}

fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

fn default_token_url() -> String {
    "https://oauth2.googleapis.com/token".into()
}
fn default_analytics_url() -> String {
    "https://www.googleapis.com/analytics/v3".into()
}
fn default_admin_url() -> String {
    "https://analyticsadmin.googleapis.com/v1alpha".into()
}
fn default_bigquery_url() -> String {
    "https://bigquery.googleapis.com/bigquery/v2".into()
}
fn default_gmail_url() -> String {
    "https://gmail.googleapis.com/gmail/v1".into()
}
fn default_people_url() -> String {
    "https://people.googleapis.com/v1".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_checked_before_they_reach_sql() {
        assert_eq!(
            parse_dataset("racom-analytics.analytics_351234567").unwrap().1,
            "analytics_351234567"
        );
        assert_eq!(
            parse_dataset("example.com:racom-analytics.analytics_351234567").unwrap(),
            (
                "example.com:racom-analytics".to_string(),
                "analytics_351234567".to_string()
            ),
            "a domain-scoped project id"
        );
        for bad in [
            "nodot",
            "p.d`; DROP TABLE x; --",
            "P.d",
            "p.",
            ".d",
            "p.d.e",
            ":p.d",
            "example:p.d",
            "ex`ample.com:p.d",
            "example.com:.d",
        ] {
            let err = parse_dataset(bad).unwrap_err();
            assert_eq!(err.key, "bigquery_dataset", "{bad}");
        }
    }

    fn section(extra: &str) -> Result<GoogleConfig, String> {
        toml::from_str(&format!(
            "service_account_key = \"file:/nonexistent\"\nbigquery_dataset = \"p.d\"\n{extra}"
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_bigquery_wait_is_two_minutes_unless_set_and_from_a_second_to_a_day() {
        let two_minutes = section("").unwrap();
        assert_eq!(two_minutes.bigquery_wait, Duration::from_secs(120));
        assert!(two_minutes.deprecations().is_empty());
        for (written, wait) in [
            ("1s", 1),
            ("90s", 90),
            ("1h 30m", 5400),
            ("1d", 86_400),
            ("24h", 86_400),
        ] {
            let config = section(&format!("bigquery_wait = \"{written}\"")).unwrap();
            assert_eq!(config.bigquery_wait, Duration::from_secs(wait), "{written}");
            assert!(config.validate().is_ok(), "{written}");
            assert!(config.deprecations().is_empty(), "{written}");
        }
        for bad in ["0s", "999ms", "25h", "2d"] {
            let err = section(&format!("bigquery_wait = \"{bad}\"")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "processors.google.bigquery_wait: `{bad}` is out of range: give a duration from 1s to 1day"
                )),
                "{err}"
            );
        }
        for bad in ["", "2", "two minutes", "2 fortnights", "-5s"] {
            let err = section(&format!("bigquery_wait = \"{bad}\"")).unwrap_err();
            assert!(
                err.contains("processors.google.bigquery_wait: ") && err.contains("is not a duration"),
                "{bad}: {err}"
            );
        }
        let mut changed = two_minutes;
        changed.bigquery_wait = Duration::ZERO;
        assert_eq!(changed.validate().unwrap_err().key, "bigquery_wait");
    }

    #[test]
    fn the_old_seconds_key_still_works_and_names_the_new_one() {
        let config = section("bigquery_wait_secs = 90").unwrap();
        assert_eq!(config.bigquery_wait, Duration::from_secs(90));
        assert_eq!(
            config.deprecations(),
            ["processors.google.bigquery_wait_secs is deprecated: write bigquery_wait = \"1m 30s\" instead"]
        );
        assert_eq!(
            section("bigquery_wait_secs = 86400").unwrap().deprecations(),
            ["processors.google.bigquery_wait_secs is deprecated: write bigquery_wait = \"1day\" instead"]
        );
        for bad in [0, 86_401, -1] {
            let err = section(&format!("bigquery_wait_secs = {bad}")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "processors.google.bigquery_wait_secs: {bad} is out of range: give a number of seconds from 1 to 86400"
                )),
                "{err}"
            );
        }
        let err = section("bigquery_wait_secs = 90\nbigquery_wait = \"90s\"").unwrap_err();
        assert!(
            err.contains(
                "processors.google.bigquery_wait: give bigquery_wait or the deprecated bigquery_wait_secs, not both"
            ),
            "{err}"
        );
    }
}
