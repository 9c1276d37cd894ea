//! The Microsoft 365 connector: the subject's mail and contacts in the company's Exchange
//! Online mailboxes, through Microsoft Graph with an app-only token (client credentials).
//! Graph's Subject Rights Request API needs delegated permissions and Priva licences, so a
//! background worker goes mailbox by mailbox through the ordinary endpoints instead.
//!
//! Read in order: `config` → `auth` (the app's token) → `client` (Graph plumbing) → `wire`
//! (Graph's JSON) → `search` (mailboxes, mail, contacts) → `reach` (mailboxes that cannot be
//! searched) → `access` → `target` (what a plan item holds) → `erase` → `rectify`.

pub mod access;
pub mod auth;
pub mod client;
pub mod config;
pub mod erase;
pub mod reach;
pub mod rectify;
pub mod search;
pub mod target;
pub mod wire;

use std::time::Duration;

use dsr_connector::{
    AccessSummary, Capabilities, Change, CheckReport, ConfigError, Connector, ConnectorError, Identities, ItemCall,
    ItemOutcome, Plan, Processor, RecordSink, Right, Support, TaskContext,
};

pub use config::{DeleteMode, Microsoft365Config};

use crate::client::{Graph, PROCESSOR};

pub struct Microsoft365 {
    config: Microsoft365Config,
    graph: Graph,
}

impl Microsoft365 {
    /// Checks the section and reads the client secret now, so a key that cannot work is
    /// named at start-up, not in the middle of a request.
    pub fn new(config: Microsoft365Config) -> Result<Microsoft365, ConfigError> {
        config.validate()?;
        let http = dsr_connector::http::http_client(Duration::from_secs(60))
            .map_err(|e| ConfigError::new(PROCESSOR, "", format!("no HTTP client for Graph: {e}")))?;
        let tokens = auth::tokens(&config)?;
        let graph = Graph::new(&config, http, tokens)?;
        Ok(Microsoft365 { config, graph })
    }
}

#[async_trait::async_trait]
impl Connector for Microsoft365 {
    /// Why objection is not served is said here only (`unsupported` quotes it).
    fn capabilities(&self) -> Capabilities {
        let no_consent = "Microsoft 365 holds the company's mail and contacts, not consents or marketing subscriptions: \
             there is nothing there to withdraw (newsletter consent lives in SuperOffice and Wix).";
        Capabilities {
            objection: Support::NotApplicable(no_consent.into()),
            ..Capabilities::all()
        }
    }

    fn processor(&self) -> Processor {
        PROCESSOR
    }

    async fn check(&self) -> Result<CheckReport, ConnectorError> {
        self.probe().await
    }

    async fn access(
        &self,
        _ctx: &TaskContext,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        self.access_of(subject, sink).await
    }

    async fn plan(&self, _ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        match change {
            Change::Objection => Err(self.unsupported(Right::Objection)),
            _ if subject.emails.is_empty() => Ok(Plan {
                notes: vec![search::NO_EMAIL.into()],
                ..Default::default()
            }),
            Change::Erasure => self.plan_erasure(subject).await,
            Change::Rectification { changes } => self.plan_rectification(subject, changes).await,
        }
    }

    async fn execute(&self, call: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
        match call.change {
            Change::Erasure => self.execute_erasure(call.item).await,
            Change::Rectification { changes } => self.execute_patch(call, changes).await,
            Change::Objection => Err(self.unsupported(Right::Objection)),
        }
    }
}
