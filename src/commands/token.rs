//! `dsr token create|list|revoke`: API tokens for `dsr serve`. A token is printed once, when
//! it is created; the ledger keeps its id, name, scopes and the SHA-256 of its secret.

use std::process::ExitCode;

use dsr_jobs::ledger::tokens::{ApiToken, Scope};
use serde_json::json;

use crate::cli::TokenCommand;
use crate::commands::workers::rfc3339;
use crate::config::Config;
use crate::error::{CliError, bad_input};

pub async fn token(config: &Config, what: &TokenCommand, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    match what {
        TokenCommand::Create { name, scopes } => {
            let scopes = scopes
                .iter()
                .map(|s| s.trim().parse::<Scope>().map_err(bad_input))
                .collect::<Result<Vec<_>, _>>()?;
            let (token, secret) = ledger.create_token(name, &scopes).await?;
            if as_json {
                let mut doc = token_json(&token);
                doc["token"] = json!(secret);
                println!("{doc}");
            } else {
                println!("{secret}");
                eprintln!(
                    "token `{}` created with {}; it is shown only now: keep it in the caller's secret store",
                    token.name,
                    scope_names(&token)
                );
            }
        }
        TokenCommand::List => {
            let tokens = ledger.tokens().await?;
            if as_json {
                let items: Vec<_> = tokens.iter().map(token_json).collect();
                println!("{}", json!({ "tokens": items }));
            } else if tokens.is_empty() {
                println!("no tokens (create one with `dsr token create --name NAME --scope SCOPE`)");
            } else {
                println!(
                    "{:<20}  {:<20}  {:<20}  {:<20}  scopes",
                    "name", "created", "last used", "revoked"
                );
                for t in &tokens {
                    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(rfc3339).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<20}  {:<20}  {:<20}  {:<20}  {}",
                        t.name,
                        rfc3339(t.created_at),
                        when(t.last_used_at),
                        when(t.revoked_at),
                        scope_names(t)
                    );
                }
            }
        }
        TokenCommand::Revoke { name } => {
            let token = ledger.revoke_token(name).await?;
            if as_json {
                println!("{}", token_json(&token));
            } else {
                println!("token `{}` revoked", token.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scope_names(token: &ApiToken) -> String {
    token.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

fn token_json(token: &ApiToken) -> serde_json::Value {
    json!({
        "name": token.name,
        "scopes": token.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "created_at": rfc3339(token.created_at),
        "last_used_at": token.last_used_at.map(rfc3339),
        "revoked_at": token.revoked_at.map(rfc3339),
    })
}
