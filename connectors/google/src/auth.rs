//! Service-account authentication (the OAuth 2.0 JWT bearer grant, RFC 7523): an RS256
//! assertion signed with the key from Google's JSON key file, exchanged for an access token
//! through core's one token request (`TokenEndpoint`). One token per (scope set,
//! impersonated user), each in the shared token cache.
//! https://developers.google.com/identity/protocols/oauth2/service-account#httprest

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use dsr_connector::http::{
    AccessToken, BearerAnswer, TokenBody, TokenCache, TokenClient, TokenEndpoint, TokenSource, describe_oauth_error,
};
use dsr_connector::{ConfigError, ConnectorError};
use ring::signature::RsaKeyPair;
use serde::Deserialize;
use serde_json::json;

use crate::client::PROCESSOR;

/// The grant Google's token endpoint is asked for.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What the operator reads when Google refuses a token. It names no account or key id: stored
/// errors carry no identities.
const REFUSED: &str = "Google refused the service-account key in processors.google.service_account_key";

/// How long a token lives when Google's answer does not say (its documented hour).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The config key the key file is named by, for errors.
const KEY: &str = "service_account_key";

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
}

/// The service account: who it is and the key it signs with.
pub struct ServiceAccount {
    pub email: String,
    pub key_id: Option<String>,
    key: RsaKeyPair,
}

impl ServiceAccount {
    /// Reads Google's JSON key file. One that cannot be read is the configuration's fault.
    pub fn from_json(text: &str) -> Result<ServiceAccount, ConfigError> {
        let file: KeyFile = serde_json::from_str(text)
            .map_err(|e| ConfigError::new(PROCESSOR, KEY, format!("not a service-account JSON key file: {e}")))?;
        let key = dsr_connector::keys::rsa_private_key(&file.private_key).map_err(|e| {
            ConfigError::new(
                PROCESSOR,
                KEY,
                format!("the key file's private_key cannot be used: {e}"),
            )
        })?;
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
        // The key was read at start-up; a key that cannot sign is the config's to change.
        let signature = dsr_connector::keys::sign_rs256(&self.key, signed.as_bytes()).map_err(|e| {
            ConfigError::new(
                PROCESSOR,
                KEY,
                format!("could not sign the token request with the service-account key: {e}"),
            )
        })?;
        Ok(format!("{signed}.{}", b64(&signature)))
    }
}

/// Exchanges a fresh assertion for an access token.
struct JwtBearer {
    account: Arc<ServiceAccount>,
    token_url: String,
    scopes: Vec<String>,
    subject: Option<String>,
    http: TokenClient,
}

#[async_trait::async_trait]
impl TokenSource for JwtBearer {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let assertion = self
            .account
            .assertion(&self.token_url, &self.scopes, self.subject.as_deref())?;
        let form = [("grant_type", JWT_BEARER), ("assertion", assertion.as_str())];
        let endpoint = TokenEndpoint {
            processor: PROCESSOR,
            http: &self.http,
            url: &self.token_url,
            describe: describe_oauth_error,
            refused: REFUSED,
        };
        let answer: BearerAnswer = endpoint.request(TokenBody::Form(&form)).await?;
        Ok(answer.into_token(TOKEN_LIFETIME))
    }
}

/// Sorted scopes and the impersonated user, if any.
type TokenKey = (Vec<String>, Option<String>);

/// Token caches per (scopes, impersonated user).
pub struct Tokens {
    account: Arc<ServiceAccount>,
    token_url: String,
    http: TokenClient,
    caches: Mutex<HashMap<TokenKey, Arc<TokenCache>>>,
}

impl Tokens {
    pub fn new(account: ServiceAccount, token_url: &str, http: TokenClient) -> Tokens {
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
