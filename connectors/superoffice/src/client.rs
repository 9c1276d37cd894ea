//! Talking to a SuperOffice tenant: its (movable) address, OData paging on SuperOffice's own
//! origins, JSON error bodies, and literals quoted for `$filter`.

use std::sync::{Arc, Mutex};

use dsr_connector::ConnectorError;
use dsr_connector::http::{OriginGuard, VendorClient, VendorError};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

pub const PROCESSOR: &str = "superoffice";

/// SuperOffice's error bodies are undocumented; they carry `Error` (or `Message`) and `ErrorType`.
pub fn describe_error(_status: StatusCode, body: &[u8]) -> VendorError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_default();
    VendorError {
        code: parsed["ErrorType"].as_str().unwrap_or_default().to_string(),
        message: parsed["Error"]
            .as_str()
            .or(parsed["Message"].as_str())
            .map(String::from)
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
    /// `{web api}/v1/`, which changes when the tenant moves.
    base: Mutex<Url>,
    guard: Mutex<OriginGuard>,
    http: reqwest::Client,
    /// The address the login named, applied before the next call.
    login_api: WebApiUrl,
    pub page_size: u32,
}

fn v1(api: &str) -> Result<Url, ConnectorError> {
    Url::parse(&format!("{}/v1/", api.trim_end_matches('/'))).map_err(|e| ConnectorError::Permanent {
        processor: PROCESSOR,
        code: "config".into(),
        message: format!("SuperOffice web API address `{api}` is not a URL: {e}"),
    })
}

impl Tenant {
    pub fn new(
        client: VendorClient,
        http: reqwest::Client,
        login_api: WebApiUrl,
        environment: &str,
        tenant: &str,
        page_size: u32,
    ) -> Result<Tenant, ConnectorError> {
        let base = v1(&format!("{environment}/{tenant}/api"))?;
        Ok(Tenant {
            client,
            environment: environment.to_string(),
            tenant: tenant.to_string(),
            guard: Mutex::new(OriginGuard::new(PROCESSOR, &base)),
            base: Mutex::new(base),
            http,
            login_api,
            page_size: page_size.clamp(1, 1000),
        })
    }

    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        if let Some(api) = self.login_api.lock().unwrap_or_else(|p| p.into_inner()).take()
            && let Ok(base) = v1(&api)
        {
            // SuperOffice's own login named this address: trusted for next links too.
            self.guard.lock().unwrap_or_else(|p| p.into_inner()).allow(&base);
            *self.base.lock().unwrap_or_else(|p| p.into_inner()) = base;
        }
        let base = self.base.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut url = base.join(path).unwrap_or(base);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Asks SuperOffice where the tenant lives now (after a 421), and trusts that address.
    pub async fn relocate(&self) -> Result<(), ConnectorError> {
        let url = format!("{}/api/state/{}", self.environment, self.tenant);
        let state: Value = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| ConnectorError::RetryLater {
                processor: PROCESSOR,
                code: "tenant_state".into(),
                message: format!(
                    "tenant {} moved and its new address could not be read: {}",
                    self.tenant,
                    e.without_url()
                ),
                after: None,
            })?
            .json()
            .await
            .map_err(|e| ConnectorError::RetryLater {
                processor: PROCESSOR,
                code: "tenant_state".into(),
                message: e.to_string(),
                after: None,
            })?;
        let api = state["Api"].as_str().ok_or_else(|| ConnectorError::RetryLater {
            processor: PROCESSOR,
            code: "tenant_state".into(),
            message: format!(
                "tenant {} is {}",
                self.tenant,
                state["State"].as_str().unwrap_or("not running")
            ),
            after: None,
        })?;
        let base = v1(api)?;
        tracing::info!(tenant = %self.tenant, "SuperOffice tenant moved; re-resolved its address");
        // SuperOffice itself named this address: a trusted origin for next links.
        self.guard.lock().unwrap_or_else(|p| p.into_inner()).allow(&base);
        *self.base.lock().unwrap_or_else(|p| p.into_inner()) = base;
        Ok(())
    }

    /// Sends `build(url)` for `path`; a 421 re-resolves the tenant and tries once more.
    pub async fn send(
        &self,
        path: &str,
        query: &[(&str, &str)],
        build: impl Fn(&reqwest::Client, Url) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ConnectorError> {
        let url = self.url(path, query);
        match self.client.send(&self.tenant, |http| build(http, url.clone())).await {
            Err(ConnectorError::Permanent { code, .. }) if code.starts_with("421") => {
                self.relocate().await?;
                let url = self.url(path, query);
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
        response.json().await.map_err(|e| ConnectorError::RetryLater {
            processor: PROCESSOR,
            code: "invalid_response".into(),
            message: format!("SuperOffice answered with a body that is not the JSON expected: {e}"),
            after: None,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        self.json(path, &[], |http, url| http.get(url)).await
    }

    /// Every row of an OData list, following `odata.nextLink` on SuperOffice's origins only.
    pub async fn all(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<Value>, ConnectorError> {
        let mut page: Value = self.json(path, query, |http, url| http.get(url)).await?;
        let mut rows = Vec::new();
        for _ in 0..10_000 {
            rows.extend(page["value"].as_array().cloned().unwrap_or_default());
            let Some(link) = page["odata.nextLink"].as_str() else {
                return Ok(rows);
            };
            let next = self.guard.lock().unwrap_or_else(|p| p.into_inner()).check(link)?;
            page = self.client.json(&self.tenant, |http| http.get(next.clone())).await?;
        }
        Err(ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "too_many_pages".into(),
            message: "next links do not end".into(),
        })
    }
}

/// Shared between the login (which learns the web API address) and the client.
pub type WebApiUrl = Arc<Mutex<Option<String>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_literals_cannot_break_out() {
        assert_eq!(odata_literal("o'hara@example.ie"), "'o''hara@example.ie'");
        assert_eq!(odata_literal("x' or 1 eq 1 or 'y"), "'x'' or 1 eq 1 or ''y'");
    }
}
