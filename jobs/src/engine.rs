//! Everything a worker, the CLI and the sweeps share: the ledger, the queue, the configured
//! connectors and the settings.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use dsr_connector::{Connector, Identities, Processor};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub use crate::error::EngineError;
use crate::ledger::Ledger;
use crate::model::NewRequest;
use crate::queue::{Job, Queue, QueueSettings};

/// The connectors configured for this deployment, one per processor.
#[derive(Clone, Default)]
pub struct Connectors(BTreeMap<Processor, Arc<dyn Connector>>);

impl Connectors {
    pub fn insert(&mut self, connector: Arc<dyn Connector>) {
        self.0.insert(connector.processor(), connector);
    }

    pub fn get(&self, processor: Processor) -> Option<&Arc<dyn Connector>> {
        self.0.get(&processor)
    }

    pub fn processors(&self) -> Vec<Processor> {
        self.0.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Tunables, from the binary's config. Its `Debug` shows neither key nor the queue URL's
/// password.
#[derive(Clone)]
pub struct Settings {
    /// The controller's time zone: deadlines are counted in it.
    pub zone: Tz,
    /// Where spools, bundles and confirmations are written.
    pub export: crate::storage::ExportStore,
    /// How long a worker holds a task before another may take it over.
    pub task_lease: Duration,
    /// Attempts per task before it fails for good.
    pub max_attempts: u32,
    /// How long one attempt's connector work may run before it is stopped and retried.
    pub task_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often the recovery sweep and the deadline watch run.
    pub sweep_every: Duration,
    /// How long a pending task or received request may sit before the sweep re-enqueues it.
    pub recover_after: Duration,
    /// Warn about requests due within this many days.
    pub deadline_warning_days: i64,
    /// How often a worker writes its heartbeat to the ledger (live within three of them).
    pub heartbeat_every: Duration,
    /// Key for the hashes that stand in for subjects in logs.
    pub log_key: Vec<u8>,
    pub queue: QueueSettings,
    /// The Art. 15(1) texts every bundle carries.
    pub processing_info: crate::bundle::ProcessingInfo,
    /// Signs bundle manifests and confirmations when set.
    pub signer: Option<crate::signing::Signer>,
    /// How long a finished request's bundle and confirmation are kept.
    pub retention: chrono::Duration,
    /// How long after a request finished its identities are replaced by keyed hashes.
    pub pseudonymise_after: chrono::Duration,
    /// Key for those hashes.
    pub pseudonym_key: Vec<u8>,
    /// Approval and shared-item rules for erasure, rectification and objection.
    pub changes: crate::change::ChangeRules,
    /// How long a worker keeps reconnecting to a queue that went away before it exits with
    /// an error (so that systemd or Kubernetes restarts it).
    pub give_up_after: Duration,
    /// Queue a completed request for its e-mail to the subject (`[delivery]` with `[smtp]`).
    pub deliver: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const REDACTED: &str = "[redacted]";
        let q = &self.queue;
        f.debug_struct("Settings")
            .field("zone", &self.zone)
            .field("export", &self.export)
            .field("task_lease", &self.task_lease)
            .field("max_attempts", &self.max_attempts)
            .field("task_timeout", &self.task_timeout)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("sweep_every", &self.sweep_every)
            .field("recover_after", &self.recover_after)
            .field("deadline_warning_days", &self.deadline_warning_days)
            .field("heartbeat_every", &self.heartbeat_every)
            .field("log_key", &REDACTED)
            .field(
                "queue",
                &format_args!(
                    "QueueSettings {{ url: {:?}, prefix: {:?}, poll_interval: {:?}, heartbeat: {:?}, \
                     missed_heartbeats: {}, response_timeout: {:?}, concurrency: {} }}",
                    crate::queue::redacted(&q.url),
                    q.prefix,
                    q.poll_interval,
                    q.heartbeat,
                    q.missed_heartbeats,
                    q.response_timeout,
                    q.concurrency
                ),
            )
            .field("processing_info", &self.processing_info)
            .field("signer", &self.signer)
            .field("retention", &self.retention)
            .field("pseudonymise_after", &self.pseudonymise_after)
            .field("pseudonym_key", &REDACTED)
            .field("changes", &self.changes)
            .field("give_up_after", &self.give_up_after)
            .finish()
    }
}

struct Inner {
    ledger: Ledger,
    queue: Queue,
    connectors: Connectors,
    settings: Settings,
    worker_name: String,
    runs: std::sync::atomic::AtomicU32,
    liveness: crate::liveness::Liveness,
}

/// The shared runtime. Cheap to clone.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

impl Engine {
    pub fn new(ledger: Ledger, queue: Queue, connectors: Connectors, settings: Settings) -> Self {
        Engine(Arc::new(Inner {
            ledger,
            queue,
            connectors,
            settings,
            worker_name: unique_worker_name(),
            runs: std::sync::atomic::AtomicU32::new(0),
            liveness: crate::liveness::Liveness::new(),
        }))
    }

    pub fn ledger(&self) -> &Ledger {
        &self.0.ledger
    }

    pub fn queue(&self) -> &Queue {
        &self.0.queue
    }

