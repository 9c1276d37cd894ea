//! Worker processes as the ledger knows them: each writes a heartbeat (with when its queue
//! poller last got an answer), and what each holds is read from the tasks' leases, so an
//! operator sees which workers are live, which stopped taking work, and who holds what.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_connector::Processor;
use sqlx::Row;

use super::rows::{parse, parse_opt_ts, parse_ts, ts};
use super::{Ledger, Result};

/// A worker is live while its last heartbeat is within this many of its intervals.
pub const LIVE_WITHIN_BEATS: u32 = 3;

/// What a worker says about itself in each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// `Engine::worker_name`: the name its task leases carry.
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// When its queue poller last got an answer from the backend, if ever.
    pub last_poll: Option<DateTime<Utc>>,
    /// How often it beats.
    pub every: Duration,
}

/// A task a worker holds under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldTask {
    pub request_id: String,
    pub processor: Processor,
    pub attempt: u32,
    /// When the worker claimed it (or last stored its plan).
    pub since: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
}

/// A worker as the ledger last heard of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat_at: DateTime<Utc>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub heartbeat_every: Duration,
    /// When it was told to stop (it finishes its running tasks, then exits).
    pub stopped_at: Option<DateTime<Utc>>,
    /// Not stopped, and its last heartbeat within [`LIVE_WITHIN_BEATS`] intervals of the
    /// ledger's now.
    pub live: bool,
    pub holds: Vec<HeldTask>,
}

impl Worker {
    /// How long after its last heartbeat this worker still counts as live.
    pub fn live_window(&self) -> chrono::Duration {
        live_window(self.heartbeat_every)
    }

    /// Whether it is live at `now`.
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        self.stopped_at.is_none() && now - self.last_heartbeat_at <= self.live_window()
    }
}

/// [`LIVE_WITHIN_BEATS`] heartbeat intervals.
pub fn live_window(every: Duration) -> chrono::Duration {
    chrono::Duration::from_std(every * LIVE_WITHIN_BEATS).unwrap_or(chrono::Duration::MAX)
}

