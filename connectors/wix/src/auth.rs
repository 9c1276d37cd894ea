//! Wix credentials: an API key sent as is (no "Bearer"), or an app's OAuth token from a JSON
//! (not form) client-credentials request, valid four hours.
//! - https://dev.wix.com/docs/rest/app-management/oauth-2/create-access-token

use std::time::Duration;

use dsr_connector::ConnectorError;
use dsr_connector::http::token::MAX_LIFETIME;
use dsr_connector::http::{AccessToken, BearerAnswer, TokenBody, TokenClient, TokenEndpoint, TokenSource};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::client::{PROCESSOR, describe_error};

/// How long an app token lasts when Wix's answer does not say.
const APP_TOKEN_LIFETIME: Duration = Duration::from_secs(4 * 3600);

/// An API key never expires by itself (the cache hands out the same key again each day, the
/// longest any token is trusted); a refused one fails the task.
pub struct ApiKey(pub SecretString);

#[async_trait::async_trait]
impl TokenSource for ApiKey {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        Ok(AccessToken::new(self.0.expose_secret().to_string(), MAX_LIFETIME))
    }
}

pub struct AppOAuth {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub instance_id: String,
    /// Follows no redirect: the client secret goes to the token URL only.
    pub http: TokenClient,
}

#[async_trait::async_trait]
impl TokenSource for AppOAuth {
    /// Core's token request classifies the answer (no answer, 429, 5xx: later; a refusal:
    /// re-authenticate with Wix's `error` and words).
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let refused = format!("Wix refused the app credentials for instance {}", self.instance_id);
        let body = json!({
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose_secret(),
            "instance_id": self.instance_id,
        });
        let endpoint = TokenEndpoint {
            processor: PROCESSOR,
            http: &self.http,
            url: &self.token_url,
            describe: describe_error,
            refused: &refused,
        };
        let answer: BearerAnswer = endpoint.request(TokenBody::Json(&body)).await?;
        Ok(answer.into_token(APP_TOKEN_LIFETIME))
    }
}
