//! Service-account authentication (the OAuth 2.0 JWT bearer grant, RFC 7523): an RS256
//! assertion signed with the key from Google's JSON key file, exchanged for an access token.
//! One token per (scope set, impersonated user), each in the shared token cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use dsr_connector::ConnectorError;
use dsr_connector::http::{AccessToken, TokenCache, TokenSource, read_json};
use ring::signature::RsaKeyPair;
use serde::Deserialize;
use serde_json::json;

use crate::client::PROCESSOR;
use crate::wire::{TokenError, TokenResponse};

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
}

/// The service account: who it is and the key it signs with.
pub struct ServiceAccount {
    pub email: String,
    pub key_id: Option<String>,
    key: RsaKeyPair,
}

fn bad_key(message: String) -> ConnectorError {
    ConnectorError::Permanent {
        processor: PROCESSOR,
        code: "service_account_key".into(),
        message,
    }
}

impl ServiceAccount {
    /// Reads Google's JSON key file.
    pub fn from_json(text: &str) -> Result<ServiceAccount, ConnectorError> {
        let file: KeyFile = serde_json::from_str(text).map_err(|e| {
            bad_key(format!(
                "processors.google.service_account_key is not a service-account JSON key file: {e}"
            ))
        })?;
        let key = dsr_connector::keys::rsa_private_key(&file.private_key)
            .map_err(|e| bad_key(format!("the key file's private_key cannot be used: {e}")))?;
        Ok(ServiceAccount {
            email: file.client_email,
            key_id: file.private_key_id,
            key,
        })
    }

    /// A signed assertion for `scopes`, acting as `subject` when given.
    pub fn assertion(
        &self,
        token_url: &str,
        scopes: &[String],
        subject: Option<&str>,
    ) -> Result<String, ConnectorError> {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let iat = chrono::Utc::now().timestamp();
        let mut claims =
            json!({"iss": self.email, "scope": scopes.join(" "), "aud": token_url, "iat": iat, "exp": iat + 3600});
        if let Some(sub) = subject {
            claims["sub"] = json!(sub);
        }
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = dsr_connector::keys::sign_rs256(&self.key, signed.as_bytes()).map_err(|e| {
            bad_key(format!(
                "could not sign the token request with the service-account key: {e}"
            ))
        })?;
        Ok(format!("{signed}.{}", b64(&signature)))
    }
}

/// Exchanges an assertion for an access token.
struct JwtBearer {
    account: Arc<ServiceAccount>,
    token_url: String,
    scopes: Vec<String>,
    subject: Option<String>,
    http: reqwest::Client,
}

#[async_trait::async_trait]
impl TokenSource for JwtBearer {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let assertion = self
            .account
            .assertion(&self.token_url, &self.scopes, self.subject.as_deref())?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let transport = |message: String| ConnectorError::RetryLater {
            processor: PROCESSOR,
            code: "token_transport".into(),
            message,
            after: None,
        };
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| transport(format!("could not reach Google's token endpoint: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            let answer: TokenResponse = read_json(PROCESSOR, "/token", response).await?;
            return Ok(AccessToken::bearer(
                &answer.access_token,
                Duration::from_secs(answer.expires_in.unwrap_or(3600)),
            ));
        }
        let body = response.bytes().await.map_err(|e| transport(e.to_string()))?;
        let refused: TokenError = serde_json::from_slice(&body).unwrap_or_default();
        let error = refused.error.unwrap_or_default();
        let description = refused.error_description.unwrap_or_default();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(transport(format!(
                "Google's token endpoint answered {status}: {description}"
            )));
        }
        // The key, the account or the scopes were refused: an operator must act.
        Err(ConnectorError::Reauthenticate {
            processor: PROCESSOR,
            code: if error.is_empty() {
                status.as_u16().to_string()
            } else {
                error
            },
            message: format!(
                "Google refused the service-account credential {} (key {}): {description}",
                self.account.email,
                self.account.key_id.as_deref().unwrap_or("?")
            ),
        })
    }
}

/// Sorted scopes and the impersonated user, if any.
type TokenKey = (Vec<String>, Option<String>);

/// Token caches per (scopes, impersonated user).
pub struct Tokens {
    account: Arc<ServiceAccount>,
    token_url: String,
    http: reqwest::Client,
    caches: Mutex<HashMap<TokenKey, Arc<TokenCache>>>,
}

impl Tokens {
    pub fn new(account: ServiceAccount, token_url: &str, http: reqwest::Client) -> Tokens {
        Tokens {
            account: Arc::new(account),
            token_url: token_url.to_string(),
            http,
            caches: Mutex::new(HashMap::new()),
        }
    }

    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    pub fn cache(&self, scopes: &[&str], subject: Option<&str>) -> Arc<TokenCache> {
        let mut scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        scopes.sort();
        let key = (scopes.clone(), subject.map(String::from));
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        caches
            .entry(key)
            .or_insert_with(|| {
                let source = JwtBearer {
                    account: self.account.clone(),
                    token_url: self.token_url.clone(),
                    scopes,
                    subject: subject.map(String::from),
                    http: self.http.clone(),
                };
                Arc::new(TokenCache::new(source, Duration::from_secs(300)))
            })
            .clone()
    }
}
