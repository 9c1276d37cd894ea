//! OAuth2 client credentials (RFC 6749 §4.4) through the `oauth2` crate, over our reqwest
//! client (the crate's own bundles another reqwest major version).

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use secrecy::{ExposeSecret, SecretString};

use super::TokenClient;
use super::body::{MAX_TOKEN_BODY, error_body, read_body};
use super::client::{DescribeError, VendorError, read_json_within};
use super::token::{AccessToken, TokenSource};
use crate::{ConnectorError, Processor};

pub struct ClientCredentials {
    processor: Processor,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scopes: Vec<String>,
    http: TokenClient,
}

impl ClientCredentials {
    pub fn new(
        processor: Processor,
        http: TokenClient,
        token_url: &str,
        client_id: &str,
        client_secret: SecretString,
        scopes: &[&str],
    ) -> ClientCredentials {
        ClientCredentials {
            processor,
            token_url: token_url.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            http,
        }
    }
}

/// Why a token request through the `oauth2` crate got no answer to read.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Unreachable(String),
    /// An answer not to read: over [`MAX_TOKEN_BODY`] (`response_too_large`), or a redirect
    /// (`token_redirect`).
    #[error("{0}")]
    Refused(ConnectorError),
}

/// A token endpoint's redirect, never followed: it would re-post the client secret or the
/// signed assertion to wherever it points.
fn token_redirect(processor: Processor, status: reqwest::StatusCode) -> ConnectorError {
    ConnectorError::permanent(
        processor,
        "token_redirect",
        format!(
            "{processor}'s token endpoint answered {status} (a redirect); dsr does not follow redirects on token endpoints: check the token URL"
        ),
    )
}

async fn send(
    processor: Processor,
    http: TokenClient,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, TransportError> {
    let (parts, body) = request.into_parts();
    let response = http
        .http()
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| TransportError::Unreachable(e.without_url().to_string()))?;
    if response.status().is_redirection() {
        return Err(TransportError::Refused(token_redirect(processor, response.status())));
    }
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let endpoint = response.url().path().to_string();
    let body = read_body(processor, &endpoint, response, MAX_TOKEN_BODY)
        .await
        .map_err(|e| match e {
            e @ ConnectorError::Permanent { .. } => TransportError::Refused(e),
            other => TransportError::Unreachable(other.to_string()),
        })?;
    builder
        .body(body)
        .map_err(|e| TransportError::Unreachable(e.to_string()))
}

type OAuthClient = BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// An OAuth client for a token endpoint, credentials in the form body (as Microsoft's and
/// most vendors' docs show them).
fn oauth_client(
    processor: Processor,
    token_url: &str,
    client_id: &str,
    client_secret: &SecretString,
) -> Result<OAuthClient, ConnectorError> {
    let url = TokenUrl::new(token_url.to_string())
        .map_err(|e| crate::ConfigError::new(processor, "token_url", format!("`{token_url}` is not a URL: {e}")))?;
    Ok(BasicClient::new(ClientId::new(client_id.to_string()))
        .set_client_secret(ClientSecret::new(client_secret.expose_secret().to_string()))
        .set_token_uri(url)
        .set_auth_type(AuthType::RequestBody))
}

