//! `[processors.superoffice]` in `dsr.toml`.

use std::ops::RangeInclusive;

use dsr_connector::{ConfigError, SecretRef};
use secrecy::{ExposeSecret, SecretString};
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

/// The section as written: flat keys, each credential optional. Only
/// [`SuperOfficeConfig`] is handed out, built by `TryFrom`, so a section whose credentials
/// cannot work is refused when the file is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuperOfficeConfig {
    #[serde(default = "dsr_connector::section_enabled")]
    enabled: bool,
    shared: Option<dsr_connector::SharedPolicy>,
    #[serde(default = "default_environment")]
    environment_url: String,
    tenant: String,
    client_id: String,
    client_secret: SecretRef,
    system_user_token: Option<SecretString>,
    private_key: Option<SecretRef>,
    refresh_token: Option<SecretRef>,
    #[serde(default)]
    retain: Vec<RetainRule>,
    /// Wider than the field it fills, so a negative number is answered with the range too.
    #[serde(default = "default_page_size")]
    page_size: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawSuperOfficeConfig")]
pub struct SuperOfficeConfig {
    /// A section present is enabled unless it says `enabled = false`.
    pub enabled: bool,
    /// What an erasure does with items that also concern other people here: `retain` or
    /// `delete`; unset, `[erasure] shared` decides (default `retain`).
    pub shared: Option<dsr_connector::SharedPolicy>,
    /// `https://{sod|stage|online}.superoffice.com`.
    pub environment_url: String,
    /// The customer id, `Cust12345`.
    pub tenant: String,
    pub client_id: String,
    /// The application's client secret, also sent as its application token.
    pub client_secret: SecretRef,
    /// How dsr signs in: one flow, whole.
    pub auth: SuperOfficeAuth,
    pub retain: Vec<RetainRule>,
    /// `$top` of each list, within [`PAGE_SIZES`].
    pub page_size: u32,
    /// Keys written in a form that still works but should change, each with the new form.
    deprecations: Vec<String>,
}

/// The two ways dsr signs in to SuperOffice without a person present.
#[derive(Debug, Clone)]
pub enum SuperOfficeAuth {
    /// The system-user flow (`system_user_token` and `private_key`): the token, signed with
    /// the application's RSA key (PEM or XML), exchanged for a ticket.
    SystemUser {
        token: SystemUserToken,
        private_key: SecretRef,
    },
    /// A refresh token (`refresh_token`) from a one-time administrator consent.
    RefreshToken(SecretRef),
}

/// The system user token: a reference (`env:NAME`, `file:PATH`) like every other secret, or,
/// in files written before it was one, the token itself (still read, with a deprecation).
#[derive(Debug, Clone)]
pub enum SystemUserToken {
    Reference(SecretRef),
    Inline(SecretString),
}

impl SystemUserToken {
    /// The token, read from where the config says.
    pub fn resolve(&self) -> Result<SecretString, dsr_connector::SecretError> {
        match self {
            SystemUserToken::Reference(secret) => secret.resolve(),
            SystemUserToken::Inline(token) => Ok(token.clone()),
        }
    }
}

/// What `page_size` may be: the most dsr asks SuperOffice for in one page.
pub const PAGE_SIZES: RangeInclusive<u32> = 1..=1000;

/// The credential combinations a section may give, for messages that list them.
const FLOWS: &str = "give either system_user_token and private_key (the system user flow) or refresh_token";

impl TryFrom<RawSuperOfficeConfig> for SuperOfficeConfig {
    type Error = ConfigError;

