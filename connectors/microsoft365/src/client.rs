//! Talking to Graph: URLs, OData/KQL escaping, Graph's error bodies, and the shared
//! plumbing (token cache, rate limits, paging guard) set up for Graph's documented limits.

use std::sync::Arc;
use std::time::Duration;

use dsr_connector::ConnectorError;
use dsr_connector::http::{
    ClientCredentials, Limits, ODataPager, OriginGuard, RateLimiter, TokenCache, VendorClient, VendorError,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::Microsoft365Config;
use crate::wire::ErrorBody;

pub const PROCESSOR: &str = "microsoft365";
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// A guard against a next-link loop: 1,000 pages of up to 1,000 items.
const MAX_PAGES: usize = 1000;

/// Graph's error body (`wire::ErrorBody`); anything else (a gateway's HTML page) is quoted.
pub fn describe_error(_status: StatusCode, body: &[u8]) -> VendorError {
    let error = serde_json::from_slice::<ErrorBody>(body).ok().map(|b| b.error);
    let (code, message) = error.map(|e| (e.code, e.message)).unwrap_or_default();
    VendorError {
        code: code.unwrap_or_default(),
        message: message.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect()),
        ..Default::default()
    }
}

/// An OData string literal: in single quotes, a `'` doubled.
pub fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A KQL value inside the double-quoted `$search` parameter: `\` and `"` escaped.
pub fn kql_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

pub struct Graph {
    pub client: VendorClient,
    base: Url,
    guard: OriginGuard,
    pub page_size: u32,
}

impl Graph {
    pub fn new(config: &Microsoft365Config, secret: secrecy::SecretString) -> Result<Graph, ConnectorError> {
        let bad_config = |what: &str, e: String| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "config".into(),
            message: format!("processors.microsoft365.{what}: {e}"),
        };
        let mut base = Url::parse(&config.graph_url).map_err(|e| bad_config("graph_url", e.to_string()))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Url::parse(&config.token_url()).map_err(|e| bad_config("login_url", e.to_string()))?;
        let http =
            dsr_connector::http::http_client(Duration::from_secs(60)).map_err(|e| bad_config("http", e.to_string()))?;
        let source = ClientCredentials::new(
            PROCESSOR,
            http.clone(),
            &config.token_url(),
            &config.client_id,
            secret,
            &[GRAPH_SCOPE],
        );
        let tokens = Arc::new(TokenCache::new(source, Duration::from_secs(300)));
        // Graph: 10,000 requests per 10 minutes and 4 concurrent requests per app per mailbox.
        let limiter = Arc::new(RateLimiter::new(Limits {
            requests: 10_000,
            per: Duration::from_secs(600),
            concurrent: 4,
        }));
        let client = VendorClient::new(PROCESSOR, http, describe_error)
            .with_tokens(tokens)
            .with_limiter(limiter);
        Ok(Graph {
            guard: OriginGuard::new(PROCESSOR, &base),
            base,
            client,
            page_size: config.page_size.clamp(1, 1000),
        })
    }

    /// `{base}/users/{mailbox}/{rest…}` with each segment percent-encoded.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A paged collection, following `@odata.nextLink` on Graph's origin only.
    pub fn pages(&self, key: &str, first: Url) -> ODataPager<'_> {
        ODataPager::new(&self.client, key, &self.guard, first, MAX_PAGES)
    }

    /// Every item of a paged collection.
    pub async fn all<T: DeserializeOwned>(&self, key: &str, first: Url) -> Result<Vec<T>, ConnectorError> {
        let mut pager = self.pages(key, first);
        let mut items = Vec::new();
        while let Some(page) = pager.next_page().await? {
            items.extend(page);
        }
        Ok(items)
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str, url: Url) -> Result<T, ConnectorError> {
        self.client.json(key, |http| http.get(url.clone())).await
    }
}

/// A 403 says which permission is missing, in words an administrator can act on.
pub fn needs_permission(error: ConnectorError, permission: &str, what: &str) -> ConnectorError {
    error.explain_forbidden(&format!(
        "Graph refused to {what}; grant the app registration the application permission {permission} and an administrator's consent"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped_for_odata_and_kql() {
        assert_eq!(odata_literal("o'hara@example.ie"), "'o''hara@example.ie'");
        assert_eq!(odata_literal("x') or true or ('"), "'x'') or true or ('''");
        assert_eq!(kql_value(r#""kari"@example.no"#), r#"\"kari\"@example.no"#);
        assert_eq!(kql_value(r"a\b"), r"a\\b");
    }

    #[test]
    fn graph_error_bodies_are_read() {
        let body =
            br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied.","innerError":{"request-id":"1"}}}"#;
        let e = describe_error(StatusCode::FORBIDDEN, body);
        assert_eq!(e.code, "ErrorAccessDenied");
        assert_eq!(e.message, "Access is denied.");
        let e = describe_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(e.code, "");
        assert!(e.message.contains("bad gateway"));
    }
}
