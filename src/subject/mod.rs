//! The subject's side (docs/subject.md): e-mail through `[smtp]`, the codes and links that
//! prove a person owns an address, and the delivery of a finished request's bundle or
//! confirmation by an expiring, audited link. The pages are `crate::server::subject`.

pub mod delivery;
pub mod mail;
pub mod secrets;
pub mod texts;

use crate::config::Config;

/// Whether finished requests are e-mailed to their subject: `[delivery] enabled` with
/// `[smtp]` and `[subject] public_url` set.
pub fn delivers(config: &Config) -> bool {
    config.delivery.enabled && config.smtp.is_some() && config.subject.public_url.is_some()
}

/// `[subject] public_url` + `path` (which starts with `/`).
pub fn public_link(config: &Config, path: &str) -> Option<String> {
    let base = config.subject.public_url.as_ref()?;
    Some(format!("{}{}", base.as_str().trim_end_matches('/'), path))
}