    fn try_from(raw: RawSuperOfficeConfig) -> Result<Self, ConfigError> {
        let mut deprecations = Vec::new();
        let token = raw
            .system_user_token
            .map(|token| system_user_token(token, &mut deprecations))
            .transpose()?;
        let auth = match (token, raw.private_key, raw.refresh_token) {
            (Some(token), Some(private_key), None) => SuperOfficeAuth::SystemUser { token, private_key },
            (None, None, Some(refresh)) => SuperOfficeAuth::RefreshToken(refresh),
            (token, _, Some(_)) => {
                let given = if token.is_some() {
                    "system_user_token"
                } else {
                    "private_key"
                };
                let reason = format!("{FLOWS}, not both (refresh_token and {given} are set)");
                return Err(ConfigError::new(PROCESSOR, "", reason));
            }
            (Some(_), None, None) => {
                let reason = format!("system_user_token is set but private_key is missing: {FLOWS}");
                return Err(ConfigError::new(PROCESSOR, "private_key", reason));
            }
            (None, Some(_), None) => {
                let reason = format!("private_key is set but system_user_token is missing: {FLOWS}");
                return Err(ConfigError::new(PROCESSOR, "system_user_token", reason));
            }
            (None, None, None) => {
                return Err(ConfigError::new(PROCESSOR, "", format!("no credentials: {FLOWS}")));
            }
        };
        Ok(SuperOfficeConfig {
            enabled: raw.enabled,
            shared: raw.shared,
            environment_url: raw.environment_url,
            tenant: raw.tenant,
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            auth,
            retain: raw.retain,
            page_size: page_size(raw.page_size)?,
            deprecations,
        })
    }
}

/// The token as a reference, or (deprecated) the token itself.
fn system_user_token(token: SecretString, deprecations: &mut Vec<String>) -> Result<SystemUserToken, ConfigError> {
    let text = token.expose_secret();
    if text.starts_with("env:") || text.starts_with("file:") {
        return SecretRef::try_from(text.to_string())
            .map(SystemUserToken::Reference)
            .map_err(|e| ConfigError::new(PROCESSOR, "system_user_token", e.to_string()));
    }
    deprecations.push(
        "processors.superoffice.system_user_token: the token written in the file is deprecated; \
         put it in an environment variable or a file readable by dsr only and write \
         system_user_token = \"env:NAME\" or \"file:PATH\""
            .to_string(),
    );
    Ok(SystemUserToken::Inline(token))
}

/// `page_size` within [`PAGE_SIZES`], or the error that gives the range.
fn page_size(value: i64) -> Result<u32, ConfigError> {
    u32::try_from(value)
        .ok()
        .filter(|v| PAGE_SIZES.contains(v))
        .ok_or_else(|| {
            let reason = format!(
                "{value} is out of range: give a number from {} to {}",
                PAGE_SIZES.start(),
                PAGE_SIZES.end()
            );
            ConfigError::new(PROCESSOR, "page_size", reason)
        })
}

