//! What a worker process tells the ledger about itself: that it is alive, and when its queue
//! poller last asked the backend for work. The queue marks each successful poll here; the
//! heartbeat loop (`heartbeat.rs`) writes it to the ledger for `dsr workers`, `dsr status`
//! and `dsr doctor`; the reconnect supervisor reads it to decide when to give up.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Shared by a worker's queue poller, its heartbeat and its supervisor. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    /// Unix milliseconds of the last poll the backend answered; 0 before the first.
    last_poll_ms: Arc<AtomicI64>,
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness::default()
    }

    /// The backend answered a poll (with work or without) at `at`.
    pub fn polled(&self, at: DateTime<Utc>) {
        self.last_poll_ms.fetch_max(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// When the backend last answered a poll, if it ever did.
    pub fn last_poll(&self) -> Option<DateTime<Utc>> {
        match self.last_poll_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_poll_wins_and_clones_share_it() {
        let live = Liveness::new();
        assert_eq!(live.last_poll(), None);
        let t1 = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let t2 = DateTime::from_timestamp_millis(1_700_000_005_000).unwrap();
        let other = live.clone();
        other.polled(t2);
        live.polled(t1);
        assert_eq!(live.last_poll(), Some(t2));
    }
}
