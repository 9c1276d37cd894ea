//! The Wix connector: the company's website (racom.no) — contacts from its forms, the member
//! area, form submissions, blog comments and the e-mail marketing list.
//!
//! Read in order: `config` → `auth` → `client` → `access` → `erase` → `rectify` → `consent`.

pub mod access;
pub mod auth;
pub mod client;
pub mod config;
pub mod consent;
pub mod erase;
pub mod rectify;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use dsr_connector::http::{RateLimiter, TokenCache, VendorClient, http_client_with_headers};
use dsr_connector::{
    AccessSummary, Capabilities, Change, CheckReport, ConfigError, Connector, ConnectorError, Identities, ItemCall,
    ItemOutcome, Plan, Processor, RecordSink, SecretRef, TaskContext,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

pub use config::{WixConfig, WixCredentials};

use crate::client::{PROCESSOR, describe_error};

const GUEST_COMMENTS: &str = "Comments posted as a guest (without a member account) are stored under a name and e-mail that Wix's API does not let anyone search: they cannot be found for this request.";

pub struct Wix {
    config: WixConfig,
    api: client::Wix,
}

impl Wix {
    /// The connector for one site; a section that cannot work names its key.
    pub fn new(config: WixConfig) -> Result<Wix, ConfigError> {
        config.validate()?;
        let site = HeaderValue::from_str(&config.site_id)
            .map_err(|_| ConfigError::new(PROCESSOR, "site_id", "is not a valid header value"))?;
        let headers = HeaderMap::from_iter([(HeaderName::from_static("wix-site-id"), site)]);
        let http = http_client_with_headers(Duration::from_secs(60), headers)
            .map_err(|e| ConfigError::new(PROCESSOR, "", format!("cannot make an HTTP client: {e}")))?;
        let tokens = Arc::new(tokens(&config)?);
        let api = client::Wix {
            client: VendorClient::new(PROCESSOR, http, describe_error)
                .with_tokens(tokens)
                .with_limiter(Arc::new(RateLimiter::new(client::SITE_LIMITS))),
            api: config.api().to_string(),
            site: config.site_id.clone(),
        };
        Ok(Wix { config, api })
    }
}

/// The token source the section's credentials name.
fn tokens(config: &WixConfig) -> Result<TokenCache, ConfigError> {
    let resolve = |key: &str, secret: &SecretRef| {
        secret
            .resolve()
            .map_err(|e| ConfigError::new(PROCESSOR, key, e.to_string()))
    };
    match &config.credentials {
        WixCredentials::ApiKey(key) => Ok(TokenCache::new(
            auth::ApiKey(resolve("api_key", key)?),
            Duration::from_secs(60),
        )),
        WixCredentials::App {
            client_id,
            client_secret,
            instance_id,
        } => {
            let app = auth::AppOAuth {
                token_url: format!("{}/oauth2/token", config.api()),
                client_id: client_id.clone(),
                client_secret: resolve("client_secret", client_secret)?,
                instance_id: instance_id.clone(),
                http: dsr_connector::http::TokenClient::new(Duration::from_secs(60))
                    .map_err(|e| ConfigError::new(PROCESSOR, "", format!("cannot make an HTTP client: {e}")))?,
            };
            Ok(TokenCache::new(app, Duration::from_secs(300)))
        }
    }
}

#[async_trait::async_trait]
impl Connector for Wix {
    fn processor(&self) -> Processor {
        PROCESSOR
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn check(&self) -> Result<CheckReport, ConnectorError> {
        self.probe().await?;
        Ok(CheckReport {
            ok: true,
            details: vec![format!(
                "site {} answers; contacts, {} form namespace(s) and {} commenting app(s) can be searched",
                self.config.site_id,
                self.config.form_namespaces.len(),
                self.config.comment_app_ids.len()
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
        Ok(AccessSummary {
            found,
            notes: vec![GUEST_COMMENTS.into()],
            ..Default::default()
        })
    }

    async fn plan(&self, _ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        match change {
            Change::Erasure => {
                let mut plan = self.plan_erasure(subject).await?;
                plan.notes.push(GUEST_COMMENTS.into());
                Ok(plan)
            }
            Change::Rectification { changes } => self.plan_rectification(subject, changes).await,
            Change::Objection => self.plan_objection(subject).await,
        }
    }

    async fn execute(&self, call: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
        match call.change {
            Change::Erasure => self.erase_item(call).await,
            Change::Rectification { changes } => self.patch_contact(call, changes).await,
            Change::Objection => self.unsubscribe_item(call).await,
        }
    }
}
