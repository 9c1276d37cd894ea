//! `[processors.microsoft365]` in `dsr.toml`, checked when the connector is built: a key that
//! cannot work is a `ConfigError` naming it.

use std::ops::RangeInclusive;

use dsr_connector::{ConfigError, SecretRef};
use serde::Deserialize;
use url::Url;

pub use dsr_connector::DeleteMode;

use crate::client::PROCESSOR;

/// The section as written. Only [`Microsoft365Config`] is handed out, built by `TryFrom`, so
/// a number out of its range is refused when the file is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMicrosoft365Config {
    #[serde(default = "dsr_connector::section_enabled")]
    enabled: bool,
    #[serde(default)]
    shared: Option<dsr_connector::SharedPolicy>,
    tenant_id: String,
    client_id: String,
    client_secret: SecretRef,
    #[serde(default = "default_graph_url")]
    graph_url: String,
    #[serde(default = "default_login_url")]
    login_url: String,
    #[serde(default = "all_mailboxes")]
    mailboxes: Vec<String>,
    #[serde(default)]
    delete_mode: DeleteMode,
    /// The numbers are read wider than the fields they fill, so a negative one is answered
    /// with the range too.
    #[serde(default = "default_page_size")]
    page_size: i64,
    #[serde(default = "default_search_cap")]
    search_cap: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawMicrosoft365Config")]
pub struct Microsoft365Config {
    /// A section present is enabled unless it says `enabled = false`.
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// The directory (tenant) id or a verified domain.
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The app registration's client secret, its only credential dsr uses.
    pub client_secret: SecretRef,
    pub graph_url: String,
    pub login_url: String,
    /// Mailboxes to search: addresses, or `["*"]` for every user in the tenant.
    pub mailboxes: Vec<String>,
    pub delete_mode: DeleteMode,
    /// `$top` for every list, within [`PAGE_SIZES`].
    pub page_size: u32,
    /// Results one `$search` returns at most, within [`SEARCH_CAPS`]; a search that reaches
    /// it is split by date so nothing is missed.
    pub search_cap: usize,
}

/// What `page_size` may be: Graph allows `$top` from 1 to 1000 on messages and contacts.
pub const PAGE_SIZES: RangeInclusive<u32> = 1..=1000;

/// What `search_cap` may be: Graph's `$search` returns at most 1,000 results, so a larger cap
/// would never be reached and a search cut short by Graph would pass as complete.
pub const SEARCH_CAPS: RangeInclusive<usize> = 1..=1000;

impl TryFrom<RawMicrosoft365Config> for Microsoft365Config {
    type Error = ConfigError;

    fn try_from(raw: RawMicrosoft365Config) -> Result<Self, ConfigError> {
        Ok(Microsoft365Config {
            enabled: raw.enabled,
            shared: raw.shared,
            tenant_id: raw.tenant_id,
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            graph_url: raw.graph_url,
            login_url: raw.login_url,
            mailboxes: raw.mailboxes,
            delete_mode: raw.delete_mode,
            page_size: within("page_size", raw.page_size, &PAGE_SIZES)?,
            search_cap: within("search_cap", raw.search_cap, &SEARCH_CAPS)?,
        })
    }
}

/// `value` of `key` within `range`, or the error that gives the range.
fn within<T>(key: &str, value: i64, range: &RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: TryFrom<i64> + PartialOrd + std::fmt::Display,
{
    T::try_from(value).ok().filter(|v| range.contains(v)).ok_or_else(|| {
        let reason = format!(
            "{value} is out of range: give a number from {} to {}",
            range.start(),
            range.end()
        );
        ConfigError::new(PROCESSOR, key, reason)
    })
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
fn default_page_size() -> i64 {
    i64::from(Microsoft365Config::DEFAULT_PAGE_SIZE)
}
fn default_search_cap() -> i64 {
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
    /// `$top` when the config does not say.
    pub const DEFAULT_PAGE_SIZE: u32 = 100;

    /// The secrets this section names, by key.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("client_secret", &self.client_secret)]
    }

    /// Keys written in a form that still works but should change (none yet for Microsoft 365),
    /// as lines for the operator.
    pub fn deprecations(&self) -> Vec<String> {
        Vec::new()
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
        // Checked when the file is read; again here for a section changed since.
        within("page_size", i64::from(self.page_size), &PAGE_SIZES)?;
        within(
            "search_cap",
            i64::try_from(self.search_cap).unwrap_or(i64::MAX),
            &SEARCH_CAPS,
        )?;
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
        let spoilt: [(&str, Spoil); 6] = [
            ("tenant_id", |c| c.tenant_id = "racom/../common".into()),
            ("client_id", |c| c.client_id = " ".into()),
            ("graph_url", |c| c.graph_url = "graph.microsoft.com/v1.0".into()),
            ("login_url", |c| c.login_url = "ftp://login.example".into()),
            ("search_cap", |c| c.search_cap = 0),
            ("page_size", |c| c.page_size = 1001),
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

    #[test]
    fn a_number_out_of_range_is_refused_with_the_range() {
        let base = "tenant_id = \"racom.onmicrosoft.com\"\nclient_id = \"app\"\nclient_secret = \"env:DSR_NOT_SET\"\n";
        let parse =
            |extra: &str| toml::from_str::<Microsoft365Config>(&format!("{base}{extra}")).map_err(|e| e.to_string());
        let defaults = parse("").unwrap();
        assert_eq!((defaults.page_size, defaults.search_cap), (100, 1000));
        let edges = parse("page_size = 1000\nsearch_cap = 1\n").unwrap();
        assert_eq!((edges.page_size, edges.search_cap), (1000, 1));
        for (key, bad) in [
            ("page_size", 0),
            ("page_size", 1001),
            ("page_size", -5),
            ("search_cap", 0),
            ("search_cap", 5000),
        ] {
            let err = parse(&format!("{key} = {bad}\n")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "processors.microsoft365.{key}: {bad} is out of range: give a number from 1 to 1000"
                )),
                "{err}"
            );
        }
    }
}
