//! Everything that happens to a request after it is enqueued: the ledger, the queue, one
//! task per processor, the scheduled sweeps, and the bundle or confirmation at the end.
//!
//! Read top-down: [`engine`] (what is shared) → [`queue`] (jobs, handed to a `Handler`) →
//! [`flow`] (fan out, run one task, finalize; the engine is the queue's handler) →
//! [`change`] (a change's plan, approval and execution) → [`bundle`] and [`confirmation`]
//! (what the subject and the operator receive), with [`ledger`] underneath as the source of
//! truth, [`error`] and [`clock`] below everything, and [`sweep`] putting lost work back.

pub mod backoff;
pub mod bundle;
pub mod cancel;
pub mod change;
pub mod clock;
pub mod confirmation;
pub mod deadline;
pub mod engine;
pub mod error;
pub mod failure;
pub mod flow;
pub mod guard;
pub mod heartbeat;
pub mod ledger;
pub mod liveness;
pub mod model;
pub mod queue;
pub mod redact;
pub mod retention;
pub mod signing;
pub mod spool;
mod sqlite_lock;
pub mod storage;
pub mod sweep;
pub mod verification;

pub use engine::{Connectors, Engine, EngineError, Settings};
pub use ledger::{Ledger, LedgerError, ListFilter};
pub use queue::{Job, Queue, QueueError, QueueSettings};
