//! API tokens for `dsr serve`: each has a public id, a name, scopes, and a secret of which the
//! ledger keeps only the SHA-256. A token is shown once, as `dsr_<id>_<secret>`; presented, it
//! is looked up by its id and its secret's hash compared in constant time.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::rows::{parse_opt_ts, parse_ts, ts};
use super::{Ledger, LedgerError, Result};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    RequestsRead,
    RequestsWrite,
    RequestsApprove,
    AuditRead,
    MetricsRead,
    /// Submit, read and cancel requests through the OpenDSR routes (as a controller).
    OpendsrSubmit,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::RequestsRead,
        Scope::RequestsWrite,
        Scope::RequestsApprove,
        Scope::AuditRead,
        Scope::MetricsRead,
        Scope::OpendsrSubmit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RequestsRead => "requests:read",
            Scope::RequestsWrite => "requests:write",
            Scope::RequestsApprove => "requests:approve",
            Scope::AuditRead => "audit:read",
            Scope::MetricsRead => "metrics:read",
            Scope::OpendsrSubmit => "opendsr:submit",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Scope, String> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown scope `{s}`: use {}", names.join(", "))
        })
    }
}

/// A token as the ledger holds it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn allows(&self, scope: Scope) -> bool {
        self.revoked_at.is_none() && self.scopes.contains(&scope)
    }
}

/// What `dsr_<id>_<secret>` is made of: 8 random bytes of id, 32 of secret, in hex.
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const PREFIX: &str = "dsr_";

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equal, looking at every byte whatever the first difference (the hashes are of equal
/// length, so only their content could leak through timing).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The id and secret of a presented token, if it has the token's shape.
fn split(presented: &str) -> Option<(&str, &str)> {
    let (id, secret) = presented.strip_prefix(PREFIX)?.split_once('_')?;
    let hex_of = |s: &str, bytes: usize| s.len() == 2 * bytes && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(id, ID_BYTES) && hex_of(secret, SECRET_BYTES)).then_some((id, secret))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

impl Ledger {
    /// Creates a token named `name` with `scopes`; returns it and the whole token to show
    /// once (`dsr_<id>_<secret>`), which the ledger does not keep.
    pub async fn create_token(&self, name: &str, scopes: &[Scope]) -> Result<(ApiToken, String)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(LedgerError::Refused(
                "a token's name must be 1 to 64 printable characters".into(),
            ));
        }
        if scopes.is_empty() {
            return Err(LedgerError::Refused("a token needs at least one scope".into()));
        }
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let (id, secret) = (random_hex(ID_BYTES), random_hex(SECRET_BYTES));
        let now = self.now();
        let names: Vec<_> = scopes.iter().map(|s| s.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query("SELECT 1 FROM api_tokens WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(LedgerError::Refused(format!(
                "a token named `{name}` exists already (a revoked token keeps its name): choose another name"
            )));
        }
        sqlx::query("INSERT INTO api_tokens (id, name, scopes, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(name)
            .bind(names.join(" "))
            .bind(secret_hash(&secret))
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        self.insert_audit(
            &mut tx,
            None,
            None,
            "token.created",
            json!({"token": name, "scopes": names}),
            None,
        )
        .await?;
        tx.commit().await?;
        let token = ApiToken {
            id: id.clone(),
            name: name.to_string(),
            scopes,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((token, format!("{PREFIX}{id}_{secret}")))
    }

    /// Every token, oldest first, revoked ones too.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, name, scopes, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY created_at, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_row).collect()
    }

    /// Revokes the token named `name` (it stays listed); refused if there is none.
    pub async fn revoke_token(&self, name: &str) -> Result<ApiToken> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .bind(ts(self.now()))
            .execute(&mut *tx)
            .await?;
        if revoked.rows_affected() == 0 {
            return Err(LedgerError::Refused(format!(
                "no live token named `{name}` (see `dsr token list`)"
            )));
        }
        self.insert_audit(&mut tx, None, None, "token.revoked", json!({"token": name}), None)
            .await?;
        tx.commit().await?;
        let row = sqlx::query(
            "SELECT id, name, scopes, created_at, last_used_at, revoked_at FROM api_tokens WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        token_row(&row)
    }

    /// The live token `presented` is, if any (marking it used).
    pub async fn authenticate(&self, presented: &str) -> Result<Option<ApiToken>> {
        let Some((id, secret)) = split(presented) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT id, name, scopes, created_at, last_used_at, revoked_at, secret_sha256 FROM api_tokens \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("secret_sha256")?;
        if !same(stored.as_bytes(), secret_hash(secret).as_bytes()) {
            return Ok(None);
        }
        let token = token_row(&row)?;
        if token.revoked_at.is_some() {
            return Ok(None);
        }
        // Bookkeeping, once a minute at most: a busy ledger does not refuse a valid token.
        let now = self.now();
        if token
            .last_used_at
            .is_none_or(|at| now - at > chrono::Duration::minutes(1))
            && let Err(e) = sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(ts(now))
                .execute(&self.pool)
                .await
        {
            tracing::warn!(token = %token.name, error = %e, "could not record when an API token was last used");
        }
        Ok(Some(token))
    }
}

