//! HTTP plumbing every connector needs, written once: tokens cached and refreshed one at a
//! time, errors classified (with Retry-After), rate limits, and the guard that keeps paging
//! on the vendor's own origin.

pub mod body;
pub mod client;
pub mod metrics;
pub mod oauth;
pub mod origin;
pub mod paging;
pub mod path;
pub mod ratelimit;
pub mod retry;
pub mod token;

pub use body::{MAX_ERROR_BODY, MAX_JSON_BODY, MAX_TOKEN_BODY, error_body, read_body};
pub use client::{CallPolicy, RetryHint, VendorClient, VendorError, read_json, read_json_within};
pub use oauth::{BearerAnswer, ClientCredentials, RefreshToken, TokenBody, TokenEndpoint, describe_oauth_error};
pub use origin::OriginGuard;
pub use paging::{MAX_EMPTY_PAGES, ODataPage, ODataPager, PageGuard, odata_literal};
pub use path::{path_segment, push_segments};
pub use ratelimit::{
    Limits, MemoryLimits, PLACE_LEASE, Permit, RateLimiter, Scale, SharedLimitError, SharedLimits,
    scale_limits_for_benchmark, share_limits,
};
pub use retry::{classify, parse_retry_after};
pub use token::{AccessToken, MAX_LIFETIME, TokenCache, TokenSource};

/// Makes ring rustls's process-wide crypto provider (the one provider in the build); every
/// TLS client, ours or a library's, needs it installed first. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How many redirects one request may follow, all on the origin it was sent to.
pub const MAX_REDIRECTS: usize = 3;

/// Why a redirect was not followed (reqwest's `is_redirect()` error carries it).
#[derive(Debug, thiserror::Error)]
pub enum RedirectRefused {
    #[error("the vendor redirected to another origin ({0}); dsr follows redirects on the vendor's own origin only")]
    OtherOrigin(String),
    #[error("the vendor redirected more than {MAX_REDIRECTS} times")]
    TooMany,
}

/// Follows a redirect only to the origin (scheme, host, port) of the URL that was
/// redirected, at most [`MAX_REDIRECTS`] hops: default headers (SuperOffice's `SO-AppToken`)
/// and the request's personal data must not leave the vendor.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        // `previous()` starts with the request's own URL.
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(RedirectRefused::TooMany);
        }
        let next = attempt.url();
        let same = attempt.previous().last().is_some_and(|last| same_origin(last, next));
        if same {
            attempt.follow()
        } else {
            let to = format!("{}://{}", next.scheme(), next.host_str().unwrap_or("?"));
            attempt.error(RedirectRefused::OtherOrigin(to))
        }
    })
}

fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme().eq_ignore_ascii_case(b.scheme())
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A reqwest client with rustls on the ring provider (the one crypto provider in the build).
pub fn http_client(timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    http_client_with_headers(timeout, reqwest::header::HeaderMap::new())
}

/// The same, sending `headers` on every request (SuperOffice's `SO-AppToken`; mark secret
/// values sensitive). Redirects are followed on the same origin only, no `Referer` is sent.
pub fn http_client_with_headers(
    timeout: std::time::Duration,
    headers: reqwest::header::HeaderMap,
) -> reqwest::Result<reqwest::Client> {
    builder(timeout)
        .redirect(same_origin_redirects())
        .default_headers(headers)
        .build()
}

/// The client token requests are sent with ([`TokenEndpoint`], [`ClientCredentials`],
/// [`RefreshToken`]): it follows no redirect at all, so a 307/308 can never re-post a client
/// secret or a signed assertion elsewhere; a 3xx answer fails as `permanent:token_redirect`.
#[derive(Clone, Debug)]
pub struct TokenClient(reqwest::Client);

