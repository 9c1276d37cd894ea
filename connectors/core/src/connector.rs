//! The one trait every processor connector implements. It is small on purpose: what the
//! vendor can do for each right, records streamed into a sink, errors already classified.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::plan::{Change, ItemOutcome, Plan, PlanItem};
use crate::{ConnectorError, Identities, Processor, RecordSink};

/// The data-subject rights a connector may serve (GDPR Articles 15–21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    Access,
    Erasure,
    Rectification,
    Objection,
}

/// Whether a connector serves a right, and if not, why (shown to operator and subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Supported,
    NotApplicable(String),
}

/// What one connector can do, per right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub access: Support,
    pub erasure: Support,
    pub rectification: Support,
    pub objection: Support,
}

impl Capabilities {
    pub fn all() -> Self {
        Capabilities {
            access: Support::Supported,
            erasure: Support::Supported,
            rectification: Support::Supported,
            objection: Support::Supported,
        }
    }

    pub fn for_right(&self, right: Right) -> &Support {
        match right {
            Right::Access => &self.access,
            Right::Erasure => &self.erasure,
            Right::Rectification => &self.rectification,
            Right::Objection => &self.objection,
        }
    }
}

/// How a connector deletes where the vendor offers a choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// Gone from every view at once (Graph `permanentDelete`, Gmail `messages.delete`).
    #[default]
    Hard,
    /// To the vendor's trash, purged later by its retention (Deleted Items, Gmail's Trash).
    Soft,
}

/// A field a rectification request may set (`--set field=value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RectifyField {
    GivenName,
    FamilyName,
    DisplayName,
    /// Replaces the address given with `--email`.
    Email,
    /// The mobile number where a vendor distinguishes.
    Phone,
    Company,
    JobTitle,
    Address,
}

impl RectifyField {
    pub const ALL: [RectifyField; 8] = [
        RectifyField::GivenName,
        RectifyField::FamilyName,
        RectifyField::DisplayName,
        RectifyField::Email,
        RectifyField::Phone,
        RectifyField::Company,
        RectifyField::JobTitle,
        RectifyField::Address,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RectifyField::GivenName => "given_name",
            RectifyField::FamilyName => "family_name",
            RectifyField::DisplayName => "display_name",
            RectifyField::Email => "email",
            RectifyField::Phone => "phone",
            RectifyField::Company => "company",
            RectifyField::JobTitle => "job_title",
            RectifyField::Address => "address",
        }
    }
}

