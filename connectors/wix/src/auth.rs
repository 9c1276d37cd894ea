//! Wix credentials: an API key sent as is (no "Bearer"), or an app's OAuth token from a JSON
//! (not form) client-credentials request, valid four hours.

use std::time::{Duration, Instant};

use dsr_connector::ConnectorError;
use dsr_connector::http::{AccessToken, TokenSource, read_json};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::client::PROCESSOR;
use crate::wire::TokenAnswer;

/// An API key never expires by itself; a refused one fails the task.
pub struct ApiKey(pub SecretString);

#[async_trait::async_trait]
impl TokenSource for ApiKey {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        Ok(AccessToken {
            authorization: self.0.clone(),
            expires_at: Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600),
        })
    }
}

pub struct AppOAuth {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub instance_id: String,
    pub http: reqwest::Client,
}

#[async_trait::async_trait]
impl TokenSource for AppOAuth {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let body = json!({
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose_secret(),
            "instance_id": self.instance_id,
        });
        let transport = |message: String| ConnectorError::RetryLater {
            processor: PROCESSOR,
            code: "token".into(),
            message,
            after: None,
        };
        let response = self
            .http
            .post(&self.token_url)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport(format!("cannot reach Wix's token endpoint: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            let answer: TokenAnswer = read_json(PROCESSOR, "/oauth2/token", response).await?;
            return Ok(AccessToken::bearer(
                &answer.access_token,
                Duration::from_secs(answer.expires_in.unwrap_or(14400)),
            ));
        }
        let bytes = response.bytes().await.unwrap_or_default();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(transport(format!("Wix's token endpoint answered {status}")));
        }
        let said = crate::client::describe_error(status, &bytes);
        Err(ConnectorError::Reauthenticate {
            processor: PROCESSOR,
            code: if said.code.is_empty() {
                "token".into()
            } else {
                said.code
            },
            message: format!(
                "Wix refused the app credentials for instance {}: {}",
                self.instance_id, said.message
            ),
        })
    }
}
