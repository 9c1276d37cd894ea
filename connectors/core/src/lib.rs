//! The connector API: what every processor connector implements and what the jobs
//! layer relies on. Connectors depend on this crate only; they never know each other.

pub mod connector;
pub mod error;
pub mod http;
pub mod identity;
pub mod keys;
pub mod matching;
pub mod plan;
pub mod processor;
pub mod record;
pub mod secret;

pub use connector::{
    AccessSummary, Capabilities, CheckReport, Connector, DeleteMode, Evidence, FieldChange, ItemCall, RectifyField,
    Retained, Right, Support, TaskContext, UnknownField,
};
pub use error::{ConfigError, ConnectorError, DecodeError, decode, decode_answer};
pub use identity::{Email, Identities, IdentityError, Phone, correct_values};
pub use matching::{IdentityKind, MatchClaim, Refusal, check_claims};
pub use plan::{
    Action, Applied, Change, ItemOutcome, ItemState, Plan, PlanItem, PlanRules, SharedPolicy, Verification, apply,
    check_plan,
};
pub use processor::{Processor, UnknownProcessor};
pub use record::{
    ByteStream, FileMeta, FileOut, FileSlot, MemorySink, Record, RecordSink, SinkError, SlotFile, StoredFile,
    numbered_path, safe_file_name,
};
pub use secret::{SecretError, SecretRef, section_enabled};
