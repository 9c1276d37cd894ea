//! Talking to a SuperOffice tenant: its (movable) address, OData paging on SuperOffice's own
//! origins, JSON error bodies, and literals quoted for `$filter`.

use std::sync::Mutex;

use dsr_connector::ConnectorError;
use dsr_connector::http::{ODataPage, OriginGuard, VendorClient, VendorError, read_json};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use crate::wire::{ArchiveRow, ErrorBody, TenantState};

pub const PROCESSOR: &str = "superoffice";

/// SuperOffice's REST errors: `{"Error": true, "ErrorType", "ErrorMessage", "ErrorSource"}`
/// (documented for 404; the same object is assumed for the rest).
pub fn describe_error(_status: StatusCode, body: &[u8]) -> VendorError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    VendorError {
        code: parsed.error_type.unwrap_or_default(),
        message: parsed
            .error_message
            .or(parsed.message)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect()),
        ..Default::default()
    }
}

/// An OData string literal: single quotes, a `'` doubled.
pub fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

pub struct Tenant {
    pub client: VendorClient,
    environment: String,
    tenant: String,
    /// `{web api}/v1/` as the tenant state last named it, and until when that holds.
    resolved: tokio::sync::Mutex<Option<Resolved>>,
    guard: Mutex<OriginGuard>,
    http: reqwest::Client,
    pub page_size: u32,
}

#[derive(Clone)]
struct Resolved {
    base: Url,
    valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

fn v1(api: &str) -> Result<Url, ConnectorError> {
    Url::parse(&format!("{}/v1/", api.trim_end_matches('/'))).map_err(|e| ConnectorError::Permanent {
        processor: PROCESSOR,
        code: "tenant_state".into(),
        message: format!("SuperOffice named a web API address that is not a URL ({e})"),
    })
}

/// A web API address the tenant state may name: the environment's own scheme, on its host
/// or a host of its domain (`sod2.superoffice.com` for `online.superoffice.com`). Anything
/// else would receive the ticket and the subject's address.
pub fn trusted_api(environment: &Url, api: &Url) -> bool {
    let (Some(env_host), Some(api_host)) = (environment.host_str(), api.host_str()) else {
        return false;
    };
    if api.scheme() != environment.scheme() || !matches!(api.scheme(), "https" | "http") {
        return false;
    }
    if environment.scheme() == "http" {
        // Only a loopback environment (a test fake) may be plain http; it stays on its host.
        let loopback = matches!(env_host, "127.0.0.1" | "localhost" | "[::1]" | "::1");
        return loopback && env_host == api_host;
    }
    let domain = env_host.split_once('.').map(|(_, rest)| rest).unwrap_or(env_host);
    api_host == env_host || (domain.contains('.') && api_host.ends_with(&format!(".{domain}")))
}

impl Tenant {
    pub fn new(
        client: VendorClient,
        http: reqwest::Client,
        environment: &str,
        tenant: &str,
        page_size: u32,
    ) -> Result<Tenant, ConnectorError> {
        let env = Url::parse(environment).map_err(|e| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "config".into(),
            message: format!("processors.superoffice.environment_url `{environment}` is not a URL: {e}"),
        })?;
        Ok(Tenant {
            client,
            environment: environment.trim_end_matches('/').to_string(),
            tenant: tenant.to_string(),
            guard: Mutex::new(OriginGuard::new(PROCESSOR, &env)),
            resolved: tokio::sync::Mutex::new(None),
            http,
            page_size: page_size.clamp(1, 1000),
        })
    }

