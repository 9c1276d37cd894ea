//! Vendor rate limits shared by every worker on one Redis: each limiter's rate is a sliding
//! window (a sorted set of the calls taken, scored by when) and its places in flight a
//! sorted set of holders scored by when their lease ends, both changed only by
//! Lua scripts, so taking is atomic across workers. Redis's own clock (`TIME`) is the only
//! clock, so workers' clocks need not agree. A worker that dies stops renewing its places
//! and they are free once their lease ends ([`dsr_connector::http::PLACE_LEASE`]).
//!
//! Keys are `{prefix}:limits:rate:{digest}` and `{prefix}:limits:places:{digest}`: the
//! digest is a SHA-256 of the limiter's key (processor, limits, vendor key), since a vendor
//! key may be a person's mailbox. Every key expires on its own shortly after its last use.

use std::time::Duration;

use dsr_connector::http::{Limits, SharedLimitError, SharedLimits};
use redis::Script;
use sha2::{Digest, Sha256};

use super::QueueSettings;

/// Takes a call into a sliding window if it holds fewer than ARGV[2] calls younger than
/// ARGV[1] µs, answering -1; otherwise answers how many µs until its oldest leaves.
/// KEYS[1]: the window (a sorted set of call ids scored by when they were taken); ARGV[3]:
/// this call's id.
const TAKE_RATE: &str = r#"
-- Redis before 5 replicates scripts verbatim and refuses a write after TIME without this.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local per = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(per / 1000) + 1000)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + per - now
if wait < 100 then wait = 100 end
return wait
"#;

/// Takes (or renews) a place for ARGV[1] if fewer than ARGV[2] are held; answers 1 if
/// taken. KEYS[1]: the places; ARGV[3]: the lease (ms).
const TAKE_PLACE: &str = r#"
-- Redis before 5 replicates scripts verbatim and refuses a write after TIME without this.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease + 1000)
  return 1
end
return 0
"#;

/// Extends ARGV[1]'s place, if it still holds one, by ARGV[2] ms from now.
const RENEW_PLACE: &str = r#"
-- Redis before 5 replicates scripts verbatim and refuses a write after TIME without this.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], lease + 1000)
end
return 1
"#;

/// The budget of every worker on one Redis.
#[derive(Clone)]
pub struct RedisLimits {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    take_rate: Script,
    take_place: Script,
    renew_place: Script,
}

impl RedisLimits {
    /// Limits on the queue's Redis, under its key prefix.
    pub async fn connect(settings: &QueueSettings) -> Result<RedisLimits, super::QueueError> {
        Ok(RedisLimits {
            conn: super::redis_connection(settings).await?,
            prefix: settings.prefix.clone(),
            take_rate: Script::new(TAKE_RATE),
            take_place: Script::new(TAKE_PLACE),
            renew_place: Script::new(RENEW_PLACE),
        })
    }

    fn key(&self, kind: &str, key: &str) -> String {
        let digest = Sha256::digest(format!("dsr limits\0{key}").as_bytes());
        format!("{}:limits:{kind}:{}", self.prefix, hex::encode(&digest[..16]))
    }
}

fn failed(e: redis::RedisError) -> SharedLimitError {
    SharedLimitError(e.to_string())
}

#[async_trait::async_trait]
impl SharedLimits for RedisLimits {
    async fn take_rate(&self, key: &str, limits: Limits) -> Result<Option<Duration>, SharedLimitError> {
        let mut conn = self.conn.clone();
        let wait: i64 = self
            .take_rate
            .key(self.key("rate", key))
            .arg(limits.per.as_micros().max(1) as u64)
            .arg(limits.window_count())
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok((wait >= 0).then(|| Duration::from_micros(wait.max(1) as u64)))
    }

    async fn take_place(
        &self,
        key: &str,
        holder: &str,
        limits: Limits,
        lease: Duration,
    ) -> Result<bool, SharedLimitError> {
        let mut conn = self.conn.clone();
        let taken: i64 = self
            .take_place
            .key(self.key("places", key))
            .arg(holder)
            .arg(limits.concurrent.max(1))
            .arg(lease.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(taken == 1)
    }

    async fn renew_place(&self, key: &str, holder: &str, lease: Duration) -> Result<(), SharedLimitError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .renew_place
            .key(self.key("places", key))
            .arg(holder)
            .arg(lease.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn release_place(&self, key: &str, holder: &str) -> Result<(), SharedLimitError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("ZREM")
            .arg(self.key("places", key))
            .arg(holder)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }
}
