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
    #[error("{0}")]
    Invalid(String),
}

impl EngineError {
    /// A code without personal data, for the queue backend and logs.
    pub fn code(&self) -> String {
        match self {
            EngineError::Ledger(e) => format!("ledger:{}", e.kind()),
            EngineError::Queue(_) => "queue".into(),
            EngineError::Storage(e) => format!("storage:{:?}", e.kind()),
            EngineError::Invalid(_) => "invalid".into(),
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
