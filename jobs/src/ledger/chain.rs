//! The audit log as a hash chain: each event's hash covers the hash of the event before it
//! and its own columns, so an edited event no longer matches its hash and a removed one
//! breaks the link of the next. `audit_head` holds the last link; appending locks it, so
//! events from every process chain in one order. `dsr audit verify` walks the chain.

use chrono::Utc;
use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Result, ts};
use dsr_connector::Processor;

/// The link before the first event.
pub const GENESIS: &str = "genesis";

/// The hash of one event: its predecessor's hash and its columns as stored.
pub fn link(
    prev: &str,
    at: &str,
    request_id: Option<&str>,
    processor: Option<&str>,
    event: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev,
        at,
        request_id.unwrap_or("\u{0}"),
        processor.unwrap_or("\u{0}"),
        event,
        detail,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The chain's last link: the event's number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// Appends an event inside the caller's transaction; nothing when `dedup_key` was seen.
/// Returns the new head.
pub(super) async fn append(
    conn: &mut sqlx::AnyConnection,
    at: chrono::DateTime<Utc>,
    request_id: Option<&str>,
    processor: Option<Processor>,
    event: &str,
    detail: &serde_json::Value,
    dedup_key: Option<&str>,
) -> Result<Option<Head>> {
    // Locks the head until the transaction ends (one appender at a time, in every process)
    // and reads it, in one statement.
    let prev: String = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING hash")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let at = ts(at);
    let processor = processor.map(|p| p.as_str());
    let detail = detail.to_string();
    let hash = link(&prev, &at, request_id, processor, event, &detail);
    let row = sqlx::query(
        "INSERT INTO audit_log (at, request_id, processor, event, detail, dedup_key, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dedup_key) DO NOTHING RETURNING seq",
    )
    .bind(&at)
    .bind(request_id)
    .bind(processor)
    .bind(event)
    .bind(&detail)
    .bind(dedup_key)
    .bind(&prev)
    .bind(&hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let seq: i64 = row.try_get(0)?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    Ok(Some(Head { seq, hash }))
}

pub(super) async fn head(pool: &sqlx::AnyPool) -> Result<Head> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(pool)
        .await?;
    Ok(Head {
        seq: row.try_get(0)?,
        hash: row.try_get(1)?,
    })
}

/// Chains events written before the chain existed, in order, once.
pub(super) async fn seal_unchained(pool: &sqlx::AnyPool) -> Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT seq, at, request_id, processor, event, detail FROM audit_log WHERE hash IS NULL ORDER BY seq",
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let mut prev: String = sqlx::query("SELECT hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let mut last = 0i64;
    for row in &rows {
        let seq: i64 = row.try_get(0)?;
        let at: String = row.try_get(1)?;
        let request_id: Option<String> = row.try_get(2)?;
        let processor: Option<String> = row.try_get(3)?;
        let event: String = row.try_get(4)?;
        let detail: String = row.try_get(5)?;
        let hash = link(&prev, &at, request_id.as_deref(), processor.as_deref(), &event, &detail);
        sqlx::query("UPDATE audit_log SET prev_hash = $2, hash = $3 WHERE seq = $1")
            .bind(seq)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        prev = hash;
        last = seq;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(last)
        .bind(&prev)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// What walking the chain found.
#[derive(Debug, Clone, Serialize)]
pub struct ChainVerdict {
    pub events: u64,
    pub head: Head,
    /// The first break, naming the event; None when the chain is whole.
    pub problem: Option<String>,
}

/// Walks every event in order, recomputing each hash and checking each link.
pub(super) async fn verify(pool: &sqlx::AnyPool) -> Result<ChainVerdict> {
    let head = head(pool).await?;
    let mut rows = sqlx::query(
        "SELECT seq, at, request_id, processor, event, detail, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch(pool);
    let mut expected = GENESIS.to_string();
    let mut last_seq = 0i64;
    let mut events = 0u64;
    let mut problem = None;
    while let Some(row) = rows.try_next().await? {
        let seq: i64 = row.try_get(0)?;
        let at: String = row.try_get(1)?;
        let request_id: Option<String> = row.try_get(2)?;
        let processor: Option<String> = row.try_get(3)?;
        let event: String = row.try_get(4)?;
        let detail: String = row.try_get(5)?;
        let prev: Option<String> = row.try_get(6)?;
        let hash: Option<String> = row.try_get(7)?;
        events += 1;
        let name = format!(
            "event #{seq} ({event}{})",
            request_id
                .as_deref()
                .map(|r| format!(", request {r}"))
                .unwrap_or_default()
        );
        let recomputed = link(
            prev.as_deref().unwrap_or(""),
            &at,
            request_id.as_deref(),
            processor.as_deref(),
            &event,
            &detail,
        );
        if hash.as_deref() != Some(recomputed.as_str()) {
            problem = Some(format!("{name} was altered: its content no longer matches its hash"));
            break;
        }
        if prev.as_deref() != Some(expected.as_str()) {
            problem = Some(if last_seq == 0 {
                format!("{name} does not follow the start of the chain: earlier events were removed")
            } else {
                format!("{name} does not follow event #{last_seq}: an event between them was removed or altered")
            });
            break;
        }
        expected = recomputed;
        last_seq = seq;
    }
    drop(rows);
    if problem.is_none() && (head.hash != expected || head.seq != last_seq) {
        problem = Some(if head.seq > last_seq {
            format!(
                "the chain ends at event #{last_seq} but its head records event #{}: the last events were removed",
                head.seq
            )
        } else {
            format!("the chain's head does not match event #{last_seq}: the head or the last event was altered")
        });
    }
    Ok(ChainVerdict { events, head, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_depends_on_every_column_and_on_where_parts_split() {
        let base = link("p", "t", Some("r"), Some("wix"), "e", "{}");
        assert_ne!(base, link("q", "t", Some("r"), Some("wix"), "e", "{}"));
        assert_ne!(base, link("p", "t", None, Some("wix"), "e", "{}"));
        assert_ne!(base, link("p", "t", Some("r"), Some("wix"), "e", "{ }"));
        // Lengths are hashed too, so moving text between columns changes the hash.
        assert_ne!(
            link("p", "t", Some("ab"), None, "c", "{}"),
            link("p", "t", Some("a"), None, "bc", "{}")
        );
    }
}
