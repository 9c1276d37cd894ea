//! The time every timestamp, lease and deadline is read from: the system clock in
//! production, a clock a test sets and moves (so no test sleeps to let time pass).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// Stands still until `set` or `advance` moves it.
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// A clock that reads `at` until moved.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(Mutex::new(at)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Manual(at) => *at.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock to `at` (the system clock cannot be moved: nothing happens).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Clock::Manual(now) = self {
            *now.lock().unwrap_or_else(|p| p.into_inner()) = at;
        }
    }

    /// Moves a manual clock on by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.set(self.now() + by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::manual(start);
        let seen_by_the_ledger = clock.clone();
        assert_eq!(seen_by_the_ledger.now(), start);
        clock.advance(chrono::Duration::minutes(5));
        assert_eq!(seen_by_the_ledger.now(), start + chrono::Duration::minutes(5));
        let system = Clock::System;
        system.set(start);
        assert!(system.now() > start, "the system clock is not set by tests");
    }
}
