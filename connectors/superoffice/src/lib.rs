//! The SuperOffice connector: the company's CRM, which holds its customers' contact persons,
//! their consents (with legal basis and source), newsletter subscriptions and the activities,
//! sales and tickets that name them.
//!
//! Read in order: `config` → `auth` (system user or refresh token) → `client` (the tenant,
//! which can move) → `access` → `erase` → `rectify` → `consent` (each a plan) → `target` (the
//! one call a plan item makes).

pub mod access;
pub mod auth;
pub mod client;
pub mod config;
pub mod consent;
pub mod erase;
pub mod rectify;
pub mod target;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use dsr_connector::http::{Limits, RateLimiter, RefreshToken, TokenCache, VendorClient};
use dsr_connector::{
    AccessSummary, Capabilities, Change, CheckReport, ConfigError, Connector, ConnectorError, Identities, ItemCall,
    ItemOutcome, Plan, Processor, RecordSink, SecretRef, TaskContext,
};
use secrecy::{ExposeSecret, SecretString};

pub use config::{RetainRule, SuperOfficeAuth, SuperOfficeConfig, SystemUserToken};

use crate::client::{PROCESSOR, Tenant, describe_error};

pub struct SuperOffice {
    config: SuperOfficeConfig,
    tenant: Tenant,
}

/// What dsr allows itself per tenant. SuperOffice documents no rate or concurrency limit for
/// its web API (not in the REST reference, the Online developer portal's best practices or
/// its tenant-status pages; `fixtures/samples/superoffice/NOTES.md`), so the limit is chosen
/// conservatively: four requests in flight per tenant (what Microsoft documents for one
/// mailbox). In flight is what holds the pace; the rate, within 3,000 a minute (50 a second), only
/// stops a runaway loop.
pub const TENANT_LIMITS: Limits = Limits {
    requests: 3_000,
    per: Duration::from_secs(60),
    concurrent: 4,
};

/// The secret `key` names, or the configuration error that says why it cannot be read.
fn secret(key: &str, secret: &SecretRef) -> Result<SecretString, ConfigError> {
    secret
        .resolve()
        .map_err(|e| ConfigError::new(PROCESSOR, key, e.to_string()))
}

/// The note for a subject without an e-mail address, by which alone persons are found.
fn no_address(subject: &Identities) -> Option<String> {
    let note = "SuperOffice persons are found by e-mail address, and none was given.";
    subject.emails.is_empty().then(|| note.into())
}

impl SuperOffice {
    /// The connector for `config`, or what in it cannot work.
    pub fn new(config: SuperOfficeConfig) -> Result<SuperOffice, ConfigError> {
        config.validate()?;
        let app_token = secret("client_secret", &config.client_secret)?;
        // With a ticket, every call also names the application (SO-AppToken).
        let mut headers = reqwest::header::HeaderMap::new();
        let mut header = reqwest::header::HeaderValue::from_str(app_token.expose_secret())
            .map_err(|_| ConfigError::new(PROCESSOR, "client_secret", "is not a valid header value"))?;
        // The client secret: kept out of Debug output and HTTP/2 header compression.
        header.set_sensitive(true);
        headers.insert("SO-AppToken", header);
        let http = dsr_connector::http::http_client_with_headers(Duration::from_secs(60), headers)
            .map_err(|e| ConfigError::new(PROCESSOR, "", format!("no HTTP client: {e}")))?;
        // Token requests follow no redirect: secrets go to the login URL only.
        let login = dsr_connector::http::TokenClient::new(Duration::from_secs(60))
            .map_err(|e| ConfigError::new(PROCESSOR, "", format!("no HTTP client: {e}")))?;
        let environment_url = config.environment()?;
        let environment = environment_url.as_str().trim_end_matches('/').to_string();
        let tokens = match &config.auth {
            SuperOfficeAuth::SystemUser { token, private_key } => {
                let pem = secret("private_key", private_key)?;
                let key = dsr_connector::keys::rsa_private_key(pem.expose_secret())
                    .map_err(|e| ConfigError::new(PROCESSOR, "private_key", e.to_string()))?;
                let system_user_token = token
                    .resolve()
                    .map_err(|e| ConfigError::new(PROCESSOR, "system_user_token", e.to_string()))?;
                let system_user = auth::SystemUser {
                    environment: environment.clone(),
                    tenant: config.tenant.clone(),
                    system_user_token,
                    key,
                    application_token: app_token.clone(),
                    http: http.clone(),
                    login,
                };
                TokenCache::new(system_user, Duration::from_secs(600))
            }
            SuperOfficeAuth::RefreshToken(refresh) => TokenCache::new(
                RefreshToken {
                    processor: PROCESSOR,
                    token_url: format!("{environment}/login/common/oauth/tokens"),
                    client_id: config.client_id.clone(),
                    client_secret: app_token.clone(),
                    refresh_token: secret("refresh_token", refresh)?,
                    http: login,
                },
                Duration::from_secs(300),
            ),
        };
        let client = VendorClient::new(PROCESSOR, http.clone(), describe_error)
            .with_tokens(Arc::new(tokens))
            .with_limiter(Arc::new(RateLimiter::new(TENANT_LIMITS)));
        let state = VendorClient::new(PROCESSOR, http, describe_error);
        let tenant = Tenant::new(client, state, environment_url, &config.tenant, config.page_size);
        Ok(SuperOffice { config, tenant })
    }
}

#[async_trait::async_trait]
impl Connector for SuperOffice {
    fn processor(&self) -> Processor {
        Processor::Superoffice
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn check(&self) -> Result<CheckReport, ConnectorError> {
        let nobody = Identities::probe();
        self.find_persons(&nobody).await?;
        Ok(CheckReport {
            ok: true,
            details: vec![format!(
                "tenant {} answers; persons can be searched",
                self.config.tenant
            )],
        })
    }

    async fn access(
        &self,
        _ctx: &TaskContext,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        Ok(AccessSummary {
            found: self.export(subject, sink).await?,
            notes: no_address(subject).into_iter().collect(),
            ..Default::default()
        })
    }

    async fn plan(&self, _ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        let mut plan = match change {
            Change::Erasure => self.plan_erasure(subject).await?,
            Change::Rectification { changes } => self.plan_rectification(subject, changes).await?,
            Change::Objection => self.plan_objection(subject).await?,
        };
        plan.notes.extend(no_address(subject));
        Ok(plan)
    }

    async fn execute(&self, call: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
        self.execute_item(call).await
    }
}