#[async_trait::async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let processor = self.processor;
        let client = oauth_client(processor, &self.token_url, &self.client_id, &self.client_secret)?;
        let mut request = client.exchange_client_credentials();
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let http = self.http.clone();
        let call = move |req| send(processor, http.clone(), req);
        let response = request.request_async(&call).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(body) => {
                let description = body.error_description().cloned().unwrap_or_default();
                let code = crate::error::safe_code(body.error().as_ref());
                match body.error() {
                    BasicErrorResponseType::InvalidClient
                    | BasicErrorResponseType::UnauthorizedClient
                    | BasicErrorResponseType::InvalidGrant => ConnectorError::reauthenticate(
                        processor,
                        &code,
                        "the token endpoint refused the client credentials",
                    )
                    .with_said(description),
                    _ => ConnectorError::permanent(processor, &code, "the token endpoint refused the request")
                        .with_said(description),
                }
            }
            RequestTokenError::Request(TransportError::Refused(e)) => e,
            RequestTokenError::Request(e) => ConnectorError::retry_later(
                processor,
                "token_transport",
                format!("could not reach the token endpoint: {e}"),
            ),
            RequestTokenError::Parse(e, _) => ConnectorError::retry_later(
                processor,
                "token_response",
                "the token endpoint answered something that is not a token",
            )
            .with_said(e.to_string()),
            RequestTokenError::Other(e) => {
                ConnectorError::retry_later(processor, "token_response", "the token endpoint answered unexpectedly")
                    .with_said(e)
            }
        })?;
        let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3600));
        Ok(AccessToken::bearer(response.access_token().secret(), lifetime))
    }
}

/// The OAuth 2.0 refresh-token grant (RFC 6749 §6), for vendors whose server-to-server access
/// starts from a refresh token an administrator obtained once (SuperOffice).
pub struct RefreshToken {
    pub processor: Processor,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    pub http: TokenClient,
}

#[async_trait::async_trait]
impl TokenSource for RefreshToken {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let processor = self.processor;
        let client = oauth_client(processor, &self.token_url, &self.client_id, &self.client_secret)?;
        let refresh = oauth2::RefreshToken::new(self.refresh_token.expose_secret().to_string());
        let http = self.http.clone();
        let call = move |req| send(processor, http.clone(), req);
        let response = client
            .exchange_refresh_token(&refresh)
            .request_async(&call)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(body) => ConnectorError::reauthenticate(
                    processor,
                    &crate::error::safe_code(body.error().as_ref()),
                    "the token endpoint refused the refresh token",
                )
                .with_said(body.error_description().cloned().unwrap_or_default()),
                RequestTokenError::Request(TransportError::Refused(e)) => e,
                other => {
                    ConnectorError::retry_later(processor, "token_transport", "could not refresh the access token")
                        .with_said(other.to_string())
                }
            })?;
        let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3600));
        Ok(AccessToken::bearer(response.access_token().secret(), lifetime))
    }
}

/// How a token request's body is sent: a form (RFC 6749, Google's signed assertion) or JSON
/// (Wix's client credentials, SuperOffice's system-user login).
pub enum TokenBody<'a> {
    Form(&'a [(&'a str, &'a str)]),
    Json(&'a serde_json::Value),
}

/// The answer of an OAuth 2.0 token endpoint (RFC 6749 §5.1) read as Google and Wix send it.
#[derive(serde::Deserialize)]
pub struct BearerAnswer {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for BearerAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAnswer")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl BearerAnswer {
    /// The token, valid `expires_in` seconds, or `default_lifetime` when the vendor did not say.
    pub fn into_token(self, default_lifetime: Duration) -> AccessToken {
        let lifetime = self.expires_in.map(Duration::from_secs).unwrap_or(default_lifetime);
        AccessToken::bearer(&self.access_token, lifetime)
    }
}

/// One token endpoint that the `oauth2` crate's grants do not cover (a signed JWT assertion,
/// a JSON body, a vendor's own login), asked the same way for every vendor.
pub struct TokenEndpoint<'a> {
    pub processor: Processor,
    /// A client that follows no redirect ([`TokenClient`]).
    pub http: &'a TokenClient,
    pub url: &'a str,
    /// Reads the vendor's error body (its `error`/`error_description`, or its own shape).
    pub describe: DescribeError,
    /// What was refused, for the operator: "Google refused the service-account key".
    pub refused: &'a str,
}

