//! The Google connector: Google Analytics (the website statistics the privacy notice
//! describes) and, where configured, Google Workspace mail and contacts. A service account
//! signs its own token requests (JWT bearer), impersonating each Workspace user through
//! domain-wide delegation.
//!
//! Changes are planned, then executed item by item (`dsr_connector::plan`); each item's
//! `target` is a [`Call`].
//!
//! Read in order: `config` → `auth` → `client` (errors, quotas, the calls) → `gmail` and
//! `people` (finding her in Workspace) → `access` → `erase` → `rectify`; `wire` is Google's
//! JSON.

pub mod access;
pub mod auth;
pub mod client;
pub mod config;
pub mod erase;
pub mod gmail;
pub mod people;
pub mod rectify;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use dsr_connector::http::{Limits, RateLimiter, VendorClient};
use dsr_connector::{
    AccessSummary, Capabilities, Change, CheckReport, ConfigError, Connector, ConnectorError, Identities, ItemCall,
    ItemOutcome, Plan, Processor, RecordSink, Right, Support, TaskContext,
};
use secrecy::ExposeSecret;

pub use client::Call;
pub use config::GoogleConfig;

use crate::auth::{ServiceAccount, Tokens};
use crate::client::{PROCESSOR, describe_error};
use crate::config::DeleteMode;
use crate::people::Book;

const SCOPE_DELETION: &str = "https://www.googleapis.com/auth/analytics.user.deletion";
const SCOPE_EDIT: &str = "https://www.googleapis.com/auth/analytics.edit";
const SCOPE_BIGQUERY: &str = "https://www.googleapis.com/auth/bigquery";

pub struct Google {
    config: GoogleConfig,
    tokens: Tokens,
    http: reqwest::Client,
    /// v3 user deletion (scope analytics.user.deletion).
    deletion: VendorClient,
    /// Admin API (scope analytics.edit).
    admin: VendorClient,
    bigquery: VendorClient,
    /// Per Workspace user: [`client::GMAIL_LIMITS`] and [`client::PEOPLE_LIMITS`].
    gmail_limits: Arc<RateLimiter>,
    people_limits: Arc<RateLimiter>,
}

impl Google {
    pub fn new(config: GoogleConfig) -> Result<Google, ConfigError> {
        config.validate()?;
        let key = config
            .service_account_key
            .resolve()
            .map_err(|e| ConfigError::new(PROCESSOR, "service_account_key", e.to_string()))?;
        let account = ServiceAccount::from_json(key.expose_secret())?;
        let http = dsr_connector::http::http_client(Duration::from_secs(60))
            .map_err(|e| ConfigError::new(PROCESSOR, "", e.to_string()))?;
        // Token requests follow no redirect: the signed assertion goes to the token URL only.
        let token_http = dsr_connector::http::TokenClient::new(Duration::from_secs(60))
            .map_err(|e| ConfigError::new(PROCESSOR, "", e.to_string()))?;
        let tokens = Tokens::new(account, &config.token_url, token_http);
        // Deletion quota: 1.5 requests per second per property.
        let pace = Arc::new(RateLimiter::new(Limits {
            requests: 3,
            per: Duration::from_secs(2),
            concurrent: 1,
        }));
        let client = |scope: &str| {
            VendorClient::new(PROCESSOR, http.clone(), describe_error).with_tokens(tokens.cache(&[scope], None))
        };
        let (deletion, admin, bigquery) = (
            client(SCOPE_DELETION).with_limiter(pace.clone()),
            client(SCOPE_EDIT).with_limiter(pace),
            client(SCOPE_BIGQUERY),
        );
        Ok(Google {
            config,
            tokens,
            http,
            deletion,
            admin,
            bigquery,
            gmail_limits: Arc::new(RateLimiter::new(client::GMAIL_LIMITS)),
            people_limits: Arc::new(RateLimiter::new(client::PEOPLE_LIMITS)),
        })
    }
}

#[async_trait::async_trait]
impl Connector for Google {
    fn processor(&self) -> Processor {
        PROCESSOR
    }

    /// Objection is served by the Analytics deletion (its only opt-out); rectification only
    /// with Workspace contacts.
    fn capabilities(&self) -> Capabilities {
        let mut capabilities = Capabilities::all();
        if self.config.workspace.is_none() {
            capabilities.rectification = Support::NotApplicable(rectify::NO_RECTIFICATION.into());
        }
        capabilities
    }

    async fn check(&self) -> Result<CheckReport, ConnectorError> {
        let mut details = vec![format!("service account {}", self.tokens.account().email)];
        if self.config.ga4_property_ids.is_empty() {
            return Ok(CheckReport {
                ok: false,
                details: vec!["no GA4 property configured (ga4_property_ids)".into()],
            });
        }
        for property in &self.config.ga4_property_ids {
            self.read_property(property).await?;
            details.push(format!("property {property} reachable"));
        }
        // Domain-wide delegation: one cheap read of each mailbox's mail and contacts.
        let nobody = Identities::default();
        for mailbox in self.config.mailboxes() {
            self.probe_mailbox(mailbox).await?;
            self.find_in(Book::Contacts, mailbox, &nobody).await?;
            self.find_in(Book::OtherContacts, mailbox, &nobody).await?;
            details.push(format!("mail, contacts and other contacts of {mailbox} readable"));
        }
        Ok(CheckReport { ok: true, details })
    }

    async fn access(
        &self,
        _ctx: &TaskContext,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        self.export(subject, sink).await
    }

    async fn plan(&self, _ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        match change {
            Change::Erasure => self.plan_erasure(subject).await,
            Change::Rectification { .. } if self.config.workspace.is_none() => {
                Err(self.unsupported(Right::Rectification))
            }
            Change::Rectification { changes } => self.plan_rectification(subject, changes).await,
            Change::Objection => Ok(self.plan_objection(subject)),
        }
    }

    async fn execute(&self, call: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
        match Call::of(call.item)? {
            Call::UserDeletion {
                property,
                id_type,
                value,
            } => self.delete_user(&property, &id_type, &value).await,
            Call::DeleteMessage { mailbox, id } => self.delete_message(&mailbox, &id, DeleteMode::Hard).await,
            Call::TrashMessage { mailbox, id } => self.delete_message(&mailbox, &id, DeleteMode::Soft).await,
            Call::DeleteContact { mailbox, resource_name } => self.delete_contact(&mailbox, &resource_name).await,
            Call::UpdateContact(planned) => self.update_contact(call, planned).await,
        }
    }
}
