//! The error every step of a request's flow returns: the ledger, the queue, the export
//! storage, or input that cannot be processed. It sits below the engine, the flow, the
//! bundle and the confirmation, so none of them depends on another for it.

use crate::ledger::LedgerError;
use crate::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The sweep's schedule (from `[worker] sweep_every`) is not one cron reads.
    #[error("sweep schedule `{expression}`: {reason}")]
    Schedule { expression: String, reason: String },
    /// A worker thread (the scheduler, the bundle writer) stopped before it finished.
    #[error("{what} stopped: {reason}")]
    Stopped { what: &'static str, reason: String },
    /// A request of a kind the change path does not serve reached it.
    #[error("{0} is not a change")]
    NotAChange(crate::model::RequestKind),
    /// What the ledger holds for a task cannot be put into a document (the confirmation).
    #[error("{document}: the evidence of request {request_id}'s {processor} task does not read: {reason}")]
    Evidence {
        document: &'static str,
        request_id: String,
        processor: dsr_connector::Processor,
        reason: String,
    },
    /// A document dsr writes could not be rendered or serialised.
    #[error("{document}: {reason}")]
    Render { document: &'static str, reason: String },
}

impl EngineError {
    /// A code without personal data, for the queue backend and logs.
    pub fn code(&self) -> String {
        match self {
            EngineError::Ledger(e) => format!("ledger:{}", e.kind()),
            EngineError::Queue(_) => "queue".into(),
            EngineError::Storage(e) => format!("storage:{:?}", e.kind()),
            EngineError::Schedule { .. } => "schedule".into(),
            EngineError::Stopped { .. } => "stopped".into(),
            EngineError::NotAChange(_) => "not_a_change".into(),
            EngineError::Evidence { .. } => "evidence".into(),
            EngineError::Render { .. } => "render".into(),
        }
    }

    /// True when the failure is in our infrastructure (exit code 3 for the CLI).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            EngineError::Ledger(LedgerError::Unreachable { .. } | LedgerError::Query(_) | LedgerError::Migrate(_))
                | EngineError::Queue(_)
                | EngineError::Storage(_)
        )
    }
}