    /// `path` under the tenant's current web API, resolved through the tenant state when
    /// not yet known or past its `ValidUntil`.
    pub async fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ConnectorError> {
        let base = self.base(false).await?;
        let mut url = base.join(path).map_err(|e| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "config".into(),
            message: format!("cannot address {path} on the tenant: {e}"),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    async fn base(&self, refresh: bool) -> Result<Url, ConnectorError> {
        let mut resolved = self.resolved.lock().await;
        let fresh = resolved
            .as_ref()
            .filter(|r| !refresh && r.valid_until.is_none_or(|until| until > chrono::Utc::now()));
        if let Some(r) = fresh {
            return Ok(r.base.clone());
        }
        let state = self.tenant_state().await?;
        let base = self.accept(&state)?;
        *resolved = Some(Resolved {
            base: base.clone(),
            valid_until: state.valid_until,
        });
        Ok(base)
    }

    /// Asks SuperOffice where the tenant lives now.
    async fn tenant_state(&self) -> Result<TenantState, ConnectorError> {
        let url = format!("{}/api/state/{}", self.environment, self.tenant);
        let unreadable = |message: String| ConnectorError::RetryLater {
            processor: PROCESSOR,
            code: "tenant_state".into(),
            message: format!("the address of tenant {} could not be read: {message}", self.tenant),
            after: None,
        };
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unreadable(e.without_url().to_string()))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ConnectorError::Permanent {
                processor: PROCESSOR,
                code: "tenant_state:404".into(),
                message: format!(
                    "SuperOffice knows no tenant {} at {}: check processors.superoffice.tenant and environment_url",
                    self.tenant, self.environment
                ),
            });
        }
        let response = response
            .error_for_status()
            .map_err(|e| unreadable(e.without_url().to_string()))?;
        read_json(PROCESSOR, "/api/state", response).await
    }

    /// The state's web API address, if the tenant runs and the address is one to trust.
    fn accept(&self, state: &TenantState) -> Result<Url, ConnectorError> {
        let api = state
            .api
            .as_deref()
            .filter(|_| state.running())
            .ok_or_else(|| ConnectorError::RetryLater {
                processor: PROCESSOR,
                code: "tenant_state".into(),
                message: format!("tenant {} is {}", self.tenant, state.state),
                after: None,
            })?;
        let base = v1(api)?;
        let env = Url::parse(&self.environment).map_err(|e| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "config".into(),
            message: e.to_string(),
        })?;
        if !trusted_api(&env, &base) {
            return Err(ConnectorError::Permanent {
                processor: PROCESSOR,
                code: "tenant_state:untrusted".into(),
                message: format!(
                    "the tenant state names {}, which is not an https host of {}'s domain: refused",
                    base.origin().ascii_serialization(),
                    self.environment
                ),
            });
        }
        // SuperOffice itself named this address: a trusted origin for next links too.
        self.guard.lock().unwrap_or_else(|p| p.into_inner()).allow(&base);
        Ok(base)
    }

    /// Sends `build(url)` for `path`; a 421 (the tenant moved) re-resolves it and tries once more.
    pub async fn send(
        &self,
        path: &str,
        query: &[(&str, &str)],
        build: impl Fn(&reqwest::Client, Url) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ConnectorError> {
        let url = self.url(path, query).await?;
        match self.client.send(&self.tenant, |http| build(http, url.clone())).await {
            Err(ConnectorError::Permanent { code, .. }) if code.starts_with("421") => {
                tracing::info!(tenant = %self.tenant, "SuperOffice answered 421: tenant moved; re-resolving");
                self.base(true).await?;
                let url = self.url(path, query).await?;
                self.client.send(&self.tenant, |http| build(http, url.clone())).await
            }
            other => other,
        }
    }

    pub async fn json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        build: impl Fn(&reqwest::Client, Url) -> reqwest::RequestBuilder,
    ) -> Result<T, ConnectorError> {
        let response = self.send(path, query, build).await?;
        let endpoint = response.url().path().to_string();
        read_json(PROCESSOR, &endpoint, response).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        self.json(path, &[], |http, url| http.get(url)).await
    }

    /// Every row of an archive, following `odata.nextLink` on SuperOffice's origins only.
    pub async fn archive(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<ArchiveRow>, ConnectorError> {
        let mut page: ODataPage<ArchiveRow> = self.json(path, query, |http, url| http.get(url)).await?;
        let mut rows = Vec::new();
        for _ in 0..10_000 {
            rows.append(&mut page.value);
            let Some(link) = page.next_link.filter(|l| !l.is_empty()) else {
                return Ok(rows);
            };
            let next = self.guard.lock().unwrap_or_else(|p| p.into_inner()).check(&link)?;
            page = self.client.json(&self.tenant, |http| http.get(next.clone())).await?;
        }
        Err(ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "too_many_pages".into(),
            message: format!("stopped reading {path}: SuperOffice's next links do not end"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hosts_of_the_environments_domain_are_trusted() {
        let env = Url::parse("https://online.superoffice.com").unwrap();
        let ok = |u: &str| trusted_api(&env, &Url::parse(u).unwrap());
        assert!(ok("https://sod2.superoffice.com/Cust1/api/v1/"));
        assert!(ok("https://online.superoffice.com/Cust1/api/v1/"));
        assert!(!ok("http://sod2.superoffice.com/Cust1/api/v1/"), "https only");
        assert!(!ok("https://superoffice.com.evil.example/Cust1/api/v1/"));
        assert!(!ok("https://evilsuperoffice.com/Cust1/api/v1/"));
        let fake = Url::parse("http://127.0.0.1:4000").unwrap();
        assert!(trusted_api(
            &fake,
            &Url::parse("http://127.0.0.1:4001/x/api/v1/").unwrap()
        ));
        assert!(!trusted_api(&fake, &Url::parse("http://10.0.0.1/x/api/v1/").unwrap()));
        let plain = Url::parse("http://superoffice.example").unwrap();
        assert!(
            !trusted_api(&plain, &Url::parse("http://superoffice.example/x/api/v1/").unwrap()),
            "plain http only on loopback"
        );
    }

    #[test]
    fn filter_literals_cannot_break_out() {
        assert_eq!(odata_literal("o'hara@example.ie"), "'o''hara@example.ie'");
        assert_eq!(odata_literal("x' or 1 eq 1 or 'y"), "'x'' or 1 eq 1 or ''y'");
    }
}
