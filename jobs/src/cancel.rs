//! Cancelling a request: its open tasks end, and what a processor holds to carry out later
//! (a request submitted to an OpenDSR processor) is withdrawn there, each withdrawal an audit
//! event. An erasure cancelled because it was for the wrong person must not go on elsewhere.

use std::time::Duration;

use dsr_connector::{Connector, Processor, TaskContext};

use crate::engine::Connectors;
use crate::ledger::{Ledger, LedgerError};

/// What became of one processor's pending work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub processor: Processor,
    /// What was withdrawn, or why it could not be (dsr's text: an operator must act).
    pub outcome: Result<String, String>,
}

/// Tries per withdrawal when the processor cannot be reached or fails for now.
const TRIES: u32 = 3;

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
        let withdrawal = match connectors.get(processor) {
            Some(connector) => withdraw(ledger, connector.as_ref(), id).await?,
            // Only an OpenDSR processor holds anything to withdraw; say when it could not be asked.
            None if matches!(processor, Processor::OpenDsr(_)) => {
                let why = "no connector for it could be made from the config here: ask the processor to cancel it";
                ledger.record_withdrawal(id, processor, Err(why)).await?;
                Some(Withdrawal {
                    processor,
                    outcome: Err(why.into()),
                })
            }
            None => None,
        };
        withdrawals.extend(withdrawal);
    }
    Ok(withdrawals)
}

/// Withdraws what `connector`'s task of request `id` handed its vendor, trying again a
/// little when the vendor cannot be reached; the outcome is recorded (none when there was
/// nothing to withdraw).
pub async fn withdraw(ledger: &Ledger, connector: &dyn Connector, id: &str) -> Result<Option<Withdrawal>, LedgerError> {
    let processor = connector.processor();
    let generation = ledger.task_retries(id, processor).await?;
    let ctx = TaskContext::new(id, 0, false).with_generation(generation);
    let mut tries = 0;
    let outcome = loop {
        tries += 1;
        match connector.withdraw(&ctx).await {
            Ok(None) => return Ok(None),
            Ok(Some(done)) => break Ok(done),
            Err(e) if e.is_retryable() && tries < TRIES => {
                tokio::time::sleep(Duration::from_secs(u64::from(tries))).await;
            }
            Err(e) => break Err(e.to_string()),
        }
    };
    ledger
        .record_withdrawal(
            id,
            processor,
            outcome.as_ref().map(String::as_str).map_err(String::as_str),
        )
        .await?;
    Ok(Some(Withdrawal { processor, outcome }))
}
