//! The Microsoft 365 connector: the subject's mail and contacts in the company's Exchange
//! Online mailboxes, through Microsoft Graph with an app-only token (client credentials).
//! Graph's Subject Rights Request API needs delegated permissions and Priva licences, so a
//! background worker goes mailbox by mailbox through the ordinary endpoints instead.
//!
//! Read in order: `config` → `client` (Graph plumbing) → `wire` (Graph's JSON) → `access` →
//! `target` (what a plan item holds) → `erase` → `rectify`.

pub mod access;
pub mod client;
pub mod config;
pub mod erase;
pub mod reach;
pub mod rectify;
pub mod target;
pub mod wire;

use dsr_connector::{
    AccessSummary, Capabilities, Change, CheckReport, Connector, ConnectorError, Identities, ItemOutcome, Plan,
    PlanItem, Processor, RecordSink, Support, TaskContext,
};

pub use config::{DeleteMode, Microsoft365Config};

use crate::client::{Graph, PROCESSOR, needs_permission};
use crate::wire::{Contact, MailFolder, ODataPage};

const NO_CONSENT: &str = "Microsoft 365 holds the company's mail and contacts, not consents or marketing subscriptions: there is nothing there to withdraw (newsletter consent lives in SuperOffice and Wix).";

const NO_EMAIL: &str = "Mail and contacts are found by e-mail address, and none was given.";

fn no_consent() -> ConnectorError {
    ConnectorError::NotSupported {
        processor: PROCESSOR,
        reason: NO_CONSENT.into(),
    }
}

/// How many mailboxes `dsr doctor` opens.
const CHECKED_MAILBOXES: usize = 50;

pub struct Microsoft365 {
    config: Microsoft365Config,
    graph: Graph,
}

impl Microsoft365 {
    /// Builds the connector; resolves the client secret now so a missing one is reported
    /// at start-up, not mid-request.
    pub fn new(config: Microsoft365Config) -> Result<Microsoft365, ConnectorError> {
        let secret = config.client_secret.resolve().map_err(|e| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "config".into(),
            message: format!("processors.microsoft365.client_secret: {e}"),
        })?;
        let graph = Graph::new(&config, secret)?;
        Ok(Microsoft365 { config, graph })
    }
}

#[async_trait::async_trait]
impl Connector for Microsoft365 {
    fn processor(&self) -> Processor {
        Processor::Microsoft365
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            access: Support::Supported,
            erasure: Support::Supported,
            rectification: Support::Supported,
            objection: Support::NotApplicable(NO_CONSENT.into()),
        }
    }

    async fn check(&self) -> Result<CheckReport, ConnectorError> {
        let mut details = Vec::new();
        let mailboxes = self.mailboxes().await?;
        details.push(format!("token issued; {} mailbox(es) to search", mailboxes.len()));
        // Each mailbox's inbox, as a request would first reach it (a large tenant: the first
        // CHECKED_MAILBOXES), so users without a mailbox and fenced mailboxes are named here.
        let mut reach = reach::Reach::new(self.config.all_mailboxes());
        for mailbox in mailboxes.iter().take(CHECKED_MAILBOXES) {
            let url = self
                .graph
                .url(&["users", &mailbox.key, "mailFolders", "inbox"], &[("$select", "id")]);
            let first = self
                .graph
                .get::<MailFolder>(&mailbox.key, url)
                .await
                .map_err(|e| needs_permission(e, "Mail.ReadWrite", "read mail"));
            reach.admit(mailbox, first)?;
        }
        reach.finish()?;
        details.extend(reach.operator_notes());
        if let Some(first) = reach.searched.first() {
            let url = self.graph.url(&["users", &first.key, "contacts"], &[("$top", "1")]);
            // Read as dsr reads contacts, so a contact of another shape shows here first.
            self.graph
                .get::<ODataPage<Contact>>(&first.key, url)
                .await
                .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "read contacts"))?;
            details.push(format!(
                "mail and contacts readable ({} of {} mailbox(es) checked)",
                reach.searched.len(),
                mailboxes.len().min(CHECKED_MAILBOXES)
            ));
        }
        details.push(access::NO_ARCHIVE.into());
        Ok(CheckReport { ok: true, details })
    }

    async fn access(
        &self,
        _ctx: &TaskContext,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        let mut notes = Vec::new();
        if subject.emails.is_empty() {
            notes.push(NO_EMAIL.into());
            return Ok(AccessSummary {
                found: 0,
                notes,
                ..Default::default()
            });
        }
        let (found, reach) = self.export(subject, sink, &mut notes).await?;
        notes.extend(reach.subject_note());
        notes.push(access::NO_ARCHIVE.into());
        Ok(AccessSummary {
            found,
            notes,
            operator_notes: reach.operator_notes(),
        })
    }

    async fn plan(&self, _ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        if *change == Change::Objection {
            return Err(no_consent());
        }
        if subject.emails.is_empty() {
            return Ok(Plan {
                notes: vec![NO_EMAIL.into()],
                ..Default::default()
            });
        }
        match change {
            Change::Erasure => self.plan_erasure(subject).await,
            Change::Rectification { changes } => self.plan_rectification(subject, changes).await,
            Change::Objection => Err(no_consent()),
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
            Change::Erasure => self.execute_erasure(item).await,
            Change::Rectification { changes } => self.execute_patch(ctx, subject, changes, item).await,
            Change::Objection => Err(no_consent()),
        }
    }
}
