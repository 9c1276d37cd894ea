//! The dashboard's operator accounts and their signed-in sessions. Passwords are kept as
//! Argon2id hashes (made by the caller); session tokens as SHA-256 hashes. Every account
//! change, sign-in, failed sign-in and sign-out is an audit event naming the account.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::Row;

use super::rows::{parse, parse_opt_ts, parse_ts, ts};
use super::{Ledger, LedgerError, Result};
use crate::model::Role;

/// Wrong passwords in a row before an account waits.
pub const SIGNIN_FAILURES_ALLOWED: i64 = 5;

#[derive(Debug, Clone)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub operator: Operator,
    pub csrf: String,
}

fn operator_row(row: &sqlx::any::AnyRow) -> Result<Operator> {
    Ok(Operator {
        name: row.try_get("name")?,
        role: parse(&row.try_get::<String, _>("role")?)?,
        password_hash: row.try_get("password_hash")?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        disabled_at: parse_opt_ts(row.try_get("disabled_at")?)?,
        locked_until: parse_opt_ts(row.try_get("locked_until")?)?,
    })
}

/// Ends the session whose token hashes to `token_sha256` (signed out, or replaced by a new
/// sign-in in the same browser), if it has not ended.
async fn end_session(tx: &mut sqlx::Transaction<'_, sqlx::Any>, token_sha256: &str, now: &str) -> Result<()> {
    sqlx::query("UPDATE operator_sessions SET ended_at = $2 WHERE token_sha256 = $1 AND ended_at IS NULL")
        .bind(token_sha256)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const OPERATOR_COLUMNS: &str = "name, role, password_hash, created_at, disabled_at, locked_until";

impl Ledger {
    /// Adds an account; refused when the name is taken.
    pub async fn add_operator(&self, name: &str, role: Role, password_hash: &str, by: &str) -> Result<()> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        let added = sqlx::query(
            "INSERT INTO operators (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !added {
            return Err(LedgerError::Refused(format!(
                "an account named `{name}` exists: choose another name"
            )));
        }
        self.insert_audit(
            &mut tx,
            None,
            None,
            "operator.added",
            json!({"operator": name, "role": role, "by": by}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables an account and ends its sessions.
    pub async fn disable_operator(&self, name: &str, by: &str) -> Result<()> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query("UPDATE operators SET disabled_at = $2 WHERE name = $1 AND disabled_at IS NULL")
            .bind(name)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !changed {
            return Err(LedgerError::Refused(format!(
                "no enabled account named `{name}`: see `dsr user list`"
            )));
        }
        sqlx::query("UPDATE operator_sessions SET ended_at = $2 WHERE operator = $1 AND ended_at IS NULL")
            .bind(name)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        self.insert_audit(
            &mut tx,
            None,
            None,
            "operator.disabled",
            json!({"operator": name, "by": by}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn operators(&self) -> Result<Vec<Operator>> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(operator_row).collect()
    }

    pub async fn operator(&self, name: &str) -> Result<Option<Operator>> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(operator_row).transpose()
    }

    /// Claims one sign-in attempt for `name` before its password is checked: false when the
    /// account is unknown or waits after five wrong passwords (the caller then answers as
    /// for a wrong password). Claimed and counted in one statement, so guesses sent at once
    /// cannot all pass the lock.
    pub async fn signin_claim(&self, name: &str) -> Result<bool> {
        let now = ts(self.now());
        Ok(sqlx::query(
            "UPDATE operators SET failed_signins = failed_signins + 1 \
             WHERE name = $1 AND disabled_at IS NULL AND (locked_until IS NULL OR locked_until <= $2)",
        )
        .bind(name)
        .bind(&now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// A refused sign-in for `name` (the claim counted it): at the fifth in a row the
    /// account waits until `lock_until`. `claimed` false: the account was unknown, locked or
    /// disabled (the event says which it was, for the operators, never for the caller).
    pub async fn signin_failed(&self, name: &str, claimed: bool, lock_until: DateTime<Utc>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if claimed {
            sqlx::query(
                "UPDATE operators SET locked_until = CASE WHEN failed_signins >= $2 THEN $3 ELSE locked_until END, \
                 failed_signins = CASE WHEN failed_signins >= $2 THEN 0 ELSE failed_signins END WHERE name = $1",
            )
            .bind(name)
            .bind(SIGNIN_FAILURES_ALLOWED)
            .bind(ts(lock_until))
            .execute(&mut *tx)
            .await?;
        }
        let known = sqlx::query("SELECT name FROM operators WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        let detail = match (known, claimed) {
            (true, true) => json!({"operator": name, "why": "wrong password"}),
            (true, false) => json!({"operator": name, "why": "locked or disabled"}),
            // A mistyped password in the name field must not land in the log.
            (false, _) => json!({"operator": null, "why": "unknown account"}),
        };
        self.insert_audit(&mut tx, None, None, "operator.signin_failed", detail, None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The right password: a new session (the cookie's token hash, its CSRF token); the
    /// session the browser held before, if any, ends.
    pub async fn signed_in(&self, name: &str, token_sha256: &str, csrf: &str, replaces: Option<&str>) -> Result<()> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        if let Some(old) = replaces {
            end_session(&mut tx, old, &now).await?;
        }
        sqlx::query("UPDATE operators SET failed_signins = 0, locked_until = NULL WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO operator_sessions (token_sha256, operator, csrf, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(token_sha256)
        .bind(name)
        .bind(csrf)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        self.insert_audit(
            &mut tx,
            None,
            None,
            "operator.signed_in",
            json!({"operator": name}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session behind a cookie, if it is live: not ended, seen within `idle`, begun
    /// within `absolute`, its account enabled. Seeing it keeps it alive.
    pub async fn session(
        &self,
        token_sha256: &str,
        idle: chrono::Duration,
        absolute: chrono::Duration,
    ) -> Result<Option<Session>> {
        self.session_seen(token_sha256, idle, absolute, true).await
    }

    /// [`Ledger::session`], keeping it alive only when `touch`: a page polling by itself is
    /// not someone using the dashboard, and must not hold off the idle sign-out.
    pub async fn session_seen(
        &self,
        token_sha256: &str,
        idle: chrono::Duration,
        absolute: chrono::Duration,
        touch: bool,
    ) -> Result<Option<Session>> {
        let now = self.now();
        let row = sqlx::query(
            "SELECT operator, csrf FROM operator_sessions WHERE token_sha256 = $1 AND ended_at IS NULL \
             AND last_seen_at > $2 AND created_at > $3",
        )
        .bind(token_sha256)
        .bind(ts(now - idle))
        .bind(ts(now - absolute))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let name: String = row.try_get("operator")?;
        let csrf: String = row.try_get("csrf")?;
        let Some(operator) = self.operator(&name).await?.filter(|o| o.disabled_at.is_none()) else {
            return Ok(None);
        };
        if touch {
            sqlx::query("UPDATE operator_sessions SET last_seen_at = $2 WHERE token_sha256 = $1")
                .bind(token_sha256)
                .bind(ts(now))
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(Session { operator, csrf }))
    }

    /// Signs a session out.
    pub async fn signed_out(&self, token_sha256: &str, name: &str) -> Result<()> {
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        end_session(&mut tx, token_sha256, &now).await?;
        self.insert_audit(
            &mut tx,
            None,
            None,
            "operator.signed_out",
            json!({"operator": name}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
