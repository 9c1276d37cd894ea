//! HTTP plumbing every connector needs, written once: tokens cached and refreshed one at a
//! time, errors classified (with Retry-After), rate limits, and the guard that keeps paging
//! on the vendor's own origin.

pub mod body;
pub mod client;
pub mod oauth;
pub mod origin;
pub mod paging;
pub mod ratelimit;
pub mod retry;
pub mod token;

pub use body::{MAX_ERROR_BODY, MAX_JSON_BODY, MAX_TOKEN_BODY, error_body, read_body};
pub use client::{CallPolicy, RetryHint, VendorClient, VendorError, read_json, read_json_within};
pub use oauth::{BearerAnswer, ClientCredentials, RefreshToken, TokenBody, TokenEndpoint, describe_oauth_error};
pub use origin::OriginGuard;
pub use paging::{MAX_EMPTY_PAGES, ODataPage, ODataPager, PageGuard, odata_literal};
pub use ratelimit::{Limits, RateLimiter};
pub use retry::{classify, parse_retry_after};
pub use token::{AccessToken, MAX_LIFETIME, TokenCache, TokenSource};

/// Makes ring rustls's process-wide crypto provider (the one provider in the build); every
/// TLS client, ours or a library's, needs it installed first. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client with rustls on the ring provider (the one crypto provider in the build).
pub fn http_client(timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    http_client_with_headers(timeout, reqwest::header::HeaderMap::new())
}

/// The same, sending `headers` on every request (SuperOffice's `SO-AppToken`).
pub fn http_client_with_headers(
    timeout: std::time::Duration,
    headers: reqwest::header::HeaderMap,
) -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("dsr/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .build()
}