impl TokenClient {
    pub fn new(timeout: std::time::Duration) -> reqwest::Result<TokenClient> {
        builder(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(TokenClient)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.0
    }
}

/// dsr's HTTP client settings (the crypto provider installed, the time limits, dsr's
/// user agent, no `Referer`), for a client that sets its own redirect and TLS rules.
pub fn builder(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("dsr/", env!("CARGO_PKG_VERSION")))
        .referer(false)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Router;
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Redirect, Response};
    use axum::routing::{any, get, post};
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;
    use crate::{ConnectorError, Processor};

    /// What a server was sent: path, headers and body of each request.
    type Seen = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

    async fn record(State(seen): State<Seen>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 16).await.unwrap_or_default();
        seen.lock().unwrap().push((
            parts.uri.to_string(),
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        ));
        (StatusCode::OK, r#"{"access_token":"stolen","ok":true}"#).into_response()
    }

    /// A second origin (another port on 127.0.0.1) that records whatever reaches it.
    async fn elsewhere() -> (String, Seen) {
        let seen = Seen::default();
        let app = Router::new().fallback(any(record)).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    /// The vendor: `/away` redirects to `{other}/steal`, `/here` to its own `/there` (which
    /// records what it was sent), `/token` answers 307 to `{other}/token`.
    async fn vendor(other: &str) -> (String, Seen) {
        let seen = Seen::default();
        let away = format!("{other}/steal");
        let token = format!("{other}/token");
        let app = Router::new()
            .route("/away", get(move || async move { Redirect::to(&away) }))
            .route("/here", get(|| async { Redirect::to("/there") }))
            .route("/there", get(record))
            .route("/token", post(move || async move { Redirect::temporary(&token) }))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    struct Fixed;

    #[async_trait::async_trait]
    impl TokenSource for Fixed {
        async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
            Ok(AccessToken::bearer("secret-bearer", Duration::from_secs(600)))
        }
    }

    fn vendor_client() -> VendorClient {
        let mut headers = HeaderMap::new();
        let mut app_token = HeaderValue::from_static("secret-app-token");
        app_token.set_sensitive(true);
        headers.insert("SO-AppToken", app_token);
        let http = http_client_with_headers(Duration::from_secs(5), headers).unwrap();
        let tokens = Arc::new(TokenCache::new(Fixed, Duration::from_secs(60)));
        VendorClient::new(Processor::Superoffice, http, |_, _| Default::default())
            .with_tokens(tokens)
            .with_policy(CallPolicy {
                in_call_retries: 0,
                max_wait: Duration::ZERO,
            })
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_is_not_followed_and_no_secret_reaches_it() {
        let (other, seen) = elsewhere().await;
        let (base, _) = vendor(&other).await;
        let client = vendor_client();
        let err = client
            .send("k", |http| http.get(format!("{base}/away?$filter=kari%40example.no")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "permanent:redirect_refused", "{err}");
        assert!(err.to_string().contains("another origin"), "{err}");
        let seen = seen.lock().unwrap();
        assert!(seen.is_empty(), "the other origin was sent {seen:?}");
    }

    #[tokio::test]
    async fn a_redirect_on_the_same_origin_is_followed_without_a_referer() {
        let (other, _) = elsewhere().await;
        let (base, there) = vendor(&other).await;
        let answer: serde_json::Value = vendor_client()
            .json("k", |http| http.get(format!("{base}/here?q=kari%40example.no")))
            .await
            .unwrap();
        assert_eq!(answer["ok"], true);
        let there = there.lock().unwrap();
        let [(path, headers, _)] = there.as_slice() else {
            panic!("one request reaches /there: {there:?}");
        };
        assert_eq!(path, "/there");
        assert!(
            !headers.contains_key("referer"),
            "the previous URL was sent on: {headers:?}"
        );
    }

    #[tokio::test]
    async fn a_token_endpoint_answering_a_redirect_is_not_followed() {
        let (other, seen) = elsewhere().await;
        let (base, _) = vendor(&other).await;
        let http = TokenClient::new(Duration::from_secs(5)).unwrap();
        let url = format!("{base}/token");
        let endpoint = TokenEndpoint {
            processor: Processor::Wix,
            http: &http,
            url: &url,
            describe: describe_oauth_error,
            refused: "Wix refused the app credentials",
        };
        let err = endpoint
            .request::<BearerAnswer>(TokenBody::Form(&[("client_secret", "s3cret-in-form")]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "permanent:token_redirect", "{err}");
        let source = ClientCredentials::new(Processor::Microsoft365, http, &url, "app", "s3cret-cc".into(), &[]);
        let err = source.fetch().await.unwrap_err();
        assert_eq!(err.code(), "permanent:token_redirect", "{err}");
        let seen = seen.lock().unwrap();
        assert!(seen.is_empty(), "the client secret was re-posted: {seen:?}");
    }
}
