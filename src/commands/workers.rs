//! `dsr workers`: every worker process the ledger has heard of, live or not, its host and
//! pid, its last heartbeat and last poll, and the tasks it holds. `dsr status` and
//! `dsr doctor` show workers the same way.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use dsr_jobs::ledger::workers::{HeldTask, Worker};
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::CliError;

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `2026-03-02T10:00:00Z (12s ago)`.
pub fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let ago = match secs {
        s if s < 0 => "in the future".to_string(),
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    };
    format!("{} ({ago})", rfc3339(t))
}

/// live, stopping (told to stop, finishing what it holds), stopped, or not_live (its
/// heartbeat is older than three intervals: dead, or cut off from the ledger).
pub fn state(worker: &Worker) -> &'static str {
    match (worker.live, worker.stopped_at, worker.holds.is_empty()) {
        (true, _, _) => "live",
        (false, Some(_), false) => "stopping",
        (false, Some(_), true) => "stopped",
        (false, None, _) => "not_live",
    }
}

pub fn held_json(task: &HeldTask) -> Value {
    json!({
        "request_id": task.request_id,
        "processor": task.processor.as_str(),
        "attempt": task.attempt,
        "since": rfc3339(task.since),
        "lease_until": task.lease_until.map(rfc3339),
    })
}

pub fn worker_json(worker: &Worker) -> Value {
    json!({
        "name": worker.name,
        "state": state(worker),
        "live": worker.live,
        "host": worker.host,
        "pid": worker.pid,
        "version": worker.version,
        "started_at": rfc3339(worker.started_at),
        "last_heartbeat_at": rfc3339(worker.last_heartbeat_at),
        "last_poll_at": worker.last_poll_at.map(rfc3339),
        "heartbeat_secs": worker.heartbeat_every.as_secs(),
        "stopped_at": worker.stopped_at.map(rfc3339),
        "holds": worker.holds.iter().map(held_json).collect::<Vec<_>>(),
    })
}

pub fn workers_text(workers: &[Worker], now: DateTime<Utc>) -> String {
    if workers.is_empty() {
        return "no worker has written a heartbeat yet: start one with `dsr worker`\n".into();
    }
    let mut out = String::new();
    for w in workers {
        out.push_str(&format!(
            "{}  {}\n  host {} pid {} (dsr {}), started {}\n  last heartbeat {}\n  last poll      {}\n",
            w.name,
            state(w),
            w.host,
            w.pid,
            w.version,
            rfc3339(w.started_at),
            when(w.last_heartbeat_at, now),
            w.last_poll_at
                .map(|t| when(t, now))
                .unwrap_or_else(|| "never: its queue poller has not had an answer yet".into()),
        ));
        if w.holds.is_empty() {
            out.push_str("  holds nothing\n");
        }
        for t in &w.holds {
            out.push_str(&format!(
                "  holds {} {} (attempt {}) since {}\n",
                t.request_id,
                t.processor,
                t.attempt,
                when(t.since, now)
            ));
        }
    }
    let live = workers.iter().filter(|w| w.live).count();
    out.push_str(&format!("{live} of {} live\n", workers.len()));
    out
}

pub async fn workers(config: &Config, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    let workers = ledger.workers().await?;
    if as_json {
        let live = workers.iter().filter(|w| w.live).count();
        println!(
            "{}",
            json!({
                "live": live,
                "workers": workers.iter().map(worker_json).collect::<Vec<_>>(),
            })
        );
    } else {
        print!("{}", workers_text(&workers, ledger.now()));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn worker(live: bool, stopped: bool, holds: bool) -> Worker {
        let at = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Worker {
            name: "dsr-box-1-abcd".into(),
            host: "box".into(),
            pid: 1,
            version: "0.1.0".into(),
            started_at: at,
            last_heartbeat_at: at,
            last_poll_at: None,
            heartbeat_every: Duration::from_secs(15),
            stopped_at: stopped.then_some(at),
            live,
            holds: if holds {
                vec![HeldTask {
                    request_id: "r1".into(),
                    processor: dsr_connector::Processor::Wix,
                    attempt: 2,
                    since: at,
                    lease_until: None,
                }]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn a_worker_told_to_stop_is_stopping_while_it_holds_tasks() {
        assert_eq!(state(&worker(true, false, true)), "live");
        assert_eq!(state(&worker(false, true, true)), "stopping");
        assert_eq!(state(&worker(false, true, false)), "stopped");
        assert_eq!(state(&worker(false, false, true)), "not_live");
        let text = workers_text(&[worker(true, false, true)], worker(true, false, true).started_at);
        assert!(text.contains("holds r1 wix (attempt 2)"), "{text}");
        assert!(text.contains("last poll      never"), "{text}");
        assert!(text.contains("1 of 1 live"), "{text}");
    }
}
