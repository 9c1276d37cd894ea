//! Talking to Graph: URLs under the configured base, Graph's error bodies, and the shared
//! plumbing (rate limits, paging on Graph's origin only) set up for Graph's documented limits.
//! - https://learn.microsoft.com/en-us/graph/errors
//! - https://learn.microsoft.com/en-us/graph/throttling-limits (Outlook service limits)

use std::sync::Arc;
use std::time::Duration;

use dsr_connector::http::{
    Limits, ODataPager, OriginGuard, RateLimiter, TokenCache, VendorClient, VendorError, push_segments,
};
use dsr_connector::{ConfigError, ConnectorError, Processor};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::config::Microsoft365Config;

pub const PROCESSOR: Processor = Processor::Microsoft365;

/// A guard against a next-link loop: 1,000 pages of up to 1,000 items.
const MAX_PAGES: usize = 1000;

/// Graph's error body, the OData JSON error format `{"error":{"code","message","innerError":{…}}}`
/// (the code: `ErrorAccessDenied`, `MailboxNotEnabledForRESTAPI`…), read leniently: any other
/// body (a gateway's HTML page) is quoted.
pub fn describe_error(_status: StatusCode, body: &[u8]) -> VendorError {
    let answer: Value = serde_json::from_slice(body).unwrap_or_default();
    let said = |field: &str| answer["error"][field].as_str().map(String::from);
    VendorError {
        code: said("code").unwrap_or_default(),
        message: said("message").unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect()),
        ..Default::default()
    }
}

pub struct Graph {
    pub client: VendorClient,
    base: Url,
    guard: OriginGuard,
    /// `$top` of each list, within `config::PAGE_SIZES` (checked when the config was read).
    pub page_size: u32,
}

impl Graph {
    /// Graph at `config.graph_url`, signed with `tokens`.
    pub fn new(
        config: &Microsoft365Config,
        http: reqwest::Client,
        tokens: Arc<TokenCache>,
    ) -> Result<Graph, ConfigError> {
        let base = config.graph_base()?;
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
            page_size: config.page_size,
        })
    }

    /// `{base}/users/{mailbox}/{rest…}` with each segment percent-encoded (an id that is
    /// empty, `.` or `..` is refused: no URL can hold it as one segment).
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, ConnectorError> {
        let mut url = self.base.clone();
        push_segments(PROCESSOR, &mut url, segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
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

    struct NoToken;

    #[async_trait::async_trait]
    impl dsr_connector::http::TokenSource for NoToken {
        async fn fetch(&self) -> Result<dsr_connector::http::AccessToken, ConnectorError> {
            Err(ConnectorError::reauthenticate(
                PROCESSOR,
                "no_token",
                "not in this test",
            ))
        }
    }

    #[test]
    fn each_segment_is_encoded_below_the_base() {
        let config: Microsoft365Config = toml::from_str(
            "tenant_id = \"t\"\nclient_id = \"a\"\nclient_secret = \"env:X\"\ngraph_url = \"https://graph.example/v1.0\"\n",
        )
        .unwrap();
        let tokens = Arc::new(TokenCache::new(NoToken, Duration::ZERO));
        let graph = Graph::new(
            &config,
            dsr_connector::http::http_client(Duration::from_secs(1)).unwrap(),
            tokens,
        )
        .unwrap();
        let url = graph
            .url(&["users", "a/b c@x.no", "messages"], &[("$top", "4")])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.example/v1.0/users/a%2Fb%20c@x.no/messages?%24top=4"
        );
        let hostile = graph
            .url(&["users", "a@x.no", "messages", "x/../../admin?permanent=false#"], &[])
            .unwrap();
        assert_eq!(
            hostile.as_str(),
            "https://graph.example/v1.0/users/a@x.no/messages/x%2F..%2F..%2Fadmin%3Fpermanent%3Dfalse%23"
        );
        // `..` is no id: Graph's old `extend` dropped it and addressed the collection.
        let err = graph.url(&["users", "a@x.no", "messages", ".."], &[]).unwrap_err();
        assert_eq!(err.code(), "permanent:unexpected_response", "{err}");
    }
}
