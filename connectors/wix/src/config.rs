//! `[processors.wix]` in `dsr.toml`.

use dsr_connector::{ConfigError, Processor, SecretRef};
use serde::Deserialize;

/// The section as written: flat keys, each credential optional. Only [`WixConfig`] is handed
/// out, built by `TryFrom`, so a section whose credentials cannot work is refused when the
/// file is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWixConfig {
    #[serde(default = "dsr_connector::section_enabled")]
    enabled: bool,
    shared: Option<dsr_connector::SharedPolicy>,
    api_url: Option<String>,
    site_id: String,
    api_key: Option<SecretRef>,
    client_id: Option<String>,
    client_secret: Option<SecretRef>,
    instance_id: Option<String>,
    #[serde(default = "default_namespaces")]
    form_namespaces: Vec<String>,
    #[serde(default = "default_comment_apps")]
    comment_app_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawWixConfig")]
pub struct WixConfig {
    /// A section present is enabled unless it says `enabled = false`.
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// Unset: Wix's API, `https://www.wixapis.com`.
    pub api_url: Option<String>,
    pub site_id: String,
    /// How dsr signs in: one kind of credentials, whole.
    pub credentials: WixCredentials,
    /// The form-submission namespaces to search (each Wix app that collects forms has one).
    pub form_namespaces: Vec<String>,
    /// The commenting apps whose comments are searched (comments are queried per app).
    pub comment_app_ids: Vec<String>,
}

/// The two kinds of credentials Wix gives a server.
#[derive(Debug, Clone)]
pub enum WixCredentials {
    /// `api_key`: a key from the account's API Keys Manager.
    ApiKey(SecretRef),
    /// `client_id`, `client_secret` and `instance_id`: an app's OAuth credentials and its
    /// instance on this site.
    App {
        client_id: String,
        client_secret: SecretRef,
        instance_id: String,
    },
}

/// The credential combinations a section may give, for messages that list them.
const CREDENTIALS: &str =
    "give either api_key or client_id, client_secret and instance_id (an app's OAuth credentials)";

impl TryFrom<RawWixConfig> for WixConfig {
    type Error = ConfigError;

    fn try_from(raw: RawWixConfig) -> Result<Self, ConfigError> {
        let app = [
            ("client_id", raw.client_id.is_some()),
            ("client_secret", raw.client_secret.is_some()),
            ("instance_id", raw.instance_id.is_some()),
        ];
        let named = |given: bool| -> Vec<&str> {
            app.iter()
                .filter(|(_, is_set)| *is_set == given)
                .map(|(key, _)| *key)
                .collect()
        };
        let credentials = match (raw.api_key, raw.client_id, raw.client_secret, raw.instance_id) {
            (Some(key), None, None, None) => WixCredentials::ApiKey(key),
            (None, Some(client_id), Some(client_secret), Some(instance_id)) => WixCredentials::App {
                client_id,
                client_secret,
                instance_id,
            },
            (Some(_), ..) => {
                let reason = format!(
                    "{CREDENTIALS}, not both (api_key and {} are set)",
                    named(true).join(", ")
                );
                return Err(ConfigError::new(Processor::Wix, "", reason));
            }
            (None, None, None, None) => {
                return Err(ConfigError::new(
                    Processor::Wix,
                    "",
                    format!("no credentials: {CREDENTIALS}"),
                ));
            }
            (None, ..) => {
                let (given, missing) = (named(true), named(false));
                let verb = |keys: &[&str]| if keys.len() == 1 { "is" } else { "are" };
                let reason = format!(
                    "{} {} set but {} {} missing: {CREDENTIALS}",
                    given.join(", "),
                    verb(&given),
                    missing.join(", "),
                    verb(&missing)
                );
                return Err(ConfigError::new(Processor::Wix, missing[0], reason));
            }
        };
        Ok(WixConfig {
            enabled: raw.enabled,
            shared: raw.shared,
            api_url: raw.api_url,
            site_id: raw.site_id,
            credentials,
            form_namespaces: raw.form_namespaces,
            comment_app_ids: raw.comment_app_ids,
        })
    }
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
        match &self.credentials {
            WixCredentials::ApiKey(key) => vec![("api_key", key)],
            WixCredentials::App { client_secret, .. } => vec![("client_secret", client_secret)],
        }
    }

    /// Keys written in a form that still works but should change (none yet for Wix), as lines
    /// for the operator.
    pub fn deprecations(&self) -> Vec<String> {
        Vec::new()
    }

    /// The API's base URL, without a trailing `/`.
    pub fn api(&self) -> &str {
        let url = self.api_url.as_deref().unwrap_or("https://www.wixapis.com");
        url.trim_end_matches('/')
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.form_namespaces.is_empty() {
            return Err(ConfigError::new(Processor::Wix, "form_namespaces", "may not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "site_id = \"site-1\"\n";
    const KEY: &str = "api_key = \"env:DSR_WIX_API_KEY\"\n";
    const ID: &str = "client_id = \"app-1\"\n";
    const SECRET: &str = "client_secret = \"env:DSR_WIX_APP_SECRET\"\n";
    const INSTANCE: &str = "instance_id = \"instance-1\"\n";

    fn parse(extra: &str) -> Result<WixConfig, String> {
        toml::from_str(&format!("{SITE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn each_kind_of_credentials_parses_into_its_own_variant() {
        let key = parse(KEY).unwrap();
        assert!(matches!(&key.credentials, WixCredentials::ApiKey(SecretRef::Env(name)) if name == "DSR_WIX_API_KEY"));
        assert_eq!(
            key.secrets().into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["api_key"]
        );
        let app = parse(&format!("{ID}{SECRET}{INSTANCE}")).unwrap();
        assert!(
            matches!(
                &app.credentials,
                WixCredentials::App { client_id, instance_id, .. } if client_id == "app-1" && instance_id == "instance-1"
            ),
            "{:?}",
            app.credentials
        );
        assert_eq!(
            app.secrets().into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["client_secret"]
        );
        assert!(app.deprecations().is_empty());
    }

    #[test]
    fn an_impossible_combination_of_credentials_is_refused_naming_the_keys() {
        let allowed = "give either api_key or client_id, client_secret and instance_id (an app's OAuth credentials)";
        for (extra, says) in [
            (
                format!("{KEY}{ID}{SECRET}{INSTANCE}"),
                format!(
                    "processors.wix: {allowed}, not both (api_key and client_id, client_secret, instance_id are set)"
                ),
            ),
            (
                format!("{KEY}{SECRET}"),
                format!("processors.wix: {allowed}, not both (api_key and client_secret are set)"),
            ),
            (
                format!("{ID}{SECRET}"),
                format!(
                    "processors.wix.instance_id: client_id, client_secret are set but instance_id is missing: {allowed}"
                ),
            ),
            (
                INSTANCE.to_string(),
                format!(
                    "processors.wix.client_id: instance_id is set but client_id, client_secret are missing: {allowed}"
                ),
            ),
            (String::new(), format!("processors.wix: no credentials: {allowed}")),
        ] {
            let err = parse(&extra).unwrap_err();
            assert!(err.contains(&says), "{extra}: {err}");
        }
    }
}
