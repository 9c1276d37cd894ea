//! `dsr user add|list|disable`: the dashboard's operator accounts. Passwords are hashed with
//! Argon2id (the argon2 crate's defaults: 19 MiB, two passes) and never stored or shown.

use std::io::BufRead;
use std::process::ExitCode;

use argon2::password_hash::{PasswordHasher, SaltString};
use dsr_jobs::model::Role;
use serde_json::json;

use crate::cli::UserCommand;
use crate::commands::plans::default_operator;
use crate::config::Config;
use crate::error::{CliError, bad_input};

/// Shortest password taken.
const PASSWORD_MIN: usize = 12;

pub async fn user(config: &Config, what: &UserCommand, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    let by = format!("os:{}", default_operator());
    match what {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let role: Role = role.parse().map_err(bad_input)?;
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
            if !valid_name {
                return Err(bad_input(
                    "an account name is 1 to 64 of a-z, A-Z, 0-9, '.', '_', '-' and '@'",
                ));
            }
            let password = read_password(*password_stdin)?;
            let hash = hash_password(&password)?;
            ledger.add_operator(name, role, &hash, &by).await?;
            if as_json {
                println!("{}", json!({"added": name, "role": role}));
            } else {
                println!("added {name} ({role}); they sign in at dsr serve's /dashboard");
            }
        }
        UserCommand::List => {
            let operators = ledger.operators().await?;
            let now = ledger.now();
            if as_json {
                let list: Vec<_> = operators
                    .iter()
                    .map(|o| {
                        json!({"name": o.name, "role": o.role, "created_at": dsr_jobs::ledger::ts(o.created_at),
                               "disabled_at": o.disabled_at.map(dsr_jobs::ledger::ts),
                               "locked_until": o.locked_until.filter(|t| *t > now).map(dsr_jobs::ledger::ts)})
                    })
                    .collect();
                println!("{}", json!(list));
            } else if operators.is_empty() {
                println!("no accounts: add one with `dsr user add NAME --role approver`");
            } else {
                for o in &operators {
                    let state = match (o.disabled_at, o.locked_until.filter(|t| *t > now)) {
                        (Some(_), _) => "disabled".to_string(),
                        (None, Some(until)) => format!(
                            "locked until {} (five wrong passwords)",
                            until.with_timezone(&config.zone()).format("%H:%M")
                        ),
                        (None, None) => "enabled".to_string(),
                    };
                    println!("{:<24} {:<9} {state}", o.name, o.role.as_str());
                }
            }
        }
        UserCommand::Disable { name } => {
            ledger.disable_operator(name, &by).await?;
            if !as_json {
                println!("disabled {name}; its sessions are ended");
            } else {
                println!("{}", json!({"disabled": name}));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_password(from_stdin: bool) -> Result<String, CliError> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| bad_input(format!("cannot read the password from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("password: ")
            .map_err(|e| bad_input(format!("cannot ask for a password ({e}): use --password-stdin")))?;
        let again = rpassword::prompt_password("again: ")
            .map_err(|e| bad_input(format!("cannot ask for a password ({e}): use --password-stdin")))?;
        if first != again {
            return Err(bad_input("the two passwords differ: run the command again"));
        }
        first
    };
    if password.chars().count() < PASSWORD_MIN {
        return Err(bad_input(format!(
            "a password is at least {PASSWORD_MIN} characters (a passphrase of a few words is best)"
        )));
    }
    Ok(password)
}

pub fn hash_password(password: &str) -> Result<String, CliError> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot make a salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot hash the password: {e}")))
}

/// Whether `password` is the one `hash` was made from (constant time in the hash's check).
pub fn password_matches(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_hash_is_argon2id_salted_and_checks_only_its_password() {
        let a = super::hash_password("correct horse battery").unwrap();
        let b = super::hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(super::password_matches("correct horse battery", &a));
        assert!(!super::password_matches("correct horse battery!", &a));
        assert!(!super::password_matches("correct horse battery", "not a hash"));
    }
}