impl fmt::Display for RectifyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--set` field dsr does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown --set field `{0}`: expected one of given_name, family_name, display_name, email, phone, company, job_title, address"
)]
pub struct UnknownField(pub String);

impl FromStr for RectifyField {
    type Err = UnknownField;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RectifyField::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownField(s.to_string()))
    }
}

/// One change a rectification asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: RectifyField,
    pub value: String,
}

/// Which request, which attempt, and whether to change anything.
#[derive(Debug, Clone, Default)]
pub struct TaskContext {
    pub request_id: String,
    /// 1 for the first attempt at this task.
    pub attempt: u32,
    /// Plan only: change nothing (the plan is the preview).
    pub dry_run: bool,
    /// How many times an operator sent this task back (`dsr retry`): a connector whose
    /// vendor keeps requests of its own (OpenDSR) makes a new one for each.
    pub generation: u32,
    /// When the subject asked (the request's receipt), where known.
    pub asked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// An access request that is a portability request (Art. 20): for a vendor that tells the
    /// two apart (OpenDSR).
    pub portability: bool,
}

impl TaskContext {
    pub fn new(request_id: impl Into<String>, attempt: u32, dry_run: bool) -> TaskContext {
        TaskContext {
            request_id: request_id.into(),
            attempt,
            dry_run,
            generation: 0,
            asked_at: None,
            portability: false,
        }
    }

    /// When the subject asked, and whether it is a portability request.
    pub fn asked(mut self, at: chrono::DateTime<chrono::Utc>, portability: bool) -> TaskContext {
        self.asked_at = Some(at);
        self.portability = portability;
        self
    }

    pub fn with_generation(mut self, generation: u32) -> TaskContext {
        self.generation = generation;
        self
    }
}

/// Proof of what a vendor did: ids, timestamps, its own receipts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: String,
    pub detail: serde_json::Value,
}

/// Data kept on purpose, with the reason and its legal basis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retained {
    pub category: String,
    pub count: u64,
    pub reason: String,
    pub legal_basis: String,
}

/// What an access run found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessSummary {
    pub found: u64,
    /// Plain notes for the subject (e.g. "Analytics offers no per-user export").
    pub notes: Vec<String>,
    /// For the operator only (status, log, doctor), never the subject's bundle: what was
    /// skipped that concerns other people (a colleague's mailbox that could not be searched).
    #[serde(default)]
    pub operator_notes: Vec<String>,
}

/// The result of `check`: whether credentials and permissions work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub ok: bool,
    pub details: Vec<String>,
}

/// One planned item to carry out: the call `Connector::execute` receives.
#[derive(Debug, Clone, Copy)]
pub struct ItemCall<'a> {
    pub ctx: &'a TaskContext,
    pub subject: &'a Identities,
    pub change: &'a Change,
    pub item: &'a PlanItem,
}

/// Our code for one processor. Every connector is a peer with this shape.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    fn processor(&self) -> Processor;

    fn capabilities(&self) -> Capabilities;

    /// Whether the configured credentials and permissions work, with what to fix.
    async fn check(&self) -> Result<CheckReport, ConnectorError>;

    /// Finds the subject's records and streams them into `sink`.
    async fn access(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError>;

    /// What an erasure, rectification or objection would do, item by item, changing
    /// nothing (see `crate::plan`). The engine checks, stores and, unless it is a dry run,
    /// executes it; planning again afterwards is the verification, so a plan made after
    /// the change lists what remains (rectified fields and withdrawn consents as `Keep`
    /// items with their current value in `before`).
    ///
    /// The engine asks only for changes `capabilities` supports; a connector answers any
    /// other with `self.unsupported(right)`, so why it cannot is said once, there.
    async fn plan(&self, ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError>;

    /// Makes the one vendor call a checked plan item stands for. Called only for items the
    /// engine checked and did not retain, once per item (a re-delivered execution skips
    /// what is recorded as done).
    async fn execute(&self, call: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError>;

    /// Withdraws what this task handed the vendor to carry out later, now that its request
    /// is cancelled (an OpenDSR processor is told to cancel its request). Most vendors hold
    /// nothing of the kind: `Ok(None)`, the default. `Some(text)` says what was withdrawn.
    async fn withdraw(&self, ctx: &TaskContext) -> Result<Option<String>, ConnectorError> {
        let _ = ctx;
        Ok(None)
    }

    /// The error for a right this connector does not serve, with the reason its
    /// capabilities give.
    fn unsupported(&self, right: Right) -> ConnectorError {
        let reason = match self.capabilities().for_right(right) {
            Support::NotApplicable(reason) => reason.clone(),
            Support::Supported => format!(
                "{} was asked for something it cannot do",
                self.processor().display_name()
            ),
        };
        ConnectorError::NotSupported {
            processor: self.processor(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct MailOnly;

    #[async_trait::async_trait]
    impl Connector for MailOnly {
        fn processor(&self) -> Processor {
            Processor::Microsoft365
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                objection: Support::NotApplicable("no consents are kept there".into()),
                ..Capabilities::all()
            }
        }
        async fn check(&self) -> Result<CheckReport, ConnectorError> {
            Ok(CheckReport::default())
        }
        async fn access(
            &self,
            _: &TaskContext,
            _: &Identities,
            _: &mut dyn RecordSink,
        ) -> Result<AccessSummary, ConnectorError> {
            Ok(AccessSummary::default())
        }
        async fn plan(&self, _: &TaskContext, _: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
            Err(self.unsupported(change.right()))
        }
        async fn execute(&self, call: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
            Err(self.unsupported(call.change.right()))
        }
    }

    #[tokio::test]
    async fn an_unsupported_right_is_refused_with_the_reason_its_capabilities_give() {
        let err = MailOnly
            .plan(&TaskContext::default(), &Identities::default(), &Change::Objection)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "not_supported");
        assert_eq!(
            err.to_string(),
            "microsoft365 cannot do this: no consents are kept there"
        );
    }

    #[test]
    fn set_fields_parse_and_unknown_ones_are_named() {
        assert_eq!("job_title".parse::<RectifyField>(), Ok(RectifyField::JobTitle));
        let err = "shoe_size".parse::<RectifyField>().unwrap_err().to_string();
        assert!(err.contains("shoe_size") && err.contains("given_name"));
        for field in RectifyField::ALL {
            assert!(err.contains(field.as_str()), "{field} missing from {err}");
        }
    }
}
