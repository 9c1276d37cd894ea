//! `[processors.microsoft365]` in `dsr.toml`, checked when the connector is built: a key that
//! cannot work is a `ConfigError` naming it.

use dsr_connector::{ConfigError, SecretRef};
use serde::Deserialize;
use url::Url;

pub use dsr_connector::DeleteMode;

use crate::client::PROCESSOR;

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

/// `key` as an http(s) URL.
fn web_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(value).map_err(|e| ConfigError::new(PROCESSOR, key, format!("`{value}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(ConfigError::new(
            PROCESSOR,
            key,
            format!("`{value}` is not an http(s) URL"),
        ));
    }
    Ok(url)
}

impl Microsoft365Config {
    /// The secrets this section names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("client_secret", &self.client_secret)]
    }

    /// Whether the section can work, before any secret is read or call made.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // A GUID or a domain: one path segment of the token endpoint's URL.
        let tenant = &self.tenant_id;
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ConfigError::new(
                PROCESSOR,
                "tenant_id",
                format!("`{tenant}` is neither a directory (tenant) id nor a domain such as racom.onmicrosoft.com"),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::new(
                PROCESSOR,
                "client_id",
                "is empty: give the app registration's application (client) id",
            ));
        }
        if self.search_cap == 0 {
            return Err(ConfigError::new(PROCESSOR, "search_cap", "must be at least 1"));
        }
        self.graph_base()?;
        self.token_url()?;
        Ok(())
    }

    /// Graph's base URL, ending in `/` so paths are added below it.
    pub fn graph_base(&self) -> Result<Url, ConfigError> {
        let mut base = web_url("graph_url", &self.graph_url)?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(base)
    }

    /// The tenant's token endpoint (Microsoft identity platform v2.0).
    pub fn token_url(&self) -> Result<Url, ConfigError> {
        let text = format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_url.trim_end_matches('/'),
            self.tenant_id
        );
        web_url("login_url", &self.login_url)?;
        web_url("login_url", &text)
    }

    pub fn all_mailboxes(&self) -> bool {
        self.mailboxes.iter().any(|m| m == "*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes one key of a good section bad.
    type Spoil = fn(&mut Microsoft365Config);

    fn config() -> Microsoft365Config {
        let text = "tenant_id = \"racom.onmicrosoft.com\"\nclient_id = \"app\"\nclient_secret = \"env:DSR_NOT_SET\"\n";
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_key_that_cannot_work_is_named() {
        assert!(config().validate().is_ok());
        assert_eq!(config().graph_base().unwrap().path(), "/v1.0/");
        assert_eq!(
            config().token_url().unwrap().as_str(),
            "https://login.microsoftonline.com/racom.onmicrosoft.com/oauth2/v2.0/token"
        );
        let spoilt: [(&str, Spoil); 5] = [
            ("tenant_id", |c| c.tenant_id = "racom/../common".into()),
            ("client_id", |c| c.client_id = " ".into()),
            ("graph_url", |c| c.graph_url = "graph.microsoft.com/v1.0".into()),
            ("login_url", |c| c.login_url = "ftp://login.example".into()),
            ("search_cap", |c| c.search_cap = 0),
        ];
        for (key, spoil) in spoilt {
            let mut bad = config();
            spoil(&mut bad);
            let err = bad.validate().unwrap_err();
            assert_eq!(err.key, key, "{err}");
            assert!(
                err.to_string().starts_with(&format!("processors.microsoft365.{key}: ")),
                "{err}"
            );
        }
    }
}
