//! `[processors.microsoft365]` in `dsr.toml`.

use dsr_connector::SecretRef;
use serde::Deserialize;

pub use dsr_connector::DeleteMode;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Microsoft365Config {
    /// A section present is enabled unless it says `enabled = false`.
    #[serde(default = "dsr_connector::section_enabled")]
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    #[serde(default)]
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// The directory (tenant) id or a verified domain.
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    pub client_secret: SecretRef,
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// Mailboxes to search: addresses, or `["*"]` for every user in the tenant.
    #[serde(default = "all_mailboxes")]
    pub mailboxes: Vec<String>,
    #[serde(default)]
    pub delete_mode: DeleteMode,
    /// `$top` for every list (Graph allows 1–1000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Results one `$search` returns at most (Graph: 1,000); a search that reaches it is
    /// split by date so nothing is missed.
    #[serde(default = "default_search_cap")]
    pub search_cap: usize,
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com/v1.0".into()
}
fn default_login_url() -> String {
    "https://login.microsoftonline.com".into()
}
fn all_mailboxes() -> Vec<String> {
    vec!["*".into()]
}
fn default_page_size() -> u32 {
    100
}
fn default_search_cap() -> usize {
    1000
}

impl Microsoft365Config {
    /// The secrets this section names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("client_secret", &self.client_secret)]
    }

    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_url.trim_end_matches('/'),
            self.tenant_id
        )
    }

    pub fn all_mailboxes(&self) -> bool {
        self.mailboxes.iter().any(|m| m == "*")
    }
}