fn default_environment() -> String {
    "https://online.superoffice.com".into()
}
fn default_page_size() -> i64 {
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
        match &self.auth {
            SuperOfficeAuth::SystemUser { token, private_key } => {
                if let SystemUserToken::Reference(token) = token {
                    named.push(("system_user_token", token));
                }
                named.push(("private_key", private_key));
            }
            SuperOfficeAuth::RefreshToken(refresh) => named.push(("refresh_token", refresh)),
        }
        named
    }

    /// Keys written in a form that still works but should change, as lines for the operator.
    pub fn deprecations(&self) -> Vec<String> {
        self.deprecations.clone()
    }

    /// `environment_url` parsed, or the error that names it.
    pub fn environment(&self) -> Result<Url, ConfigError> {
        let text = &self.environment_url;
        Url::parse(text.trim_end_matches('/'))
            .map_err(|e| ConfigError::new(PROCESSOR, "environment_url", format!("`{text}` is not a URL: {e}")))
    }

    /// What in this section cannot work, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Checked when the file is read; again here for a section changed since.
        page_size(i64::from(self.page_size))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "tenant = \"Cust12345\"\nclient_id = \"app\"\nclient_secret = \"env:DSR_SO_APP\"\n";
    const TOKEN: &str = "system_user_token = \"env:DSR_SO_TOKEN\"\n";
    const KEY: &str = "private_key = \"file:/etc/dsr/so.pem\"\n";
    const REFRESH: &str = "refresh_token = \"env:DSR_SO_REFRESH\"\n";

    fn parse(extra: &str) -> Result<SuperOfficeConfig, String> {
        toml::from_str(&format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn each_flow_parses_into_its_own_credentials() {
        let system_user = parse(&format!("{TOKEN}{KEY}")).unwrap();
        assert!(
            matches!(
                &system_user.auth,
                SuperOfficeAuth::SystemUser {
                    token: SystemUserToken::Reference(SecretRef::Env(name)),
                    private_key: SecretRef::File(_),
                } if name == "DSR_SO_TOKEN"
            ),
            "{:?}",
            system_user.auth
        );
        let keys: Vec<&str> = system_user.secrets().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["client_secret", "system_user_token", "private_key"]);
        assert!(system_user.deprecations().is_empty());

        let refresh = parse(REFRESH).unwrap();
        assert!(matches!(refresh.auth, SuperOfficeAuth::RefreshToken(SecretRef::Env(_))));
        let keys: Vec<&str> = refresh.secrets().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["client_secret", "refresh_token"]);
    }

    #[test]
    fn a_token_written_in_the_file_still_works_and_is_deprecated() {
        let config = parse(&format!("system_user_token = \"ABC-123-token\"\n{KEY}")).unwrap();
        let SuperOfficeAuth::SystemUser { token, .. } = &config.auth else {
            panic!("{:?}", config.auth)
        };
        assert!(matches!(token, SystemUserToken::Inline(_)));
        assert_eq!(token.resolve().unwrap().expose_secret(), "ABC-123-token");
        assert!(!format!("{config:?}").contains("ABC-123-token"), "kept out of Debug");
        let deprecations = config.deprecations();
        assert_eq!(deprecations.len(), 1, "{deprecations:?}");
        assert!(
            deprecations[0].starts_with("processors.superoffice.system_user_token: ")
                && deprecations[0].contains("\"env:NAME\""),
            "{deprecations:?}"
        );
        let keys: Vec<&str> = config.secrets().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["client_secret", "private_key"], "nothing to read");
    }

    #[test]
    fn an_impossible_combination_of_credentials_is_refused_naming_the_keys() {
        let allowed = "give either system_user_token and private_key (the system user flow) or refresh_token";
        for (extra, says) in [
            (
                format!("{TOKEN}{KEY}{REFRESH}"),
                "processors.superoffice: give either system_user_token and private_key (the system user flow) \
                 or refresh_token, not both (refresh_token and system_user_token are set)",
            ),
            (
                format!("{KEY}{REFRESH}"),
                "processors.superoffice: give either system_user_token and private_key (the system user flow) \
                 or refresh_token, not both (refresh_token and private_key are set)",
            ),
            (
                TOKEN.to_string(),
                "processors.superoffice.private_key: system_user_token is set but private_key is missing",
            ),
            (
                KEY.to_string(),
                "processors.superoffice.system_user_token: private_key is set but system_user_token is missing",
            ),
            (String::new(), "processors.superoffice: no credentials"),
        ] {
            let err = parse(&extra).unwrap_err();
            assert!(err.contains(says) && err.contains(allowed), "{extra}: {err}");
        }
        let err = parse(&format!("system_user_token = \"env:\"\n{KEY}")).unwrap_err();
        assert!(err.contains("processors.superoffice.system_user_token: "), "{err}");
    }

    #[test]
    fn a_page_size_out_of_range_is_refused_with_the_range() {
        let flow = format!("{TOKEN}{KEY}");
        assert_eq!(parse(&flow).unwrap().page_size, 50);
        assert_eq!(parse(&format!("{flow}page_size = 1000\n")).unwrap().page_size, 1000);
        for bad in [0, 1001, -1] {
            let err = parse(&format!("{flow}page_size = {bad}\n")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "processors.superoffice.page_size: {bad} is out of range: give a number from 1 to 1000"
                )),
                "{err}"
            );
        }
        let mut changed = parse(&flow).unwrap();
        changed.page_size = 0;
        assert_eq!(changed.validate().unwrap_err().key, "page_size");
    }
}
