//! Cancelling a request: its open tasks end, and what a processor holds to carry out later
//! (a request submitted to an OpenDSR processor) is withdrawn there, each withdrawal an audit
//! event. An erasure cancelled because it was for the wrong person must not go on elsewhere.

use dsr_connector::{Processor, TaskContext};

use crate::engine::Connectors;
use crate::ledger::{Ledger, LedgerError};

/// What became of one processor's pending work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub processor: Processor,
    /// What was withdrawn, or why it could not be (dsr's text: an operator must act).
    pub outcome: Result<String, String>,
}

/// Cancels request `id` (recording `by`), then withdraws at each processor whose task was
/// still open. The cancellation stands whatever the processors answer.
pub async fn cancel(
    ledger: &Ledger,
    connectors: &Connectors,
    id: &str,
    by: &str,
) -> Result<Vec<Withdrawal>, LedgerError> {
    let open: Vec<Processor> = ledger
        .tasks(id)
        .await?
        .into_iter()
        .filter(|t| !t.status.is_terminal())
        .map(|t| t.processor)
        .collect();
    ledger.cancel(id, by).await?;
    let mut withdrawals = Vec::new();
    for processor in open {
        let Some(connector) = connectors.get(processor) else {
            continue;
        };
        let generation = ledger.task_retries(id, processor).await?;
        let ctx = TaskContext::new(id, 0, false).with_generation(generation);
        let outcome = match connector.withdraw(&ctx).await {
            Ok(None) => continue,
            Ok(Some(done)) => Ok(done),
            Err(e) => Err(e.to_string()),
        };
        ledger
            .record_withdrawal(
                id,
                processor,
                outcome.as_ref().map(String::as_str).map_err(String::as_str),
            )
            .await?;
        withdrawals.push(Withdrawal { processor, outcome });
    }
    Ok(withdrawals)
}
