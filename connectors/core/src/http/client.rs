//! One vendor's HTTP client: signs requests with the current token, refreshes it once on a
//! 401, waits out short throttling (Retry-After) in the call, and turns everything else into
//! a classified `ConnectorError` for the jobs layer to schedule.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use super::body::{MAX_JSON_BODY, error_body, read_body};
use super::ratelimit::{Permit, RateLimiter};
use super::retry::{classify, parse_retry_after};
use super::token::TokenCache;
use crate::{ConnectorError, Processor};

/// What a vendor's error body said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorError {
    pub code: String,
    pub message: String,
    /// Whether the body says to try again, whatever the status (Google answers 403 for a
    /// rate limit).
    pub retry: RetryHint,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetryHint {
    /// Decide by the HTTP status.
    #[default]
    ByStatus,
    /// Temporary: after this long if known (a daily quota's reset), else with backoff.
    Later(Option<Duration>),
}

/// Reads one vendor's error body shape (Graph's `error.code`, Wix's `details`…).
pub type DescribeError = fn(StatusCode, &[u8]) -> VendorError;

/// How long one call may keep trying before it hands the decision to the ledger.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Retries inside one call for throttling, 5xx and transport errors.
    pub in_call_retries: u32,
    /// A longer wait than this is not slept in the call: the task is rescheduled instead.
    pub max_wait: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            in_call_retries: 3,
            max_wait: Duration::from_secs(30),
        }
    }
}

pub struct VendorClient {
    processor: Processor,
    http: reqwest::Client,
    tokens: Option<Arc<TokenCache>>,
    limiter: Option<Arc<RateLimiter>>,
    describe: DescribeError,
    policy: CallPolicy,
    body_limit: usize,
}

impl VendorClient {
    pub fn new(processor: Processor, http: reqwest::Client, describe: DescribeError) -> VendorClient {
        VendorClient {
            processor,
            http,
            tokens: None,
            limiter: None,
            describe,
            policy: CallPolicy::default(),
            body_limit: MAX_JSON_BODY,
        }
    }