    pub fn connectors(&self) -> &Connectors {
        &self.0.connectors
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Unique per process (host, pid and a random part), as apalis needs.
    pub fn worker_name(&self) -> &str {
        &self.0.worker_name
    }

    /// When this process's queue poller last heard from the backend (shared with the
    /// heartbeat and the reconnect supervisor).
    pub fn liveness(&self) -> &crate::liveness::Liveness {
        &self.0.liveness
    }

    /// A keyed hash that stands in for the subject in logs.
    pub fn subject_tag(&self, identities: &Identities) -> String {
        subject_tag(&self.0.settings.log_key, identities)
    }

    /// Stores a request and queues its fan-out. The push retries a queue that does not
    /// answer (see `Queue::push`); if it still fails the request is in the ledger all the
    /// same, the error (`QueueError::NotQueued`) names it, and the recovery sweep queues it.
    pub async fn enqueue(&self, new: NewRequest) -> Result<String, EngineError> {
        self.enqueue_from(new, &crate::ledger::Origin::default())
            .await
            .map(|(id, _)| id)
    }

    /// As [`Engine::enqueue`], from `origin` (an API token): returns the request's id and
    /// whether it is new — `false` when the origin's idempotency key was used before, and the
    /// id is the first request's (nothing is stored or queued again).
    pub async fn enqueue_from(
        &self,
        new: NewRequest,
        origin: &crate::ledger::Origin,
    ) -> Result<(String, bool), EngineError> {
        let id = uuid::Uuid::new_v4().to_string();
        let due = crate::deadline::due_at(new.received_at, 1, self.0.settings.zone);
        if let Some(first) = self.ledger().create_request_from(&id, &new, due, origin).await? {
            return Ok((first, false));
        }
        tracing::info!(request = %id, kind = %new.kind, subject = %self.subject_tag(&new.identities), "request received");
        if let Err(e) = self.queue().push(Job::FanOut { request_id: id.clone() }).await {
            tracing::warn!(request = %id, error = %e, "request stored but not queued; the recovery sweep queues it");
            return Err(crate::queue::QueueError::NotQueued {
                request_id: id,
                source: Box::new(e),
            }
            .into());
        }
        Ok((id, true))
    }

    /// Queues a task job for each processor (after a retry or an approval).
    pub async fn queue_tasks(&self, request_id: &str, processors: &[Processor]) -> Result<(), EngineError> {
        for processor in processors {
            self.queue()
                .push(Job::ProcessorTask {
                    request_id: request_id.to_string(),
                    processor: *processor,
                })
                .await?;
        }
        Ok(())
    }

    /// [`Engine::queue_tasks`] after a transition the ledger already committed (an approval, a
    /// retry): when the queue does not answer, the tasks stay pending in the ledger and the
    /// recovery sweep queues them; `false` says so (logged), the action still stands.
    pub async fn queue_tasks_or_sweep(&self, request_id: &str, processors: &[Processor]) -> bool {
        match self.queue_tasks(request_id, processors).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(request = %request_id, error = %e, "tasks not queued yet; the recovery sweep queues them");
                false
            }
        }
    }

    /// A name for one apalis worker run: the backend keeps a registry of worker names, and a
    /// second run in this process must not collide with the first.
    pub fn run_name(&self, role: &str) -> String {
        let n = self.0.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{role}-{n}", self.worker_name())
    }

    /// Runs a queue worker in this process until `shutdown` resolves, reconnecting to a
    /// queue that went away; `QueueError::GaveUp` once it has been gone for `give_up_after`.
    pub async fn run_worker(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), EngineError> {
        let settings = self.0.settings.queue.clone();
        let name = self.run_name("jobs");
        if crate::queue::is_redis(&settings.url) {
            // Every worker on this Redis shares each vendor's budget (issue 23: each keeping
            // its own, two workers together were throttled by Graph).
            match crate::queue::limits::RedisLimits::connect(&settings).await {
                Ok(limits) => dsr_connector::http::share_limits(Some(std::sync::Arc::new(limits))),
                Err(e) => tracing::warn!(error = %e, "vendor rate limits are kept by this worker alone"),
            }
        }
        let supervision = crate::queue::Supervision {
            give_up_after: self.0.settings.give_up_after,
            liveness: self.liveness().clone(),
        };
        self.queue()
            .run_worker(&name, self.clone(), &settings, &supervision, shutdown)
            .await?;
        Ok(())
    }

    /// Now, by the ledger's clock (a test's manual clock, or the system's).
    pub fn now(&self) -> DateTime<Utc> {
        self.ledger().now()
    }
}

fn unique_worker_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("dsr-{host}-{}-{}", std::process::id(), &random[..8])
}

/// HMAC-SHA256 over the subject's identities, shortened: stable for one key, useless
/// without it.
pub fn subject_tag(key: &[u8], identities: &Identities) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return "subject:?".into();
    };
    let mut values = identities.values();
    values.sort_unstable();
    for v in values {
        mac.update(v.as_bytes());
        mac.update(&[0]);
    }
    let digest = mac.finalize().into_bytes();
    format!("subject:{}", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::Email;

    #[test]
    fn subject_tags_are_keyed_and_hide_the_address() {
        let ids = Identities {
            emails: vec![Email::parse("kari@example.no").unwrap()],
            ..Default::default()
        };
        let a = subject_tag(b"key-one", &ids);
        assert_eq!(a, subject_tag(b"key-one", &ids));
        assert_ne!(a, subject_tag(b"key-two", &ids));
        assert!(!a.contains("kari"));
    }
}
