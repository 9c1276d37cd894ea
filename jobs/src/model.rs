//! The request model: what the subject asked, and the life cycle of a request and of each
//! of its tasks (one request at one processor).

use chrono::{DateTime, Utc};
use dsr_connector::{FieldChange, Identities, Processor, Right};
use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

/// A name that is none of an enum's (`unknown request kind `deletion`: expected one of …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`: expected one of {}", expected.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: Vec<&'static str>,
}

/// `as_str`, the list of all (`ALL`) and the error for a name that is none of them, over
/// strum's derives. Each enum derives `Display`, `EnumString`, `IntoStaticStr` and
/// `VariantArray` with `serialize_all = "snake_case"`, the same names serde uses.
macro_rules! named_enum {
    ($ty:ident, $what:literal) => {
        impl $ty {
            pub const ALL: &'static [$ty] = <$ty as strum::VariantArray>::VARIANTS;
            pub fn as_str(self) -> &'static str {
                self.into()
            }
            fn unknown(given: &str) -> UnknownName {
                UnknownName {
                    what: $what,
                    given: given.to_string(),
                    expected: $ty::ALL.iter().map(|v| v.as_str()).collect(),
                }
            }
        }
    };
}

/// What the subject asked for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case", parse_err_ty = UnknownName, parse_err_fn = RequestKind::unknown)]
pub enum RequestKind {
    /// Art. 15: a copy of their data.
    Access,
    /// Art. 17.
    Erasure,
    /// Art. 16.
    Rectification,
    /// Art. 7(3) and 21: withdraw consent, stop direct marketing.
    Objection,
    /// Art. 20: the data they provided, machine-readable.
    Portability,
}
named_enum!(RequestKind, "request kind");

impl RequestKind {
    /// The connector right that serves this kind (portability is access, filtered).
    pub fn right(self) -> Right {
        match self {
            RequestKind::Access | RequestKind::Portability => Right::Access,
            RequestKind::Erasure => Right::Erasure,
            RequestKind::Rectification => Right::Rectification,
            RequestKind::Objection => Right::Objection,
        }
    }

    /// Whether the request ends in a bundle (else in a confirmation).
    pub fn exports(self) -> bool {
        matches!(self, RequestKind::Access | RequestKind::Portability)
    }

    /// Whether the request changes data at the processors (so `--dry-run` applies).
    pub fn changes_data(self) -> bool {
        !self.exports()
    }
}

/// Language of subject-facing texts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case", parse_err_ty = UnknownName, parse_err_fn = Lang::unknown)]
pub enum Lang {
    Nb,
    En,
}
named_enum!(Lang, "language");

/// What a dashboard account may do: viewers read, operators also act on requests (retry,
/// cancel, extend), approvers also approve and reject plans.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case", parse_err_ty = UnknownName, parse_err_fn = Role::unknown)]
pub enum Role {
    Viewer,
    Operator,
    Approver,
}
named_enum!(Role, "role");

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case", parse_err_ty = UnknownName, parse_err_fn = RequestStatus::unknown)]
pub enum RequestStatus {
    Received,
    InProgress,
    /// Its change plans are made and wait for an operator (`dsr approve` or `dsr reject`).
    AwaitingApproval,
    Completed,
    PartiallyCompleted,
    Failed,
    Cancelled,
    /// An operator refused its plans (`dsr reject`): nothing was changed.
    Rejected,
}
named_enum!(RequestStatus, "request status");

