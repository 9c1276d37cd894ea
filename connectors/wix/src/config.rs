//! `[processors.wix]` in `dsr.toml`.

use dsr_connector::SecretRef;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WixConfig {
    /// A section present is enabled unless it says `enabled = false`.
    #[serde(default = "dsr_connector::section_enabled")]
    pub enabled: bool,
    #[serde(default = "default_api_url")]
    pub api_url: String,
    pub site_id: String,
    /// An API key from the account's API Keys Manager...
    #[serde(default)]
    pub api_key: Option<SecretRef>,
    /// ...or an app's OAuth credentials and its instance on this site.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default = "default_namespaces")]
    pub form_namespaces: Vec<String>,
}

fn default_api_url() -> String {
    "https://www.wixapis.com".into()
}
fn default_namespaces() -> Vec<String> {
    vec!["wix.form_app.form".into()]
}

impl WixConfig {
    /// The secrets this section names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut named: Vec<(&'static str, &SecretRef)> = self.api_key.iter().map(|s| ("api_key", s)).collect();
        named.extend(self.client_secret.as_ref().map(|s| ("client_secret", s)));
        named
    }

    pub fn api(&self) -> &str {
        self.api_url.trim_end_matches('/')
    }

    pub fn validate(&self) -> Result<(), String> {
        let oauth = self.client_id.is_some() && self.client_secret.is_some() && self.instance_id.is_some();
        if self.api_key.is_none() && !oauth {
            return Err("give either api_key or client_id, client_secret and instance_id".into());
        }
        if self.form_namespaces.is_empty() {
            return Err("form_namespaces may not be empty".into());
        }
        Ok(())
    }
}