fn token_row(row: &sqlx::any::AnyRow) -> Result<ApiToken> {
    let scopes: String = row.try_get("scopes")?;
    let scopes = scopes
        .split_whitespace()
        .map(|s| s.parse::<Scope>().map_err(LedgerError::Corrupt))
        .collect::<Result<Vec<_>>>()?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scopes,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        last_used_at: parse_opt_ts(row.try_get("last_used_at")?)?,
        revoked_at: parse_opt_ts(row.try_get("revoked_at")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_authenticates_until_revoked_and_its_secret_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = Ledger::open(&format!("sqlite://{}", path.display())).await.unwrap();
        let (token, shown) = ledger.create_token("crm", &[Scope::RequestsWrite]).await.unwrap();
        assert!(shown.starts_with("dsr_"));
        let found = ledger.authenticate(&shown).await.unwrap().expect("the token is known");
        assert_eq!(found.name, "crm");
        assert!(found.allows(Scope::RequestsWrite) && !found.allows(Scope::RequestsRead));
        // Another secret with the same id, and garbage, are not tokens.
        let (_, secret) = shown.strip_prefix("dsr_").unwrap().split_once('_').unwrap();
        let forged = shown.replace(secret, &"0".repeat(64));
        assert!(ledger.authenticate(&forged).await.unwrap().is_none());
        assert!(ledger.authenticate("dsr_x_y").await.unwrap().is_none());
        assert!(
            ledger.create_token("crm", &[Scope::AuditRead]).await.is_err(),
            "names are unique"
        );
        ledger.revoke_token("crm").await.unwrap();
        assert!(ledger.authenticate(&shown).await.unwrap().is_none(), "revoked");
        assert_eq!(ledger.tokens().await.unwrap()[0].id, token.id, "still listed");
        drop(ledger);
        let bytes = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("ledger.db-wal")).unwrap_or_default();
        for file in [bytes, wal] {
            assert!(
                !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the secret is never stored"
            );
        }
    }

    #[tokio::test]
    async fn an_idempotency_key_goes_when_its_request_is_pseudonymised() {
        use crate::model::{Lang, NewRequest, RequestKind};
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&format!("sqlite://{}/ledger.db", dir.path().display()))
            .await
            .unwrap();
        let new = NewRequest {
            kind: RequestKind::Access,
            identities: Default::default(),
            changes: vec![],
            lang: Lang::En,
            dry_run: false,
            processors: vec![],
            received_at: chrono::Utc::now(),
            verified_by: None,
            verified_at: None,
        };
        let origin = super::super::Origin {
            actor: Some("token:crm".into()),
            idempotency: Some(super::super::Idempotency {
                token_id: "t1".into(),
                key: "kari.nordmann@example.no".into(),
                body_sha256: "b".into(),
            }),
            opendsr: None,
            submission: None,
        };
        let due = chrono::Utc::now();
        assert_eq!(
            ledger.create_request_from("r1", &new, due, &origin).await.unwrap(),
            None
        );
        assert_eq!(
            ledger.create_request_from("r2", &new, due, &origin).await.unwrap(),
            Some("r1".into()),
            "the key finds the first request"
        );
        let keys = || async {
            sqlx::query("SELECT COUNT(*) AS n FROM api_idempotency")
                .fetch_one(&ledger.pool)
                .await
                .unwrap()
                .try_get::<i64, _>("n")
                .unwrap()
        };
        assert_eq!(keys().await, 1);
        sqlx::query("UPDATE requests SET finished_at = $1 WHERE id = 'r1'")
            .bind(ts(chrono::Utc::now()))
            .execute(&ledger.pool)
            .await
            .unwrap();
        assert!(
            ledger
                .pseudonymise("r1", &serde_json::json!({}), &serde_json::json!([]), &[], &[])
                .await
                .unwrap()
        );
        assert_eq!(keys().await, 0, "the caller's key text is gone with the identities");
    }

    #[test]
    fn scopes_read_as_written() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!(
            "requests:delete"
                .parse::<Scope>()
                .unwrap_err()
                .contains("requests:read")
        );
    }
}