impl Ledger {
    /// Records `beat`, stamped by this ledger's clock: the worker's row is created on its
    /// first beat and updated on each later one.
    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (name, host, pid, version, started_at, last_heartbeat_at, last_poll_at, \
             heartbeat_secs, stopped_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL) \
             ON CONFLICT (name) DO UPDATE SET last_heartbeat_at = excluded.last_heartbeat_at, \
             last_poll_at = excluded.last_poll_at, heartbeat_secs = excluded.heartbeat_secs, stopped_at = NULL",
        )
        .bind(&beat.name)
        .bind(&beat.host)
        .bind(i64::from(beat.pid))
        .bind(&beat.version)
        .bind(ts(beat.started_at))
        .bind(ts(self.now()))
        .bind(beat.last_poll.map(ts))
        .bind(beat.every.as_secs().max(1) as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks worker `name` as told to stop (its last beat, with `last_poll`).
    pub async fn worker_stopped(&self, name: &str, last_poll: Option<DateTime<Utc>>) -> Result<()> {
        let now = ts(self.now());
        sqlx::query(
            "UPDATE workers SET stopped_at = $2, last_heartbeat_at = $2, \
             last_poll_at = COALESCE($3, last_poll_at) WHERE name = $1",
        )
        .bind(name)
        .bind(&now)
        .bind(last_poll.map(ts))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every worker the ledger has heard of (live first, then by start), each with the
    /// tasks it holds and whether it is live by this ledger's clock.
    pub async fn workers(&self) -> Result<Vec<Worker>> {
        let now = self.now();
        let rows = sqlx::query(
            "SELECT name, host, pid, version, started_at, last_heartbeat_at, last_poll_at, heartbeat_secs, \
             stopped_at FROM workers ORDER BY started_at, name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut held = self.held_tasks(None).await?;
        let mut workers = Vec::with_capacity(rows.len());
        for r in &rows {
            let name: String = r.try_get("name")?;
            let mut worker = Worker {
                host: r.try_get("host")?,
                pid: u32::try_from(r.try_get::<i64, _>("pid")?).unwrap_or(0),
                version: r.try_get("version")?,
                started_at: parse_ts(&r.try_get::<String, _>("started_at")?)?,
                last_heartbeat_at: parse_ts(&r.try_get::<String, _>("last_heartbeat_at")?)?,
                last_poll_at: parse_opt_ts(r.try_get("last_poll_at")?)?,
                heartbeat_every: Duration::from_secs(r.try_get::<i64, _>("heartbeat_secs")?.max(1) as u64),
                stopped_at: parse_opt_ts(r.try_get("stopped_at")?)?,
                live: false,
                holds: Vec::new(),
                name,
            };
            worker.live = worker.is_live_at(now);
            let (mine, others): (Vec<_>, Vec<_>) = held.into_iter().partition(|(owner, _)| *owner == worker.name);
            worker.holds = mine.into_iter().map(|(_, task)| task).collect();
            held = others;
            workers.push(worker);
        }
        workers.sort_by_key(|w| !w.live);
        Ok(workers)
    }

    /// The running tasks and the worker each is leased to (`lease_owner`), of one request
    /// or of all.
    pub async fn held_tasks(&self, request_id: Option<&str>) -> Result<Vec<(String, HeldTask)>> {
        let mut sql = String::from(
            "SELECT lease_owner, request_id, processor, attempts, updated_at, lease_until FROM tasks \
             WHERE status = 'running' AND lease_owner IS NOT NULL",
        );
        if request_id.is_some() {
            sql.push_str(" AND request_id = $1");
        }
        sql.push_str(" ORDER BY updated_at, request_id, processor");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(id) = request_id {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut held = Vec::with_capacity(rows.len());
        for r in &rows {
            held.push((
                r.try_get::<String, _>("lease_owner")?,
                HeldTask {
                    request_id: r.try_get("request_id")?,
                    processor: parse(&r.try_get::<String, _>("processor")?)?,
                    attempt: r.try_get::<i64, _>("attempts")? as u32,
                    since: parse_ts(&r.try_get::<String, _>("updated_at")?)?,
                    lease_until: parse_opt_ts(r.try_get("lease_until")?)?,
                },
            ));
        }
        Ok(held)
    }

    /// Forgets workers whose last heartbeat is older than `before`. Returns how many.
    pub async fn prune_workers(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM workers WHERE last_heartbeat_at < $1")
            .bind(ts(before))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[tokio::test]
    async fn a_worker_is_live_for_three_beats_and_pruned_a_day_after_its_last() {
        let dir = tempfile::tempdir().unwrap();
        let start = at("2026-03-02T10:00:00Z");
        let clock = Clock::manual(start);
        let ledger = Ledger::open(&format!("sqlite://{}/ledger.db", dir.path().display()))
            .await
            .unwrap()
            .with_clock(clock.clone());
        let mut beat = Heartbeat {
            name: "w1".into(),
            host: "box".into(),
            pid: 42,
            version: "0.1.0".into(),
            started_at: start,
            last_poll: None,
            every: Duration::from_secs(15),
        };
        ledger.heartbeat(&beat).await.unwrap();
        clock.advance(chrono::Duration::seconds(15));
        beat.last_poll = Some(start + chrono::Duration::seconds(14));
        ledger.heartbeat(&beat).await.unwrap();

        let workers = ledger.workers().await.unwrap();
        assert_eq!(workers.len(), 1, "one row per worker however often it beats");
        let w = &workers[0];
        assert!(w.live);
        assert_eq!((w.host.as_str(), w.pid), ("box", 42));
        assert_eq!(w.last_heartbeat_at, start + chrono::Duration::seconds(15));
        assert_eq!(w.last_poll_at, beat.last_poll);

        clock.advance(chrono::Duration::seconds(45));
        assert!(ledger.workers().await.unwrap()[0].live, "45 s is three beats");
        clock.advance(chrono::Duration::seconds(1));
        assert!(
            !ledger.workers().await.unwrap()[0].live,
            "past three beats it is not live"
        );

        assert_eq!(
            ledger
                .prune_workers(clock.now() - chrono::Duration::days(1))
                .await
                .unwrap(),
            0
        );
        clock.advance(chrono::Duration::days(1));
        assert_eq!(
            ledger
                .prune_workers(clock.now() - chrono::Duration::days(1))
                .await
                .unwrap(),
            1
        );
        assert!(ledger.workers().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stopped_worker_is_not_live_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let start = at("2026-03-02T10:00:00Z");
        let ledger = Ledger::open(&format!("sqlite://{}/ledger.db", dir.path().display()))
            .await
            .unwrap()
            .with_clock(Clock::manual(start));
        let beat = Heartbeat {
            name: "w1".into(),
            host: "box".into(),
            pid: 42,
            version: "0.1.0".into(),
            started_at: start,
            last_poll: Some(start),
            every: Duration::from_secs(15),
        };
        ledger.heartbeat(&beat).await.unwrap();
        ledger.worker_stopped("w1", None).await.unwrap();
        let w = &ledger.workers().await.unwrap()[0];
        assert!(!w.live);
        assert_eq!(w.stopped_at, Some(start));
        assert_eq!(w.last_poll_at, Some(start), "a stop keeps the last poll it had");
        ledger.heartbeat(&beat).await.unwrap();
        assert!(
            ledger.workers().await.unwrap()[0].live,
            "a worker that beats again is live again"
        );
    }
}
