//! `[processors.wix]` in `dsr.toml`.

use dsr_connector::{ConfigError, Processor, SecretRef};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WixConfig {
    /// A section present is enabled unless it says `enabled = false`.
    #[serde(default = "dsr_connector::section_enabled")]
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// Unset: Wix's API, `https://www.wixapis.com`.
    pub api_url: Option<String>,
    pub site_id: String,
    /// An API key from the account's API Keys Manager, or an app's OAuth credentials
    /// (`client_id`, `client_secret`) and its `instance_id` on this site.
    pub api_key: Option<SecretRef>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretRef>,
    pub instance_id: Option<String>,
    /// The form-submission namespaces to search (each Wix app that collects forms has one).
    #[serde(default = "default_namespaces")]
    pub form_namespaces: Vec<String>,
    /// The commenting apps whose comments are searched (comments are queried per app).
    #[serde(default = "default_comment_apps")]
    pub comment_app_ids: Vec<String>,
}

/// The namespaces of Wix's own apps that collect submissions
/// (https://dev.wix.com/docs/api-reference/crm/forms/form-schema-templates/introduction).
fn default_namespaces() -> Vec<String> {
    [
        "wix.form_app.form",
        "wix.pricing_plans.v1.custom_form",
        "wix.ecom.v1.checkout",
        "wix.achievements.quizzes.v1.quiz",
        "wix.bookings.v2.bookings",
        "wix.contacts.v4.contact",
    ]
    .map(String::from)
    .to_vec()
}

/// Wix's own commenting apps: Blog, the Comments widget, Forum and Groups
/// (https://dev.wix.com/docs/rest/crm/community/comments/comments/query-comments, Integrations).
pub const WIX_BLOG: &str = "14bcded7-0066-7c35-14d7-466cb3f09103";
pub const WIX_COMMENTS: &str = "91c9d6a7-6667-41fb-b0b4-7d3b3ff0b02e";
pub const WIX_FORUM: &str = "14724f35-6794-cd1a-0244-25fd138f9242";
pub const WIX_GROUPS: &str = "148c2287-c669-d849-d153-463c7486a694";

fn default_comment_apps() -> Vec<String> {
    [WIX_BLOG, WIX_COMMENTS, WIX_FORUM, WIX_GROUPS]
        .map(String::from)
        .to_vec()
}

impl WixConfig {
    /// The secrets this section names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        let mut named: Vec<(&'static str, &SecretRef)> = self.api_key.iter().map(|s| ("api_key", s)).collect();
        named.extend(self.client_secret.as_ref().map(|s| ("client_secret", s)));
        named
    }

    /// The API's base URL, without a trailing `/`.
    pub fn api(&self) -> &str {
        let url = self.api_url.as_deref().unwrap_or("https://www.wixapis.com");
        url.trim_end_matches('/')
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let oauth = self.client_id.is_some() && self.client_secret.is_some() && self.instance_id.is_some();
        if self.api_key.is_none() && !oauth {
            return Err(ConfigError::new(
                Processor::Wix,
                "",
                "give either api_key or client_id, client_secret and instance_id",
            ));
        }
        if self.form_namespaces.is_empty() {
            return Err(ConfigError::new(Processor::Wix, "form_namespaces", "may not be empty"));
        }
        Ok(())
    }
}