impl TokenEndpoint<'_> {
    /// Posts `body` and reads the answer as `T`. No answer, a 429 or a 5xx: retry later
    /// (`token_transport`); any other refusal: re-authenticate, with the vendor's code and
    /// words; an answer that is no `T`: the usual unexpected-response failure.
    pub async fn request<T: serde::de::DeserializeOwned>(&self, body: TokenBody<'_>) -> Result<T, ConnectorError> {
        let request = self.http.http().post(self.url);
        let request = match body {
            TokenBody::Form(form) => request.form(form),
            TokenBody::Json(json) => request.json(json),
        };
        let response = request.send().await.map_err(|e| {
            ConnectorError::retry_later(
                self.processor,
                "token_transport",
                format!(
                    "could not reach {}'s token endpoint: {}",
                    self.processor,
                    e.without_url()
                ),
            )
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(token_redirect(self.processor, status));
        }
        let endpoint = response.url().path().to_string();
        if status.is_success() {
            return read_json_within(self.processor, &endpoint, response, MAX_TOKEN_BODY).await;
        }
        let bytes = error_body(response).await;
        let VendorError { code, message, .. } = (self.describe)(status, &bytes);
        let http = Some(status.as_u16());
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ConnectorError::RetryLater {
                processor: self.processor,
                status: http,
                code: "token_transport".into(),
                message: format!("{}'s token endpoint answered {status}", self.processor),
                after: None,
                said: Some(message),
            });
        }
        Err(ConnectorError::Reauthenticate {
            processor: self.processor,
            status: http,
            code: crate::error::safe_code(&code),
            message: self.refused.to_string(),
            said: Some(message),
        })
    }
}

