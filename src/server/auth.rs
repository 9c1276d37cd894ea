//! Who may call: `Authorization: Bearer dsr_…` with an API token from `dsr token create`,
//! whose scopes each route checks. An address that presents bad (or no) tokens again and again
//! is answered 429 with `Retry-After` for its failed calls until its window passes; a valid
//! token is always let through (behind a proxy, every caller shares the proxy's address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use dsr_jobs::ledger::tokens::{ApiToken, Scope};

use super::AppState;
use super::problem::Problem;

/// Bad tokens from one address within [`WINDOW`] before it is refused.
pub const FAILURES_ALLOWED: u32 = 5;
/// How long failures count, and how long a refused address waits.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Addresses remembered at most: beyond it, the oldest window is forgotten.
const REMEMBERED: usize = 10_000;

/// Failed authentications per address.
#[derive(Clone, Default)]
pub struct Lockout(Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>);

impl Lockout {
    /// How long `ip` must still wait, if it is locked out.
    pub(super) fn wait(&self, ip: IpAddr) -> Option<Duration> {
        let failures = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, since) = failures.get(&ip)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (*count >= FAILURES_ALLOWED).then_some(left)
    }

    pub(super) fn failed(&self, ip: IpAddr) {
        let mut failures = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= REMEMBERED && !failures.contains_key(&ip) {
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if failures.len() >= REMEMBERED
                && let Some(oldest) = failures.iter().min_by_key(|(_, (_, since))| *since).map(|(ip, _)| *ip)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// The token a call came with (authenticated; its scopes not yet checked).
pub struct Caller(pub ApiToken);

impl Caller {
    /// The token, if it has `scope`; else 403 naming the scope.
    pub fn require(&self, scope: Scope) -> Result<&ApiToken, Problem> {
        if self.0.allows(scope) {
            Ok(&self.0)
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "missing-scope",
                format!(
                    "token `{}` lacks the scope {scope}: create a token with --scope {scope}",
                    self.0.name
                ),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, Problem> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<super::tls::Peer>>()
            .map(|c| c.0.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme's name is case-insensitive (RFC 9110, 11.1).
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        // A valid token is never refused: behind a proxy every caller shares its address,
        // and one caller's bad tokens must not lock the others out.
        let token = match presented {
            Some(presented) => state.engine.ledger().authenticate(presented).await?,
            None => None,
        };
        if let Some(token) = token {
            return Ok(Caller(token));
        }
        if let Some(left) = state.lockout.wait(ip) {
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-failures",
                format!(
                    "{FAILURES_ALLOWED} calls from this address came with a bad token; try again in {} s",
                    left.as_secs().max(1)
                ),
            );
            problem.retry_after = Some(left.as_secs().max(1));
            return Err(problem);
        }
        state.lockout.failed(ip);
        Err(unauthorized(match presented {
            None => "send the API token as `Authorization: Bearer dsr_…`",
            Some(_) => "the token is unknown or revoked: create one with `dsr token create`",
        }))
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_after_repeated_failures_only() {
        let lockout = Lockout::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..FAILURES_ALLOWED - 1 {
            lockout.failed(a);
        }
        assert!(lockout.wait(a).is_none());
        lockout.failed(a);
        let left = lockout.wait(a).expect("locked out");
        assert!(left <= WINDOW && left > WINDOW - Duration::from_secs(60));
        assert!(lockout.wait(b).is_none(), "another address is not");
    }
}
