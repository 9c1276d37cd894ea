//! Free text beside the audit chain. An audit event keeps codes, actors and hashes; the words
//! (an error's text, what a vendor said, an operator's reason) go in a note whose hash alone
//! is chained. The hash covers a random salt and the text, so nobody can confirm a guess
//! ("was kari@example.no in it?") from the hash, and pseudonymisation removes salt and text
//! without breaking the chain.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::Result;
use super::rows::ts;

/// The detail key under which an event's free text is given, and its note's hash is chained.
pub const NOTE: &str = "note";

/// A note made for one event, not yet stored.
pub(super) struct Note {
    pub hash: String,
    salt: String,
    text: String,
}

impl Note {
    /// Seals `text` under a fresh random salt.
    pub fn seal(text: String) -> Note {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = hex::encode(salt);
        let hash = digest(&salt, &text);
        Note { hash, salt, text }
    }

    /// Stores the note, inside the transaction that chained its event.
    pub async fn keep(self, conn: &mut sqlx::AnyConnection, request_id: Option<&str>, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_notes (hash, request_id, salt, text, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&self.hash)
        .bind(request_id)
        .bind(&self.salt)
        .bind(&self.text)
        .bind(ts(at))
        .execute(conn)
        .await?;
        Ok(())
    }
}

fn digest(salt: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0u8]);
    h.update(text.as_bytes());
    hex::encode(h.finalize())
}

/// A request's notes by hash: the text, or `None` once scrubbed. A note whose text no longer
/// matches its hash is given as `None` too (it was altered).
pub(super) async fn of_request(pool: &sqlx::AnyPool, request_id: &str) -> Result<BTreeMap<String, Option<String>>> {
    let rows = sqlx::query("SELECT hash, salt, text FROM audit_notes WHERE request_id = $1")
        .bind(request_id)
        .fetch_all(pool)
        .await?;
    let mut notes = BTreeMap::new();
    for row in rows {
        let hash: String = row.try_get(0)?;
        let salt: Option<String> = row.try_get(1)?;
        let text: Option<String> = row.try_get(2)?;
        let text = match (salt, text) {
            (Some(salt), Some(text)) if digest(&salt, &text) == hash => Some(text),
            _ => None,
        };
        notes.insert(hash, text);
    }
    Ok(notes)
}

/// Removes the words of a request's notes (pseudonymisation); their hashes stay chained.
pub(super) async fn scrub(conn: &mut sqlx::AnyConnection, request_id: &str, at: DateTime<Utc>) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE audit_notes SET salt = NULL, text = NULL, scrubbed_at = $2 WHERE request_id = $1 AND text IS NOT NULL",
    )
    .bind(request_id)
    .bind(ts(at))
    .execute(conn)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_reveals_nothing_without_the_salt() {
        let a = Note::seal("kari@example.no".into());
        let b = Note::seal("kari@example.no".into());
        assert_ne!(a.hash, b.hash, "the same words hash differently under two salts");
        assert_eq!(digest(&a.salt, &a.text), a.hash);
        assert_ne!(digest(&a.salt, "ola@example.no"), a.hash);
        let unsalted = hex::encode(Sha256::digest(b"kari@example.no"));
        assert_ne!(a.hash, unsalted);
    }
}