impl RequestStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RequestStatus::Completed
                | RequestStatus::PartiallyCompleted
                | RequestStatus::Failed
                | RequestStatus::Cancelled
                | RequestStatus::Rejected
        )
    }

    /// The statuses that have ended, as an SQL list (`status NOT IN (…)`).
    pub const TERMINAL_SQL: &'static str = "('completed', 'partially_completed', 'failed', 'cancelled', 'rejected')";

    /// The life cycle: received → in_progress → completed | partially_completed | failed;
    /// in_progress ⇄ awaiting_approval → rejected when a plan needs an operator; cancelled
    /// from any state that is not yet terminal.
    pub fn can_become(self, next: RequestStatus) -> bool {
        use RequestStatus::*;
        matches!(
            (self, next),
            (Received, InProgress)
                | (InProgress, Completed | PartiallyCompleted | Failed | AwaitingApproval)
                | (AwaitingApproval, InProgress | Rejected)
                | (Received | InProgress | AwaitingApproval, Cancelled)
        )
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case", parse_err_ty = UnknownName, parse_err_fn = TaskStatus::unknown)]
pub enum TaskStatus {
    Pending,
    Running,
    Retrying,
    /// Its plan is made and waits for approval.
    Planned,
    Succeeded,
    Failed,
    NotApplicable,
    Cancelled,
}
named_enum!(TaskStatus, "task status");

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::NotApplicable | TaskStatus::Cancelled
        )
    }

    /// pending → running → succeeded | failed | not_applicable | retrying;
    /// retrying → running (or failed when attempts run out); a task whose worker died while
    /// running is taken again (running → running); anything not terminal may be cancelled;
    /// `dsr retry` sends a failed task back to pending.
    pub fn can_become(self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        match (self, next) {
            (Pending | Retrying | Running, Running) => true,
            (Running, Succeeded | Failed | NotApplicable | Retrying | Planned) => true,
            (Planned, Pending) => true,
            (Pending | Retrying, Failed | NotApplicable) => true,
            (Failed, Pending) => true,
            (s, Cancelled) => !s.is_terminal(),
            _ => false,
        }
    }
}

/// How a succeeded task ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case", parse_err_ty = UnknownName, parse_err_fn = Outcome::unknown)]
pub enum Outcome {
    Done,
    NothingFound,
    PartlyRetained,
}
named_enum!(Outcome, "outcome");

/// A request as the operator submitted it, before it is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewRequest {
    pub kind: RequestKind,
    pub identities: Identities,
    pub changes: Vec<FieldChange>,
    pub lang: Lang,
    pub dry_run: bool,
    /// The processors to reach; the configured ones unless narrowed.
    pub processors: Vec<Processor>,
    pub received_at: DateTime<Utc>,
    /// How the subject's identity was checked (`--verified-by`, the API's field, or the
    /// form's proof of the address).
    pub verified_by: Option<String>,
    /// When the subject proved the address (requests from the form).
    pub verified_at: Option<DateTime<Utc>>,
}

/// A stored request.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub kind: RequestKind,
    pub status: RequestStatus,
    pub identities: Identities,
    pub changes: Vec<FieldChange>,
    pub lang: Lang,
    pub dry_run: bool,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub extended_months: u32,
    pub extension_reason: Option<String>,
    pub bundle: Option<String>,
    pub confirmation: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    /// SHA-256 of the bundle's manifest, to tell the bundle from a forgery.
    pub bundle_sha256: Option<String>,
    /// SHA-256 of the confirmation's JSON, as written.
    pub confirmation_sha256: Option<String>,
    /// When the retention job deleted the bundle or confirmation.
    pub exports_expired_at: Option<DateTime<Utc>>,
    /// When the identities and changes were replaced by keyed hashes.
    pub pseudonymised_at: Option<DateTime<Utc>>,
    /// Why the bundle or confirmation could not be written yet (retried every sweep).
    pub finalize_error: Option<String>,
    /// Its plans wait for an operator's approval whatever the company's rules say (it
    /// searches for an identifier nobody proved).
    pub approval_required: bool,
}

/// One request at one processor, as the ledger holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub request_id: String,
    pub processor: Processor,
    pub status: TaskStatus,
    pub attempts: u32,
    pub outcome: Option<Outcome>,
    pub found: u64,
    pub changed: u64,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub evidence: serde_json::Value,
    pub spool: Option<String>,
    pub next_retry_at: Option<DateTime<Utc>>,
}

impl Request {
    /// A request as received at `received_at` and being worked on, due the same moment:
    /// nothing written, extended or decided yet (for benchmarks and tests that need one
    /// without a ledger).
    pub fn received(
        id: &str,
        kind: RequestKind,
        identities: Identities,
        lang: Lang,
        received_at: DateTime<Utc>,
    ) -> Request {
        Request {
            id: id.to_string(),
            kind,
            status: RequestStatus::InProgress,
            identities,
            changes: Vec::new(),
            lang,
            dry_run: false,
            received_at,
            due_at: received_at,
            extended_months: 0,
            extension_reason: None,
            bundle: None,
            confirmation: None,
            finished_at: None,
            bundle_sha256: None,
            confirmation_sha256: None,
            exports_expired_at: None,
            pseudonymised_at: None,
            finalize_error: None,
            approval_required: false,
        }
    }
}

