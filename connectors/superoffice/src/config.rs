//! `[processors.superoffice]` in `dsr.toml`.

use dsr_connector::SecretRef;
use serde::Deserialize;

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
    #[serde(default)]
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// `https://{sod|stage|online}.superoffice.com`.
    #[serde(default = "default_environment")]
    pub environment_url: String,
    /// The customer id, `Cust12345`.
    pub tenant: String,
    pub client_id: String,
    pub client_secret: SecretRef,
    /// System-user flow: the system user token and the application's RSA key (PEM or XML).
    #[serde(default)]
    pub system_user_token: Option<String>,
    #[serde(default)]
    pub private_key: Option<SecretRef>,
    /// Or a refresh token from a one-time administrator consent.
    #[serde(default)]
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

    pub fn environment(&self) -> &str {
        self.environment_url.trim_end_matches('/')
    }

    pub fn validate(&self) -> Result<(), String> {
        let system_user = self.system_user_token.is_some() && self.private_key.is_some();
        if !system_user && self.refresh_token.is_none() {
            return Err("give either system_user_token and private_key (system user flow) or refresh_token".into());
        }
        if !self.tenant.starts_with("Cust") || !self.tenant[4..].chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("tenant `{}` must look like Cust12345", self.tenant));
        }
        if let Some(rule) = self.retain.iter().find(|r| !RELATED.contains(&r.category.as_str())) {
            return Err(format!(
                "retain: unknown category `{}` (expected one of {})",
                rule.category,
                RELATED.join(", ")
            ));
        }
        Ok(())
    }
}