    /// JSON answers larger than `bytes` fail with `permanent:response_too_large` (by default
    /// [`MAX_JSON_BODY`]); for a vendor that documents larger answers.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The largest JSON answer this client reads.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    pub fn with_tokens(mut self, tokens: Arc<TokenCache>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    pub fn with_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn processor(&self) -> Processor {
        self.processor
    }

    /// Sends the request `build` makes (again on each try), rate-limited under `key`. The
    /// place in flight is given back when the answer's headers are in: for answers read
    /// whole at once.
    pub async fn send(
        &self,
        key: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ConnectorError> {
        Ok(self.send_held(key, build).await?.0)
    }

    /// [`send`](Self::send), keeping the place in flight until the returned permit is
    /// dropped: for a body streamed after this returns (a vendor counts the request until
    /// its answer is complete).
    pub async fn send_held(
        &self,
        key: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, Option<Permit>), ConnectorError> {
        let mut refreshed = false;
        let mut retries = 0u32;
        loop {
            let waiting = std::time::Instant::now();
            let permit = match &self.limiter {
                Some(limiter) => Some(limiter.acquire_in(self.processor.as_str(), key).await),
                None => None,
            };
            super::metrics::waited(self.processor.as_str(), waiting.elapsed());
            let mut request = build(&self.http);
            let token = match &self.tokens {
                Some(cache) => {
                    let token = cache.token().await?;
                    // Sensitive: kept out of Debug output and of HTTP/2's header compression.
                    let mut value = HeaderValue::from_str(token.authorization.expose_secret()).map_err(|_| {
                        ConnectorError::permanent(
                            self.processor,
                            "unexpected_response",
                            format!("{}'s access token is not a valid header value", self.processor),
                        )
                    })?;
                    value.set_sensitive(true);
                    request = request.header(AUTHORIZATION, value);
                    Some(token)
                }
                None => None,
            };
            let sent = std::time::Instant::now();
            let answered = request.send().await;
            super::metrics::call(
                self.processor.as_str(),
                answered.as_ref().ok().map(|r| r.status().as_u16()),
                sent.elapsed(),
            );
            let error = match answered {
                Ok(response) if response.status().is_success() => return Ok((response, permit)),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    let body = error_body(response).await;
                    let body = body.as_slice();
                    if status == StatusCode::UNAUTHORIZED
                        && !refreshed
                        && let (Some(cache), Some(token)) = (&self.tokens, &token)
                    {
                        // Expired or revoked mid-run: one fresh token, one more try.
                        cache.invalidate(token).await;
                        refreshed = true;
                        continue;
                    }
                    let VendorError { code, message, retry } = (self.describe)(status, body);
                    match retry {
                        RetryHint::ByStatus => classify(self.processor, status, retry_after, code, message),
                        RetryHint::Later(after) => ConnectorError::RetryLater {
                            processor: self.processor,
                            status: Some(status.as_u16()),
                            code: crate::error::safe_code(&code),
                            message: String::new(),
                            after: after.or(retry_after),
                            said: (!message.trim().is_empty()).then_some(message),
                        },
                    }
                }
                // A redirect off the vendor's origin (see `same_origin_redirects`): waiting
                // will not change where the vendor points.
                Err(e) if e.is_redirect() => ConnectorError::permanent(
                    self.processor,
                    "redirect_refused",
                    match std::error::Error::source(&e) {
                        Some(why) => format!("{} answered a redirect dsr did not follow: {why}", self.processor),
                        None => format!("{} answered a redirect dsr did not follow", self.processor),
                    },
                ),
                Err(e) => ConnectorError::retry_later(
                    self.processor,
                    if e.is_timeout() { "timeout" } else { "transport" },
                    format!("could not reach {}: {}", self.processor, e.without_url()),
                ),
            };
            let retryable_here = matches!(error, ConnectorError::RetryLater { .. });
            let wait = error
                .retry_after()
                .unwrap_or_else(|| Duration::from_millis(200 * 2u64.pow(retries.min(6))));
            if retryable_here && retries < self.policy.in_call_retries && wait <= self.policy.max_wait {
                retries += 1;
                tracing::debug!(processor = %self.processor, code = %error.code(), ?wait, "retrying in the call");
                super::metrics::waited(self.processor.as_str(), wait);
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(error);
        }
    }

    /// Sends a request that removes something. A 404 means it is gone already, which is
    /// what was wanted (a re-delivered task, or someone was quicker): `Ok(false)`.
    pub async fn remove(
        &self,
        key: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<bool, ConnectorError> {
        match self.send(key, build).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends and parses a JSON body into `T`. A body that is no JSON at all is a vendor fault
    /// that may pass (a proxy's error page), so it is retried later; JSON in another shape
    /// than `T` will not change by waiting, so it fails at once naming the endpoint and field.
    pub async fn json<T: DeserializeOwned>(
        &self,
        key: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T, ConnectorError> {
        let response = self.send(key, build).await?;
        self.read(response).await
    }

    /// Reads a successful answer's JSON body into `T`, up to this client's body limit.
    pub async fn read<T: DeserializeOwned>(&self, response: reqwest::Response) -> Result<T, ConnectorError> {
        let endpoint = response.url().path().to_string();
        read_json_within(self.processor, &endpoint, response, self.body_limit).await
    }
}

/// Reads a vendor's JSON answer into `T`, the one way every connector does. A body that is
/// no JSON at all (a proxy's error page, a cut-off answer) may pass, so it is retried later;
/// JSON in another shape than `T` will not change by waiting, so it fails at once naming the
/// endpoint and the field. A body over [`MAX_JSON_BODY`] fails, read no further.
pub async fn read_json<T: DeserializeOwned>(
    processor: Processor,
    endpoint: &str,
    response: reqwest::Response,
) -> Result<T, ConnectorError> {
    read_json_within(processor, endpoint, response, MAX_JSON_BODY).await
}

/// [`read_json`] with a body limit of `limit` bytes.
pub async fn read_json_within<T: DeserializeOwned>(
    processor: Processor,
    endpoint: &str,
    response: reqwest::Response,
    limit: usize,
) -> Result<T, ConnectorError> {
    let status = response.status();
    let bytes = read_body(processor, endpoint, response, limit).await?;
    match crate::error::decode_body(&bytes) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(shape)) => Err(ConnectorError::unexpected_shape(processor, endpoint, &shape)),
        Err(e) => Err(ConnectorError::retry_later(
            processor,
            "invalid_response",
            format!("{processor} answered {status} on {endpoint} with a body that is not JSON: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::token::{AccessToken, TokenSource};
    use axum::Router;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Numbered(Arc<AtomicU32>);

    #[async_trait::async_trait]
    impl TokenSource for Numbered {
        async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(AccessToken::bearer(&format!("t{n}"), Duration::from_secs(3600)))
        }
    }

    fn describe(_: StatusCode, body: &[u8]) -> VendorError {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        VendorError {
            code: v["error"]["code"].as_str().unwrap_or_default().to_string(),
            message: v["error"]["message"].as_str().unwrap_or_default().to_string(),
            ..Default::default()
        }
    }

    async fn server() -> (String, Arc<AtomicU32>) {
        let throttled = Arc::new(AtomicU32::new(0));
        let hits = throttled.clone();
        let app = Router::new()
            .route(
                "/me",
                get(|headers: HeaderMap| async move {
                    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                        Some("Bearer t2") => (StatusCode::OK, r#"{"ok":true}"#).into_response(),
                        _ => (
                            StatusCode::UNAUTHORIZED,
                            [("www-authenticate", "Bearer")],
                            r#"{"error":{"code":"InvalidAuthenticationToken","message":"expired"}}"#,
                        )
                            .into_response(),
                    }
                }),
            )
            .route(
                "/throttled",
                get(move || {
                    let hits = hits.clone();
                    async move {
                        if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0.05")], "{}").into_response()
                        } else {
                            (StatusCode::OK, r#"{"ok":true}"#).into_response()
                        }
                    }
                }),
            )
            .route(
                "/slow-down",
                get(|| async { (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "120")], "{}") }),
            )
            .route(
                "/garbage",
                get(|| async { (StatusCode::OK, "<html>proxy error</html>") }),
            )
            .route("/renamed", get(|| async { (StatusCode::OK, r#"{"okay":true}"#) }))
            .route(
                "/stalled",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    (StatusCode::OK, r#"{"ok":true}"#)
                }),
            )
            .route(
                "/forbidden",
                get(|| async {
                    (
                        StatusCode::FORBIDDEN,
                        r#"{"error":{"code":"Forbidden","message":"no Mail.Read"}}"#,
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, throttled)
    }

    fn client(fetches: Arc<AtomicU32>) -> VendorClient {
        let tokens = Arc::new(TokenCache::new(Numbered(fetches), Duration::from_secs(60)));
        VendorClient::new(
            Processor::Microsoft365,
            crate::http::http_client(Duration::from_secs(5)).unwrap(),
            describe,
        )
        .with_tokens(tokens)
    }

    #[derive(Debug, serde::Deserialize)]
    struct Ok {
        ok: bool,
    }

    #[tokio::test]
    async fn an_expired_token_is_refreshed_once_and_the_call_retried() {
        let (base, _) = server().await;
        let fetches = Arc::new(AtomicU32::new(0));
        let client = client(fetches.clone());
        let body: Ok = client.json("k", |http| http.get(format!("{base}/me"))).await.unwrap();
        assert!(body.ok);
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "one token, then one refresh");
    }

    #[tokio::test]
    async fn throttling_is_waited_out_when_short_and_handed_back_when_long() {
        let (base, hits) = server().await;
        let client = client(Arc::new(AtomicU32::new(1)));
        let body: Ok = client
            .json("k", |http| http.get(format!("{base}/throttled")))
            .await
            .unwrap();
        assert!(body.ok);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        let err = client
            .send("k", |http| http.get(format!("{base}/slow-down")))
            .await
            .unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)), "{err}");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn vendor_errors_and_garbage_are_classified_with_their_words() {
        let (base, _) = server().await;
        let client = client(Arc::new(AtomicU32::new(1)));
        let err = client
            .send("k", |http| http.get(format!("{base}/forbidden")))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Permanent { .. }), "{err}");
        assert_eq!(err.code(), "permanent:403:Forbidden");
        // The vendor's words are kept beside dsr's text, never in it.
        assert!(!err.to_string().contains("no Mail.Read"), "{err}");
        assert_eq!(err.said(), Some("no Mail.Read"), "{err:?}");
        let err = client
            .json::<Ok>("k", |http| http.get(format!("{base}/garbage")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "retry_later:invalid_response", "{err}");
        let err = client
            .json::<Ok>("k", |http| http.get(format!("{base}/renamed")))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            "permanent:unexpected_response",
            "JSON of another shape fails at once: {err}"
        );
        assert!(!err.is_retryable());
        assert!(
            err.to_string().contains("/renamed") && err.to_string().contains("missing field `ok`"),
            "{err}"
        );
        let err = client
            .with_policy(CallPolicy {
                in_call_retries: 0,
                max_wait: Duration::ZERO,
            })
            .send("k", |http| http.get("http://127.0.0.1:1/nothing-listens"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "retry_later:transport", "{err}");
    }

    #[tokio::test]
    async fn a_vendor_that_does_not_answer_in_time_is_a_timeout_to_retry() {
        let (base, _) = server().await;
        let tokens = Arc::new(TokenCache::new(
            Numbered(Arc::new(AtomicU32::new(1))),
            Duration::from_secs(60),
        ));
        let client = VendorClient::new(
            Processor::Microsoft365,
            crate::http::http_client(Duration::from_millis(200)).unwrap(),
            describe,
        )
        .with_tokens(tokens)
        .with_policy(CallPolicy {
            in_call_retries: 0,
            max_wait: Duration::ZERO,
        });
        let err = client
            .send("k", |http| http.get(format!("{base}/stalled")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "retry_later:timeout", "{err}");
        assert!(err.is_retryable());
    }
}
