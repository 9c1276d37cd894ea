//! `[processors.google]` in `dsr.toml`.

use dsr_connector::SecretRef;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// A section present is enabled unless it says `enabled = false`.
    #[serde(default = "dsr_connector::section_enabled")]
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    #[serde(default)]
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
    #[serde(default)]
    pub bigquery_dataset: Option<String>,
    #[serde(default = "default_gmail_url")]
    pub gmail_url: String,
    #[serde(default = "default_people_url")]
    pub people_url: String,
    /// Google Workspace mail and contacts, through domain-wide delegation.
    #[serde(default)]
    pub workspace: Option<WorkspaceConfig>,
}

pub use dsr_connector::DeleteMode;

impl GoogleConfig {
    /// The secrets this section names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("service_account_key", &self.service_account_key)]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// The Workspace users whose mail and contacts are searched.
    pub mailboxes: Vec<String>,
    #[serde(default)]
    pub delete_mode: DeleteMode,
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
