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

use dsr_connector::http::{RefreshToken, TokenCache, VendorClient};
use dsr_connector::{
    AccessSummary, Capabilities, Change, CheckReport, Connector, ConnectorError, Identities, ItemOutcome, Plan,
    PlanItem, Processor, RecordSink, TaskContext,
};
use secrecy::ExposeSecret;

pub use config::{RetainRule, SuperOfficeConfig};

use crate::client::{PROCESSOR, Tenant, describe_error};

pub struct SuperOffice {
    config: SuperOfficeConfig,
    tenant: Tenant,
}

fn config_error(message: String) -> ConnectorError {
    ConnectorError::Permanent {
        processor: PROCESSOR,
        code: "config".into(),
        message: format!("processors.superoffice: {message}"),
    }
}

impl SuperOffice {
    pub fn new(config: SuperOfficeConfig) -> Result<SuperOffice, ConnectorError> {
        config.validate().map_err(config_error)?;
        let secret = config
            .client_secret
            .resolve()
            .map_err(|e| config_error(format!("client_secret: {e}")))?;
        // With a ticket, every call also names the application (SO-AppToken).
        let mut headers = reqwest::header::HeaderMap::new();
        let app_token = reqwest::header::HeaderValue::from_str(secret.expose_secret())
            .map_err(|_| config_error("client_secret is not a valid header value".into()))?;
        headers.insert("SO-AppToken", app_token);
        let http = dsr_connector::http::http_client_with_headers(Duration::from_secs(60), headers)
            .map_err(|e| config_error(e.to_string()))?;
        let environment = config.environment().to_string();
        let tokens = match (&config.system_user_token, &config.private_key, &config.refresh_token) {
            (Some(token), Some(key), _) => {
                let key_text = key.resolve().map_err(|e| config_error(format!("private_key: {e}")))?;
                let key = dsr_connector::keys::rsa_private_key(key_text.expose_secret())
                    .map_err(|e| config_error(format!("private_key: {e}")))?;
                TokenCache::new(
                    auth::SystemUser {
                        environment: environment.clone(),
                        tenant: config.tenant.clone(),
                        system_user_token: token.clone(),
                        key,
                        application_token: secret.clone(),
                        http: http.clone(),
                    },
                    Duration::from_secs(600),
                )
            }
            (_, _, Some(refresh)) => TokenCache::new(
                RefreshToken {
                    processor: PROCESSOR,
                    token_url: format!("{environment}/login/common/oauth/tokens"),
                    client_id: config.client_id.clone(),
                    client_secret: secret.clone(),
                    refresh_token: refresh
                        .resolve()
                        .map_err(|e| config_error(format!("refresh_token: {e}")))?,
                    http: http.clone(),
                },
                Duration::from_secs(300),
            ),
            _ => return Err(config_error("no credentials".into())),
        };
        let client = VendorClient::new(PROCESSOR, http.clone(), describe_error).with_tokens(Arc::new(tokens));
        let tenant = Tenant::new(client, http, &environment, &config.tenant, config.page_size)?;
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
        let found = self.export(subject, sink).await?;
        let mut notes = Vec::new();
        if subject.emails.is_empty() {
            notes.push("SuperOffice persons are found by e-mail address, and none was given.".into());
        }
        Ok(AccessSummary {
            found,
            notes,
            ..Default::default()
        })
    }

    async fn plan(&self, _ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        let mut plan = match change {
            Change::Erasure => self.plan_erasure(subject).await?,
            Change::Rectification { changes } => self.plan_rectification(subject, changes).await?,
            Change::Objection => self.plan_objection(subject).await?,
        };
        if subject.emails.is_empty() {
            plan.notes
                .push("SuperOffice persons are found by e-mail address, and none was given.".into());
        }
        Ok(plan)
    }

    async fn execute(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        change: &Change,
        item: &PlanItem,
    ) -> Result<ItemOutcome, ConnectorError> {
        self.execute_item(ctx, subject, change, item).await
    }
}