/// Reads the RFC 6749 §5.2 error body (`error`, `error_description`), which Google's and
/// most token endpoints send.
pub fn describe_oauth_error(status: reqwest::StatusCode, body: &[u8]) -> VendorError {
    #[derive(serde::Deserialize, Default)]
    struct OAuthError {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_description: Option<String>,
    }
    let parsed: OAuthError = serde_json::from_slice(body).unwrap_or_default();
    VendorError {
        code: parsed.error.unwrap_or_default(),
        message: parsed
            .error_description
            .unwrap_or_else(|| format!("answered {status} without a reason")),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Form;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use std::collections::HashMap;

    async fn token_endpoint(Form(form): Form<HashMap<String, String>>) -> axum::response::Response {
        let field = |k: &str| form.get(k).map(String::as_str);
        if field("grant_type") != Some("client_credentials")
            || field("scope") != Some("https://graph.microsoft.com/.default")
        {
            return (
                StatusCode::BAD_REQUEST,
                r#"{"error":"invalid_request","error_description":"bad form"}"#,
            )
                .into_response();
        }
        if field("client_id") == Some("app") && field("client_secret") == Some("s3cret") {
            (
                [("content-type", "application/json")],
                r#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#,
            )
                .into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                [("content-type", "application/json")],
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
            )
                .into_response()
        }
    }

    #[tokio::test]
    async fn a_token_endpoint_answering_no_token_is_retried_later() {
        let app = Router::new().route(
            "/token",
            post(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = crate::http::TokenClient::new(Duration::from_secs(5)).unwrap();
        let source = ClientCredentials::new(Processor::Microsoft365, http, &url, "app", SecretString::from("s"), &[]);
        let err = source.fetch().await.unwrap_err();
        assert_eq!(err.code(), "retry_later:token_response", "{err}");
    }

    #[tokio::test]
    async fn client_credentials_are_exchanged_and_refusals_classified() {
        let app = Router::new().route("/tenant/oauth2/v2.0/token", post(token_endpoint));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/tenant/oauth2/v2.0/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = crate::http::TokenClient::new(Duration::from_secs(5)).unwrap();
        let scopes = ["https://graph.microsoft.com/.default"];

        let good = ClientCredentials::new(
            Processor::Microsoft365,
            http.clone(),
            &url,
            "app",
            SecretString::from("s3cret"),
            &scopes,
        );
        let token = good.fetch().await.unwrap();
        assert_eq!(token.authorization.expose_secret(), "Bearer abc");
        assert!(token.expires_at > std::time::Instant::now() + Duration::from_secs(3500));

        let bad = ClientCredentials::new(
            Processor::Microsoft365,
            http,
            &url,
            "app",
            SecretString::from("wrong"),
            &scopes,
        );
        let err = bad.fetch().await.unwrap_err();
        assert!(matches!(err, ConnectorError::Reauthenticate { .. }), "{err}");
        assert!(!err.to_string().contains("AADSTS"), "{err}");
        assert!(err.said().is_some_and(|s| s.contains("AADSTS7000215")), "{err:?}");
        assert!(
            !format!("{err:?}").contains("wrong"),
            "the secret must not appear in errors"
        );
    }

    #[tokio::test]
    async fn a_token_endpoint_is_asked_and_its_refusals_classified_once_for_every_vendor() {
        async fn endpoint(Form(form): Form<HashMap<String, String>>) -> axum::response::Response {
            match form.get("assertion").map(String::as_str) {
                Some("good") => {
                    axum::Json(serde_json::json!({"access_token": "t", "expires_in": 3599})).into_response()
                }
                Some("busy") => (StatusCode::SERVICE_UNAVAILABLE, "").into_response(),
                _ => (
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
                )
                    .into_response(),
            }
        }
        let app = Router::new().route("/token", post(endpoint));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = crate::http::TokenClient::new(Duration::from_secs(5)).unwrap();
        let endpoint = TokenEndpoint {
            processor: Processor::Google,
            http: &http,
            url: &url,
            describe: describe_oauth_error,
            refused: "Google refused the service-account key",
        };
        let ask = |assertion: &'static str| {
            let endpoint = &endpoint;
            async move {
                endpoint
                    .request::<BearerAnswer>(TokenBody::Form(&[("assertion", assertion)]))
                    .await
            }
        };
        let token = ask("good").await.unwrap().into_token(Duration::from_secs(60));
        assert_eq!(token.authorization.expose_secret(), "Bearer t");
        let err = ask("bad").await.unwrap_err();
        assert_eq!(err.code(), "reauthenticate:400:invalid_grant");
        assert!(!err.to_string().contains("Invalid JWT Signature"), "{err}");
        assert!(
            err.said().is_some_and(|s| s.contains("Invalid JWT Signature")),
            "{err:?}"
        );
        let err = ask("busy").await.unwrap_err();
        assert_eq!(err.code(), "retry_later:503:token_transport");
        assert!(err.is_retryable());
        let nowhere = TokenEndpoint {
            url: "http://127.0.0.1:1/token",
            ..endpoint
        };
        let err = nowhere
            .request::<BearerAnswer>(TokenBody::Form(&[("assertion", "good")]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "retry_later:token_transport", "{err}");
    }

    #[tokio::test]
    async fn a_token_answer_too_large_to_be_a_token_is_not_read_to_its_end() {
        let app = Router::new().route(
            "/token",
            post(|| async { crate::http::body::tests::endless(1 << 30, false) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = crate::http::TokenClient::new(Duration::from_secs(20)).unwrap();
        let endpoint = TokenEndpoint {
            processor: Processor::Wix,
            http: &http,
            url: &url,
            describe: describe_oauth_error,
            refused: "Wix refused the app credentials",
        };
        let err = endpoint
            .request::<BearerAnswer>(TokenBody::Json(
                &serde_json::json!({"grant_type": "client_credentials"}),
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "permanent:response_too_large", "{err}");
        assert!(err.to_string().contains("64 KiB"), "{err}");
        let source = ClientCredentials::new(Processor::Microsoft365, http, &url, "app", SecretString::from("s"), &[]);
        let err = source.fetch().await.unwrap_err();
        assert_eq!(err.code(), "permanent:response_too_large", "{err}");
    }
}
