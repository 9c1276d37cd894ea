//! The few Redis commands the benchmarks need of their own — PING to say early whether Redis
//! answers, and SCAN and DEL to remove the keys a benchmark made — through redis-rs (the
//! client apalis-redis uses; the queue itself goes through `dsr-jobs`).

use std::time::Duration;

use redis::AsyncCommands;

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

pub struct Redis {
    conn: redis::aio::MultiplexedConnection,
}

const WAIT: Duration = Duration::from_secs(5);

impl Redis {
    /// Connects to `url` and checks that Redis answers.
    pub async fn connect(url: &str) -> Result<Redis, RespError> {
        let client = redis::Client::open(url)?;
        let mut conn = tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| RespError::Timeout(WAIT))??;
        let _: String = tokio::time::timeout(WAIT, redis::cmd("PING").query_async(&mut conn))
            .await
            .map_err(|_| RespError::Timeout(WAIT))??;
        Ok(Redis { conn })
    }

    /// Deletes every key starting with `prefix`; returns how many.
    pub async fn delete_prefixed(&mut self, prefix: &str) -> Result<usize, RespError> {
        let pattern = format!("{}*", prefix.replace(['*', '?', '[', ']', '\\'], ""));
        let keys: Vec<String> = {
            let mut iter = self.conn.scan_match::<_, String>(&pattern).await?;
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            keys
        };
        for chunk in keys.chunks(500) {
            let _: i64 = self.conn.del(chunk).await?;
        }
        Ok(keys.len())
    }
}
