//! `[processors.superoffice]` in `dsr.toml`.

use dsr_connector::{ConfigError, SecretRef};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::client::PROCESSOR;

/// Related records the controller keeps on purpose, with the reason the subject is shown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetainRule {
    /// `Appointments`, `Documents`, `Sales` or `Tickets`.
    pub category: String,
    pub reason: String,
    pub legal_basis: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuperOfficeConfig {
    /// A section present is enabled unless it says `enabled = false`.
    #[serde(default = "dsr_connector::section_enabled")]
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// `https://{sod|stage|online}.superoffice.com`.
    #[serde(default = "default_environment")]
    pub environment_url: String,
    /// The customer id, `Cust12345`.
    pub tenant: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    /// System-user flow: the system user token (kept out of logs) and the application's RSA
    /// key (PEM or XML).
    pub system_user_token: Option<SecretString>,
    pub private_key: Option<SecretRef>,
    /// Or a refresh token from a one-time administrator consent.
    pub refresh_token: Option<SecretRef>,
    #[serde(default)]
    pub retain: Vec<RetainRule>,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_environment() -> String {
    "https://online.superoffice.com".into()
}
fn default_page_size() -> u32 {
    50
}

pub const RELATED: [&str; 4] = ["Appointments", "Documents", "Sales", "Tickets"];

/// The `SaleFilteredWithStakeholder` columns read for a person's sales: the sale, its own
/// person and whether the row is there only because the person is a stakeholder.
/// https://docs.superoffice.com/en/api/archive-providers/reference/salefilteredwithstakeholder.html
pub const SALE_COLUMNS: &str = "saleId,heading,amount,saleStatus,personId,isStakeholderSale,saleStakeholderId";

impl SuperOfficeConfig {
    /// The secrets this section names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut named = vec![("client_secret", &self.client_secret)];
        named.extend(self.private_key.as_ref().map(|s| ("private_key", s)));
        named.extend(self.refresh_token.as_ref().map(|s| ("refresh_token", s)));
        named
    }

    /// `environment_url` parsed, or the error that names it.
    pub fn environment(&self) -> Result<Url, ConfigError> {
        let text = &self.environment_url;
        Url::parse(text.trim_end_matches('/'))
            .map_err(|e| ConfigError::new(PROCESSOR, "environment_url", format!("`{text}` is not a URL: {e}")))
    }

    /// What in this section cannot work, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let system_user = self.system_user_token.is_some() && self.private_key.is_some();
        if !system_user && self.refresh_token.is_none() {
            return Err(ConfigError::new(
                PROCESSOR,
                "",
                "give either system_user_token and private_key (system user flow) or refresh_token",
            ));
        }
        self.environment()?;
        let customer_id = self.tenant.strip_prefix("Cust");
        if !customer_id.is_some_and(|digits| digits.chars().all(|c| c.is_ascii_digit())) {
            let reason = format!("`{}` must look like Cust12345", self.tenant);
            return Err(ConfigError::new(PROCESSOR, "tenant", reason));
        }
        if let Some(rule) = self.retain.iter().find(|r| !RELATED.contains(&r.category.as_str())) {
            let reason = format!(
                "unknown category `{}` (expected one of {})",
                rule.category,
                RELATED.join(", ")
            );
            return Err(ConfigError::new(PROCESSOR, "retain", reason));
        }
        Ok(())
    }
}
