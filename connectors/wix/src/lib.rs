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

use dsr_connector::http::{TokenCache, VendorClient};
use dsr_connector::{
    AccessSummary, Capabilities, Change, CheckReport, Connector, ConnectorError, Identities, ItemOutcome, Plan,
    PlanItem, Processor, RecordSink, TaskContext,
};

pub use config::WixConfig;

use crate::client::{PROCESSOR, describe_error};

const GUEST_COMMENTS: &str = "Comments posted as a guest (without a member account) are stored under a name and e-mail that Wix's API does not let anyone search: they cannot be found for this request.";

pub struct Wix {
    config: WixConfig,
    api: client::Wix,
}

fn config_error(message: String) -> ConnectorError {
    ConnectorError::Permanent {
        processor: PROCESSOR,
        code: "config".into(),
        message: format!("processors.wix: {message}"),
    }
}

impl Wix {
    pub fn new(config: WixConfig) -> Result<Wix, ConnectorError> {
        config.validate().map_err(config_error)?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "wix-site-id",
            reqwest::header::HeaderValue::from_str(&config.site_id)
                .map_err(|_| config_error("site_id is not a valid header value".into()))?,
        );
        let http = dsr_connector::http::http_client_with_headers(Duration::from_secs(60), headers)
            .map_err(|e| config_error(e.to_string()))?;
        let tokens = match (
            &config.api_key,
            &config.client_id,
            &config.client_secret,
            &config.instance_id,
        ) {
            (Some(key), _, _, _) => TokenCache::new(
                auth::ApiKey(key.resolve().map_err(|e| config_error(format!("api_key: {e}")))?),
                Duration::from_secs(60),
            ),
            (None, Some(id), Some(secret), Some(instance)) => TokenCache::new(
                auth::AppOAuth {
                    token_url: format!("{}/oauth2/token", config.api()),
                    client_id: id.clone(),
                    client_secret: secret
                        .resolve()
                        .map_err(|e| config_error(format!("client_secret: {e}")))?,
                    instance_id: instance.clone(),
                    http: http.clone(),
                },
                Duration::from_secs(300),
            ),
            _ => return Err(config_error("no credentials".into())),
        };
        let client = VendorClient::new(PROCESSOR, http, describe_error).with_tokens(Arc::new(tokens));
        let api = client::Wix {
            client,
            api: config.api().to_string(),
        };
        Ok(Wix { config, api })
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ConnectorError> {
        self.api.post(path, body).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        self.api.get(path).await
    }

    async fn patch<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ConnectorError> {
        self.api.patch(path, body).await
    }

    async fn remove(&self, path: &str) -> Result<bool, ConnectorError> {
        self.api.remove(path).await
    }
}

#[async_trait::async_trait]
impl Connector for Wix {
    fn processor(&self) -> Processor {
        Processor::Wix
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

    async fn execute(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        change: &Change,
        item: &PlanItem,
    ) -> Result<ItemOutcome, ConnectorError> {
        match change {
            Change::Erasure => self.erase_item(item).await,
            Change::Rectification { changes } => self.patch_contact(ctx, subject, changes, item).await,
            Change::Objection => self.unsubscribe_item(item).await,
        }
    }
}
