//! `[processors.google]` in `dsr.toml`, and what in it cannot work, named by its key.

use dsr_connector::{ConfigError, SecretRef};
use serde::Deserialize;

use crate::client::PROCESSOR;

pub use dsr_connector::DeleteMode;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// A section present is enabled unless it says `enabled = false`.
    #[serde(default = "dsr_connector::section_enabled")]
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// The service-account JSON key file Google issues (`file:PATH`).
    pub service_account_key: SecretRef,
    #[serde(default = "default_token_url")]
    pub token_url: String,
    #[serde(default = "default_analytics_url")]
    pub analytics_url: String,
    #[serde(default = "default_admin_url")]
    pub analytics_admin_url: String,
    /// GA4 property ids, numeric, as strings.
    #[serde(default)]
    pub ga4_property_ids: Vec<String>,
    /// Also delete by the subject's e-mail and phone through the Admin API's
    /// `userProvidedData` (only where the property collects user-provided data).
    #[serde(default)]
    pub use_user_provided_data: bool,
    #[serde(default = "default_bigquery_url")]
    pub bigquery_url: String,
    /// `project.dataset` of the GA4 BigQuery export, when there is one.
    pub bigquery_dataset: Option<String>,
    /// How long an access request waits for the export's query to finish, in seconds; then
    /// the task is retried later (`retry_later:bigquery_timeout`).
    #[serde(default = "default_bigquery_wait_secs")]
    pub bigquery_wait_secs: u64,
    #[serde(default = "default_gmail_url")]
    pub gmail_url: String,
    #[serde(default = "default_people_url")]
    pub people_url: String,
    /// Google Workspace mail and contacts, through domain-wide delegation.
    pub workspace: Option<WorkspaceConfig>,
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

    /// What in this section cannot work, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bigquery_export()?;
        if !(1..=MAX_BIGQUERY_WAIT_SECS).contains(&self.bigquery_wait_secs) {
            return Err(ConfigError::new(
                PROCESSOR,
                "bigquery_wait_secs",
                format!(
                    "`{}` must be a number of seconds from 1 to {MAX_BIGQUERY_WAIT_SECS}",
                    self.bigquery_wait_secs
                ),
            ));
        }
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

/// The longest `bigquery_wait_secs` accepted: a day.
pub const MAX_BIGQUERY_WAIT_SECS: u64 = 86_400;

fn default_bigquery_wait_secs() -> u64 {
    120
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

    #[test]
    fn the_bigquery_wait_is_two_minutes_unless_set_and_at_least_a_second() {
        let section = |extra: &str| -> GoogleConfig {
            toml::from_str(&format!(
                "service_account_key = \"file:/nonexistent\"\nbigquery_dataset = \"p.d\"\n{extra}"
            ))
            .unwrap()
        };
        assert_eq!(section("").bigquery_wait_secs, 120);
        assert!(section("bigquery_wait_secs = 1").validate().is_ok());
        for bad in [0, MAX_BIGQUERY_WAIT_SECS + 1] {
            let err = section(&format!("bigquery_wait_secs = {bad}")).validate().unwrap_err();
            assert_eq!(err.key, "bigquery_wait_secs", "{bad}");
        }
    }
}
