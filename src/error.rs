//! How a command fails, and the exit code each failure maps to.

use std::process::ExitCode;

use dsr_jobs::{EngineError, LedgerError};

/// 2: bad input or config, nothing written. 3: ledger, queue or storage unreachable.
/// 1: anything else (and a request that did not complete).
#[derive(Debug)]
pub enum CliError {
    BadInput(String),
    Unreachable(String),
    Failed(anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::BadInput(_) => ExitCode::from(2),
            CliError::Unreachable(_) => ExitCode::from(3),
            CliError::Failed(_) => ExitCode::from(1),
        }
    }

    pub fn message(&self) -> String {
        match self {
            CliError::BadInput(m) => format!("error: {m}"),
            CliError::Unreachable(m) => format!("error: {m}"),
            CliError::Failed(e) => format!("error: {e:#}"),
        }
    }
}

pub fn bad_input(message: impl std::fmt::Display) -> CliError {
    CliError::BadInput(message.to_string())
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Ledger(l) => l.into(),
            e if e.is_unreachable() => CliError::Unreachable(e.to_string()),
            e => CliError::Failed(e.into()),
        }
    }
}

impl From<LedgerError> for CliError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound(_) | LedgerError::Refused(_) | LedgerError::Url(_) => {
                CliError::BadInput(e.to_string())
            }
            LedgerError::Unreachable { .. } | LedgerError::Migrate(_) | LedgerError::Query(_) => {
                CliError::Unreachable(e.to_string())
            }
            LedgerError::Corrupt(_) => CliError::Failed(e.into()),
        }
    }
}

impl From<dsr_jobs::QueueError> for CliError {
    fn from(e: dsr_jobs::QueueError) -> Self {
        match e {
            dsr_jobs::QueueError::Url(_) => CliError::BadInput(e.to_string()),
            e => CliError::Unreachable(e.to_string()),
        }
    }
}

/// A config that cannot work is the operator's to change: exit 2, naming the key.
impl From<crate::config::ConfigError> for CliError {
    fn from(e: crate::config::ConfigError) -> Self {
        CliError::BadInput(e.to_string())
    }
}

impl From<dsr_connector::ConfigError> for CliError {
    fn from(e: dsr_connector::ConfigError) -> Self {
        crate::config::ConfigError::from(e).into()
    }
}
