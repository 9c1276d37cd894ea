//! Wakes this process's workers when this process queues a job.
//!
//! An idle apalis worker looks for jobs once per `[queue] poll`. Most jobs are queued by the
//! worker itself — a fan-out queues its processor tasks, the last task its finalize — so each
//! of a request's three hops would wait up to one poll for a job the process already knows
//! about. Each push here also wakes every worker run of the same [`Queue`](super::Queue) at
//! once, on top of the interval; jobs queued by other processes (`dsr submit`, another
//! machine's worker) are still found by the interval.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{IntervalStrategy, Strategy};
use futures::Stream;
use futures::channel::mpsc::{Receiver, Sender, channel};

/// The worker runs to wake, one sender each; a run that ended is dropped at the next wake.
#[derive(Clone, Default)]
pub(super) struct Wakers(Arc<Mutex<Vec<Sender<()>>>>);

impl Wakers {
    /// Wakes every worker run subscribed (each looks for jobs once more). A run that has a
    /// wake waiting already is not sent another: wakes never pile up while it is busy.
    pub(super) fn wake(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain_mut(|run| match run.try_send(()) {
                Ok(()) => true,
                Err(e) => e.is_full(),
            });
    }

    /// A new subscription: a stream that yields after a [`Wakers::wake`].
    fn subscribe(&self) -> Wake {
        // Capacity 0: the one sender's own slot, so at most one wake waits.
        let (tx, rx) = channel(0);
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(tx);
        Wake(Arc::new(Mutex::new(rx)))
    }

    /// When a worker run looks for jobs: at once when woken, and every `interval`.
    pub(super) fn poll_strategy(&self, interval: Duration) -> Strategy {
        Strategy::new()
            .stream(self.subscribe())
            .apply(IntervalStrategy::new(interval))
    }
}

/// One worker run's wake-ups. (apalis wants its poll strategies `Sync`; the receiver is not.)
struct Wake(Arc<Mutex<Receiver<()>>>);

impl Stream for Wake {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let mut rx = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *rx).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_every_live_subscription_and_forgets_ended_ones() {
        let wakers = Wakers::default();
        let mut first = wakers.subscribe();
        let second = wakers.subscribe();
        drop(second);
        for _ in 0..100 {
            wakers.wake();
        }
        assert_eq!(first.next().await, Some(()));
        assert_eq!(wakers.0.lock().unwrap().len(), 1, "the ended run is forgotten");
        // A hundred wakes while it was busy left one waiting, not a hundred.
        assert!(
            futures::FutureExt::now_or_never(first.next()).is_none(),
            "no second wake was waiting"
        );
    }
}
