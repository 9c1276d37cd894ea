//! OAuth2 client credentials (RFC 6749 §4.4) through the `oauth2` crate, over our reqwest
//! client (the crate's own bundles another reqwest major version).

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use secrecy::{ExposeSecret, SecretString};

use super::token::{AccessToken, TokenSource};
use crate::ConnectorError;

pub struct ClientCredentials {
    processor: &'static str,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scopes: Vec<String>,
    http: reqwest::Client,
}

impl ClientCredentials {
    pub fn new(
        processor: &'static str,
        http: reqwest::Client,
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

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

async fn send(http: reqwest::Client, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, TransportError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| TransportError(e.without_url().to_string()))?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await.map_err(|e| TransportError(e.to_string()))?;
    builder.body(body.to_vec()).map_err(|e| TransportError(e.to_string()))
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
    processor: &'static str,
    token_url: &str,
    client_id: &str,
    client_secret: &SecretString,
) -> Result<OAuthClient, ConnectorError> {
    let url = TokenUrl::new(token_url.to_string()).map_err(|e| ConnectorError::Permanent {
        processor,
        code: "token_url".into(),
        message: format!("token URL {token_url} is not valid: {e}"),
    })?;
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
        let call = move |req| send(http.clone(), req);
        let response = request.request_async(&call).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(body) => {
                let description = body.error_description().cloned().unwrap_or_default();
                let code = body.error().as_ref().to_string();
                match body.error() {
                    BasicErrorResponseType::InvalidClient
                    | BasicErrorResponseType::UnauthorizedClient
                    | BasicErrorResponseType::InvalidGrant => ConnectorError::Reauthenticate {
                        processor,
                        code,
                        message: format!("the token endpoint refused the client credentials: {description}"),
                    },
                    _ => ConnectorError::Permanent {
                        processor,
                        code,
                        message: format!("the token endpoint refused the request: {description}"),
                    },
                }
            }
            RequestTokenError::Request(e) => ConnectorError::RetryLater {
                processor,
                code: "token_transport".into(),
                message: format!("could not reach the token endpoint: {e}"),
                after: None,
            },
            RequestTokenError::Parse(e, _) => ConnectorError::RetryLater {
                processor,
                code: "token_response".into(),
                message: format!("the token endpoint answered something that is not a token: {e}"),
                after: None,
            },
            RequestTokenError::Other(e) => ConnectorError::RetryLater {
                processor,
                code: "token_response".into(),
                message: format!("the token endpoint answered unexpectedly: {e}"),
                after: None,
            },
        })?;
        let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3600));
        Ok(AccessToken::bearer(response.access_token().secret(), lifetime))
    }
}

/// The OAuth 2.0 refresh-token grant (RFC 6749 §6), for vendors whose server-to-server access
/// starts from a refresh token an administrator obtained once (SuperOffice).
pub struct RefreshToken {
    pub processor: &'static str,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    pub http: reqwest::Client,
}

#[async_trait::async_trait]
impl TokenSource for RefreshToken {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let processor = self.processor;
        let client = oauth_client(processor, &self.token_url, &self.client_id, &self.client_secret)?;
        let refresh = oauth2::RefreshToken::new(self.refresh_token.expose_secret().to_string());
        let http = self.http.clone();
        let call = move |req| send(http.clone(), req);
        let response = client
            .exchange_refresh_token(&refresh)
            .request_async(&call)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(body) => ConnectorError::Reauthenticate {
                    processor,
                    code: body.error().as_ref().to_string(),
                    message: format!(
                        "the token endpoint refused the refresh token: {}",
                        body.error_description().cloned().unwrap_or_default()
                    ),
                },
                other => ConnectorError::RetryLater {
                    processor,
                    code: "token_transport".into(),
                    message: format!("could not refresh the access token: {other}"),
                    after: None,
                },
            })?;
        let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3600));
        Ok(AccessToken::bearer(response.access_token().secret(), lifetime))
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
    async fn client_credentials_are_exchanged_and_refusals_classified() {
        let app = Router::new().route("/tenant/oauth2/v2.0/token", post(token_endpoint));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/tenant/oauth2/v2.0/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = crate::http::http_client(Duration::from_secs(5)).unwrap();
        let scopes = ["https://graph.microsoft.com/.default"];

        let good = ClientCredentials::new(
            "microsoft365",
            http.clone(),
            &url,
            "app",
            SecretString::from("s3cret"),
            &scopes,
        );
        let token = good.fetch().await.unwrap();
        assert_eq!(token.authorization.expose_secret(), "Bearer abc");
        assert!(token.expires_at > std::time::Instant::now() + Duration::from_secs(3500));

        let bad = ClientCredentials::new("microsoft365", http, &url, "app", SecretString::from("wrong"), &scopes);
        let err = bad.fetch().await.unwrap_err();
        assert!(matches!(err, ConnectorError::Reauthenticate { .. }), "{err}");
        assert!(err.to_string().contains("AADSTS7000215"), "{err}");
        assert!(
            !err.to_string().contains("wrong"),
            "the secret must not appear in errors"
        );
    }
}
