//! Talking to a SuperOffice tenant: its (movable) address, OData paging on SuperOffice's own
//! origins (core's `ODataPager`) and JSON error bodies.

use std::sync::Mutex;

use dsr_connector::http::{ODataPager, OriginGuard, VendorClient, VendorError};
use dsr_connector::{ConfigError, ConnectorError, Processor};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use crate::wire::{ArchiveRow, ErrorBody, TenantState};

pub const PROCESSOR: Processor = Processor::Superoffice;

/// The most pages one archive is read over: a guard against next links that never end.
const MAX_PAGES: usize = 10_000;

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

pub struct Tenant {
    pub client: VendorClient,
    /// The same client without the ticket, for the (public) tenant state.
    state: VendorClient,
    /// `environment_url`, and as text without a trailing `/`.
    environment_url: Url,
    environment: String,
    tenant: String,
    /// `{web api}/v1/` as the tenant state last named it, and until when that holds.
    resolved: tokio::sync::Mutex<Option<Resolved>>,
    /// The origins next links may go to: the environment's and each web API the tenant state
    /// named (it may name a new one while a walk is under way, hence the lock).
    guard: Mutex<OriginGuard>,
    /// `$top` of each list, within `config::PAGE_SIZES` (checked when the config was read).
    pub page_size: u32,
}

#[derive(Clone)]
struct Resolved {
    base: Url,
    valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

fn v1(api: &str) -> Result<Url, ConnectorError> {
    Url::parse(&format!("{}/v1/", api.trim_end_matches('/'))).map_err(|e| {
        ConnectorError::permanent(
            PROCESSOR,
            "tenant_state:untrusted",
            format!("SuperOffice named a web API address that is not a URL ({e}): refused"),
        )
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
    /// The tenant `tenant` of the environment at `environment_url`; `state` asks where it lives.
    pub fn new(
        client: VendorClient,
        state: VendorClient,
        environment_url: Url,
        tenant: &str,
        page_size: u32,
    ) -> Tenant {
        Tenant {
            client,
            state,
            guard: Mutex::new(OriginGuard::new(PROCESSOR, &environment_url)),
            environment: environment_url.as_str().trim_end_matches('/').to_string(),
            environment_url,
            tenant: tenant.to_string(),
            resolved: tokio::sync::Mutex::new(None),
            page_size,
        }
    }

    /// `path` under the tenant's current web API, resolved through the tenant state when
    /// not yet known or past its `ValidUntil`.
    pub async fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ConnectorError> {
        let base = self.base(false).await?;
        let mut url = base.join(path).map_err(|e| {
            ConfigError::new(
                PROCESSOR,
                "environment_url",
                format!("cannot address {path} on the tenant's web API {base}: {e}"),
            )
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

    /// After a 421 (the tenant moved): asks the tenant state again.
    async fn moved(&self) -> Result<(), ConnectorError> {
        tracing::info!(tenant = %self.tenant, "SuperOffice answered 421: tenant moved; re-resolving");
        self.base(true).await.map(drop)
    }

    /// Asks SuperOffice where the tenant lives now.
    async fn tenant_state(&self) -> Result<TenantState, ConnectorError> {
        let url = format!("{}/api/state/{}", self.environment, self.tenant);
        match self.state.json(&self.tenant, |http| http.get(&url)).await {
            Err(e) if e.is_not_found() => Err(ConnectorError::Permanent {
                processor: PROCESSOR,
                status: Some(404),
                code: "tenant_state".into(),
                message: format!(
                    "SuperOffice knows no tenant {} at {}: check processors.superoffice.tenant and environment_url",
                    self.tenant, self.environment
                ),
                said: None,
            }),
            other => other,
        }
    }

    /// The state's web API address, if the tenant runs and the address is one to trust.
    fn accept(&self, state: &TenantState) -> Result<Url, ConnectorError> {
        let api = state.api.as_deref().filter(|_| state.running()).ok_or_else(|| {
            ConnectorError::retry_later(
                PROCESSOR,
                "tenant_state",
                format!("tenant {} is {}", self.tenant, state.state),
            )
        })?;
        let base = v1(api)?;
        if !trusted_api(&self.environment_url, &base) {
            return Err(ConnectorError::permanent(
                PROCESSOR,
                "tenant_state:untrusted",
                format!(
                    "the tenant state names {}, which is not an https host of {}'s domain: refused",
                    base.origin().ascii_serialization(),
                    self.environment
                ),
            ));
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
            Err(ConnectorError::Permanent { status: Some(421), .. }) => {
                self.moved().await?;
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
        self.client.read(response).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        self.json(path, &[], |http, url| http.get(url)).await
    }

    /// Every row of an archive, following `odata.nextLink` on SuperOffice's origins only.
    /// A 421 on the first page (the tenant moved) re-resolves the tenant and walks once more.
    pub async fn archive(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<ArchiveRow>, ConnectorError> {
        let mut rows = Vec::new();
        match self.walk(path, query, &mut rows).await {
            Err(ConnectorError::Permanent { status: Some(421), .. }) if rows.is_empty() => {
                self.moved().await?;
                self.walk(path, query, &mut rows).await?;
            }
            other => other?,
        }
        Ok(rows)
    }

    /// Reads `path`'s pages into `rows` with core's pager, from the tenant's address now.
    async fn walk(&self, path: &str, query: &[(&str, &str)], rows: &mut Vec<ArchiveRow>) -> Result<(), ConnectorError> {
        let first = self.url(path, query).await?;
        // The origins trusted now, the tenant's resolved address among them.
        let guard = self.guard.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut pager = ODataPager::new(&self.client, &self.tenant, &guard, first, MAX_PAGES);
        while let Some(mut page) = pager.next_page().await? {
            rows.append(&mut page);
        }
        Ok(())
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
}
