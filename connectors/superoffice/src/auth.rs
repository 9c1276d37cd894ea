//! Server-to-server authentication with SuperOffice Online: the system-user flow (a token
//! signed with the application's RSA key, exchanged for a JWT that carries a ticket, checked
//! against the environment's JWKS), or an OAuth refresh token.

use std::time::Duration;

use base64::Engine as _;
use dsr_connector::ConnectorError;
use dsr_connector::http::{AccessToken, TokenSource, read_json};
use ring::signature::RsaKeyPair;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::client::PROCESSOR;
use crate::wire::AuthenticateAnswer;

const TICKET_CLAIM: &str = "http://schemes.superoffice.net/identity/ticket";

pub struct SystemUser {
    pub environment: String,
    pub tenant: String,
    pub system_user_token: String,
    pub key: RsaKeyPair,
    pub application_token: SecretString,
    pub http: reqwest::Client,
}

/// `"{token}.{yyyyMMddHHmm}.{base64 signature}"`, the signature over `"{token}.{yyyyMMddHHmm}"`.
pub fn signed_system_token(
    token: &str,
    key: &RsaKeyPair,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, ConnectorError> {
    let stamped = format!("{token}.{}", now.format("%Y%m%d%H%M"));
    let signature =
        dsr_connector::keys::sign_rs256(key, stamped.as_bytes()).map_err(|e| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "private_key".into(),
            message: format!("could not sign the system user token: {e}"),
        })?;
    Ok(format!(
        "{stamped}.{}",
        base64::engine::general_purpose::STANDARD.encode(signature)
    ))
}

fn refused(message: String) -> ConnectorError {
    ConnectorError::Reauthenticate {
        processor: PROCESSOR,
        code: "system_user".into(),
        message,
    }
}

fn transport(message: String) -> ConnectorError {
    ConnectorError::RetryLater {
        processor: PROCESSOR,
        code: "login".into(),
        message,
        after: None,
    }
}

#[async_trait::async_trait]
impl TokenSource for SystemUser {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let body = json!({
            "SignedSystemToken": signed_system_token(&self.system_user_token, &self.key, chrono::Utc::now())?,
            "ApplicationToken": self.application_token.expose_secret(),
            "ContextIdentifier": self.tenant,
            "ReturnTokenType": "JWT",
        });
        let url = format!("{}/Login/api/PartnerSystemUser/Authenticate", self.environment);
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport(format!("cannot reach SuperOffice's login: {}", e.without_url())))?;
        let answer: AuthenticateAnswer =
            read_json(PROCESSOR, "/Login/api/PartnerSystemUser/Authenticate", response).await?;
        let token = match (answer.is_successful, answer.token) {
            (true, Some(token)) => token,
            _ => {
                return Err(refused(format!(
                    "SuperOffice refused the system user of tenant {}: {}",
                    self.tenant,
                    answer.error_message.as_deref().unwrap_or("no reason given")
                )));
            }
        };
        let jwks_url = format!("{}/login/.well-known/jwks", self.environment);
        let jwks: Value = self
            .http
            .get(&jwks_url)
            .send()
            .await
            .map_err(|e| transport(format!("cannot fetch SuperOffice's signing keys: {}", e.without_url())))?
            .json()
            .await
            .map_err(|e| transport(format!("SuperOffice's signing keys are not JSON: {e}")))?;
        // The token is trusted only if SuperOffice's published keys signed it.
        let claims = dsr_connector::keys::verify_jwt(&token, &jwks)
            .map_err(|e| refused(format!("the login token failed verification: {e}")))?;
        let ticket = claims[TICKET_CLAIM]
            .as_str()
            .ok_or_else(|| refused("the login token carries no ticket".into()))?;
        // Tickets slide for six hours; renew well before.
        Ok(AccessToken {
            authorization: SecretString::from(format!("SOTicket {ticket}")),
            expires_at: std::time::Instant::now() + Duration::from_secs(5 * 3600),
        })
    }
}
