//! Server-to-server authentication with SuperOffice Online: the system-user flow (a token
//! signed with the application's RSA key, exchanged for a JWT that carries a ticket, checked
//! against the environment's JWKS), or an OAuth refresh token.

use std::time::Duration;

use base64::Engine as _;
use dsr_connector::http::{
    AccessToken, MAX_TOKEN_BODY, TokenBody, TokenClient, TokenEndpoint, TokenSource, read_json_within,
};
use dsr_connector::keys::{KeyError, RegisteredClaims, verify_jwt};
use dsr_connector::{ConfigError, ConnectorError};
use ring::signature::RsaKeyPair;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::client::{PROCESSOR, describe_error};
use crate::wire::AuthenticateAnswer;

/// The issuer of the system-user JWT: "SuperOffice AS (federated ID)" in the `iss` row of
/// https://community.superoffice.com/en/developer/create-apps/reference/oidc-claims/ (and
/// the "Validation parameters" of
/// https://docs.superoffice.com/en/api/authentication/online/validate-security-tokens.html).
const ISSUER: &str = "SuperOffice AS";

/// The login token's claims dsr reads. `aud` is documented (same `oidc-claims` page) as
/// "the service principal name (SPN) claim identifier followed by the tenant database serial
/// number", i.e. `spn:{serial}`, the serial being the token's own `…/identity/serial` claim;
/// `…/identity/ctx` is the tenant, which must be the one dsr logged in to.
#[derive(serde::Deserialize)]
struct LoginClaims {
    #[serde(flatten)]
    registered: RegisteredClaims,
    #[serde(rename = "http://schemes.superoffice.net/identity/ticket")]
    ticket: String,
    #[serde(rename = "http://schemes.superoffice.net/identity/serial")]
    serial: String,
    #[serde(rename = "http://schemes.superoffice.net/identity/ctx")]
    ctx: String,
}

/// Tickets slide for six hours; renew well before.
const TICKET_LIFETIME: Duration = Duration::from_secs(5 * 3600);

pub struct SystemUser {
    pub environment: String,
    pub tenant: String,
    pub system_user_token: SecretString,
    pub key: RsaKeyPair,
    pub application_token: SecretString,
    /// For the JWKS (a GET of public keys).
    pub http: reqwest::Client,
    /// For the login, which follows no redirect: the signed token goes to the login URL only.
    pub login: TokenClient,
}

/// `"{token}.{yyyyMMddHHmm}.{base64 signature}"`, the signature over `"{token}.{yyyyMMddHHmm}"`.
pub fn signed_system_token(
    token: &str,
    key: &RsaKeyPair,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, ConnectorError> {
    let stamped = format!("{token}.{}", now.format("%Y%m%d%H%M"));
    // The key was read at start-up; a key that cannot sign is the config's to change.
    let signature = dsr_connector::keys::sign_rs256(key, stamped.as_bytes()).map_err(|e| {
        ConfigError::new(
            PROCESSOR,
            "private_key",
            format!("could not sign the system user token: {e}"),
        )
    })?;
    Ok(format!(
        "{stamped}.{}",
        base64::engine::general_purpose::STANDARD.encode(signature)
    ))
}

fn refused(message: String) -> ConnectorError {
    ConnectorError::reauthenticate(PROCESSOR, "system_user", message)
}

impl SystemUser {
    /// The JWT SuperOffice's login answers for the signed system user token.
    async fn authenticate(&self) -> Result<String, ConnectorError> {
        let signed = signed_system_token(self.system_user_token.expose_secret(), &self.key, chrono::Utc::now())?;
        let body = json!({
            "SignedSystemToken": signed,
            "ApplicationToken": self.application_token.expose_secret(),
            "ContextIdentifier": self.tenant,
            "ReturnTokenType": "JWT",
        });
        let url = format!("{}/Login/api/PartnerSystemUser/Authenticate", self.environment);
        let refusal = format!("SuperOffice refused the system user of tenant {}", self.tenant);
        let login = TokenEndpoint {
            processor: PROCESSOR,
            http: &self.login,
            url: &url,
            describe: describe_error,
            refused: &refusal,
        };
        let answer: AuthenticateAnswer = login.request(TokenBody::Json(&body)).await?;
        match (answer.is_successful, answer.token) {
            (true, Some(token)) => Ok(token),
            _ => Err(refused(format!(
                "{refusal}: {}",
                answer.error_message.as_deref().unwrap_or("no reason given")
            ))),
        }
    }

    /// The keys SuperOffice signs its login tokens with.
    async fn signing_keys(&self) -> Result<Value, ConnectorError> {
        let endpoint = "/login/.well-known/jwks";
        let response = self
            .http
            .get(format!("{}{endpoint}", self.environment))
            .send()
            .await
            .map_err(|e| {
                ConnectorError::retry_later(
                    PROCESSOR,
                    "transport",
                    format!("cannot fetch SuperOffice's signing keys: {}", e.without_url()),
                )
            })?;
        // Part of the login: a few public keys, held to a token answer's limit.
        read_json_within(PROCESSOR, endpoint, response, MAX_TOKEN_BODY).await
    }
}

#[async_trait::async_trait]
impl TokenSource for SystemUser {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
        let token = self.authenticate().await?;
        let jwks = self.signing_keys().await?;
        // The token is trusted only if SuperOffice's published keys signed it, SuperOffice
        // issued it for this tenant's SPN, and it is valid now.
        let failed = |e: KeyError| refused(format!("the login token failed verification: {e}"));
        let claims: LoginClaims = verify_jwt(&token, &jwks).map_err(failed)?;
        let audience = format!("spn:{}", claims.serial);
        claims
            .registered
            .check(ISSUER, &audience, std::time::SystemTime::now())
            .map_err(failed)?;
        if !claims.ctx.eq_ignore_ascii_case(&self.tenant) {
            return Err(refused(format!(
                "the login token failed verification: it is for another tenant than {}",
                self.tenant
            )));
        }
        Ok(AccessToken::new(format!("SOTicket {}", claims.ticket), TICKET_LIFETIME))
    }
}