impl Task {
    /// A task in `status` after one attempt, with nothing found or recorded yet.
    pub fn attempted(request_id: &str, processor: Processor, status: TaskStatus) -> Task {
        Task {
            request_id: request_id.to_string(),
            processor,
            status,
            attempts: 1,
            outcome: None,
            found: 0,
            changed: 0,
            reason: None,
            error: None,
            evidence: serde_json::Value::Null,
            spool: None,
            next_retry_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_life_cycle_allows_only_forward_moves() {
        use RequestStatus::*;
        assert!(Received.can_become(InProgress));
        assert!(InProgress.can_become(PartiallyCompleted));
        assert!(Received.can_become(Cancelled));
        assert!(!Received.can_become(Completed), "must pass through in_progress");
        assert!(!Completed.can_become(InProgress));
        assert!(!Cancelled.can_become(InProgress));
        assert!(!Failed.can_become(Cancelled));
        assert!(InProgress.can_become(AwaitingApproval), "plans made, approval required");
        assert!(AwaitingApproval.can_become(InProgress) && AwaitingApproval.can_become(Rejected));
        assert!(!Received.can_become(AwaitingApproval), "plans are made in progress");
        assert!(Rejected.is_terminal() && !Rejected.can_become(InProgress));
        for s in RequestStatus::ALL {
            assert_eq!(s.as_str().parse::<RequestStatus>(), Ok(*s));
        }
    }

    /// The names are stored in the ledger and typed on the command line: strum must produce
    /// exactly these, the same as serde, and refuse anything else naming the allowed ones.
    #[test]
    fn names_are_the_stored_ones_and_agree_with_serde() {
        fn check<T>(expected: &[&str])
        where
            T: Copy
                + std::fmt::Display
                + std::str::FromStr<Err = UnknownName>
                + Serialize
                + PartialEq
                + std::fmt::Debug,
            T: strum::VariantArray + Into<&'static str>,
        {
            let names: Vec<&str> = T::VARIANTS.iter().map(|v| (*v).into()).collect();
            assert_eq!(names, expected);
            for v in T::VARIANTS {
                let name: &str = (*v).into();
                assert_eq!(v.to_string(), name);
                assert_eq!(serde_json::to_string(v).unwrap(), format!("\"{name}\""));
                assert_eq!(name.parse::<T>().ok(), Some(*v));
            }
            let err = "Nope".parse::<T>().unwrap_err();
            assert_eq!(err.given, "Nope");
            assert_eq!(err.expected, expected);
            assert!(err.to_string().contains(&expected.join(", ")), "{err}");
        }
        check::<RequestKind>(&["access", "erasure", "rectification", "objection", "portability"]);
        check::<Lang>(&["nb", "en"]);
        check::<RequestStatus>(&[
            "received",
            "in_progress",
            "awaiting_approval",
            "completed",
            "partially_completed",
            "failed",
            "cancelled",
            "rejected",
        ]);
        check::<TaskStatus>(&[
            "pending",
            "running",
            "retrying",
            "planned",
            "succeeded",
            "failed",
            "not_applicable",
            "cancelled",
        ]);
        check::<Outcome>(&["done", "nothing_found", "partly_retained"]);
        assert!("Access".parse::<RequestKind>().is_err(), "names are exact");
        assert_eq!(RequestKind::ALL, RequestKind::VARIANTS);
    }

    #[test]
    fn task_life_cycle_allows_only_forward_moves() {
        use TaskStatus::*;
        assert!(Pending.can_become(Running));
        assert!(Running.can_become(Retrying));
        assert!(Retrying.can_become(Running));
        assert!(Failed.can_become(Pending), "dsr retry");
        assert!(
            Running.can_become(Planned) && Planned.can_become(Pending),
            "approved plans run"
        );
        assert!(!Planned.is_terminal() && Planned.can_become(Cancelled));
        assert!(!Succeeded.can_become(Running), "a re-delivered task must not run again");
        assert!(!Succeeded.can_become(Cancelled));
        assert!(!NotApplicable.can_become(Pending));
        assert!(Running.can_become(Cancelled));
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let err = "deletion".parse::<RequestKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown request kind `deletion`: expected one of access, erasure, rectification, objection, portability"
        );
        assert_eq!("portability".parse::<RequestKind>().unwrap().right(), Right::Access);
    }
}
