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

impl FromStr for RectifyField {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RectifyField::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            let known: Vec<_> = RectifyField::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown --set field `{s}`: expected one of {}", known.join(", "))
        })
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
}

impl TaskContext {
    pub fn new(request_id: impl Into<String>, attempt: u32, dry_run: bool) -> TaskContext {
        TaskContext {
            request_id: request_id.into(),
            attempt,
            dry_run,
        }
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

fn change_name(change: &Change) -> &'static str {
    match change {
        Change::Erasure => "erasure",
        Change::Rectification { .. } => "rectification",
        Change::Objection => "consent withdrawal",
    }
}

fn not_supported(processor: Processor, right: &str) -> ConnectorError {
    ConnectorError::NotSupported {
        processor: processor.as_str(),
        reason: format!("{} offers no {right} through its API", processor.display_name()),
    }
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
    async fn plan(&self, ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        let _ = (ctx, subject);
        Err(not_supported(self.processor(), change_name(change)))
    }

    /// Makes the one vendor call a checked plan item stands for. Called only for items the
    /// engine checked and did not retain, once per item (a re-delivered execution skips
    /// what is recorded as done).
    async fn execute(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        change: &Change,
        item: &PlanItem,
    ) -> Result<ItemOutcome, ConnectorError> {
        let _ = (ctx, subject, item);
        Err(not_supported(self.processor(), change_name(change)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_fields_parse_and_unknown_ones_are_named() {
        assert_eq!("job_title".parse::<RectifyField>(), Ok(RectifyField::JobTitle));
        let err = "shoe_size".parse::<RectifyField>().unwrap_err();
        assert!(err.contains("shoe_size") && err.contains("given_name"));
    }
}
