//! Delivering a finished request to its subject: a link by e-mail, valid for `[delivery]
//! link_ttl` and `max_downloads`, only its hash kept. The worker sends what the ledger's
//! outbox holds (completed requests are put there in the transaction that completes them),
//! retrying a mail server that does not answer; `dsr resend` sends a fresh link at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dsr_jobs::Engine;
use dsr_jobs::confirmation::{ConfirmationDocument, confirmation_keys};
use dsr_jobs::ledger::subject::Delivery;
use dsr_jobs::model::RequestStatus;

use super::mail::{MailError, Mailer};
use super::{secrets, texts};
use crate::config::Config;
use crate::error::CliError;

/// How often the worker looks for requests to deliver.
const EVERY: Duration = Duration::from_secs(2);
/// The first retry's wait, doubled per attempt up to an hour; given up after [`ATTEMPTS`].
const FIRST_WAIT: Duration = Duration::from_secs(30);
const LONGEST_WAIT: Duration = Duration::from_secs(3600);
const ATTEMPTS: u32 = 24;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("request {id} cannot be delivered: {why}")]
    NotDeliverable { id: String, why: String },
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Ledger(#[from] dsr_jobs::ledger::LedgerError),
    #[error("the export storage: {0}")]
    Storage(String),
    #[error("the e-mail was sent but the ledger could not record it: {0}")]
    SentNotRecorded(String),
}

#[derive(Clone)]
pub struct Deliverer {
    engine: Engine,
    config: Arc<Config>,
    mailer: Mailer,
}

impl Deliverer {
    /// A deliverer when `[delivery]`, `[smtp]` and `[subject] public_url` are all set.
    pub fn configured(engine: &Engine, config: &Config) -> Result<Option<Deliverer>, CliError> {
        if !super::delivers(config) {
            return Ok(None);
        }
        let Some(smtp) = &config.smtp else {
            return Ok(None);
        };
        let mailer = Mailer::new(smtp).map_err(|e| crate::error::bad_input(e.to_string()))?;
        Ok(Some(Deliverer {
            engine: engine.clone(),
            config: Arc::new(config.clone()),
            mailer,
        }))
    }

    /// Sends what the outbox holds every few seconds until `stop`.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "delivery round failed; trying again");
            }
        }
    }

    async fn round(&self) -> Result<(), DeliveryError> {
        let ledger = self.engine.ledger();
        for due in ledger.deliveries_due(ledger.now(), 50).await? {
            // Leased from now, for longer than the mail server may take: no other worker
            // sends the same e-mail meanwhile.
            if !ledger
                .take_delivery(&due.request_id, ledger.now() + self.lease())
                .await?
            {
                continue;
            }
            match self.send_link(&due.request_id, None, due.attempts).await {
                Ok(_) => tracing::info!(request = %due.request_id, "delivery e-mail sent"),
                Err(e) => tracing::warn!(request = %due.request_id, error = %e, "delivery e-mail not sent"),
            }
        }
        Ok(())
    }

    fn lease(&self) -> chrono::Duration {
        let smtp = self
            .config
            .smtp
            .as_ref()
            .map(|s| s.timeout)
            .unwrap_or(Duration::from_secs(30));
        chrono::Duration::from_std(smtp * 2 + Duration::from_secs(60)).unwrap_or(chrono::Duration::minutes(10))
    }

    /// When to try again after `attempts` failures, or `None` to give up.
    fn next_try(&self, attempts: u32) -> Option<chrono::DateTime<Utc>> {
        (attempts + 1 < ATTEMPTS).then(|| {
            let wait = FIRST_WAIT
                .saturating_mul(2u32.saturating_pow(attempts.min(16)))
                .min(LONGEST_WAIT);
            self.engine.ledger().now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
        })
    }

    /// Makes a new link for request `id` (earlier ones stop working once it is sent), mails
    /// it, and records the send. A failure is recorded in the outbox: retried with backoff,
    /// or given up at once when the request cannot be delivered at all. `attempts` made
    /// before; `by` names an operator.
    pub async fn send_link(&self, id: &str, by: Option<&str>, attempts: u32) -> Result<Delivery, DeliveryError> {
        let ledger = self.engine.ledger();
        let result = self.try_send(id, by).await;
        if let Err((delivery, e)) = &result {
            let next = match e {
                // An operator's `dsr resend` of a request that cannot be delivered (yet)
                // leaves the outbox alone: the request may still finish and be mailed.
                DeliveryError::NotDeliverable { .. } if by.is_some() => return result.map_err(|(_, e)| e),
                DeliveryError::NotDeliverable { .. } => None,
                // The mail went out: nothing to withdraw or send again (see `try_send`).
                DeliveryError::SentNotRecorded(_) => return result.map_err(|(_, e)| e),
                _ => self.next_try(attempts),
            };
            ledger
                .delivery_send_failed(delivery.as_deref(), id, &e.to_string(), next)
                .await?;
        }
        result.map_err(|(_, e)| e)
    }

    /// One try: the link made and mailed; on failure, the link made (if it was) and why.
    async fn try_send(&self, id: &str, by: Option<&str>) -> Result<Delivery, (Option<String>, DeliveryError)> {
        let early = |e: DeliveryError| (None, e);
        let ledger = self.engine.ledger();
        let request = ledger.get_request(id).await.map_err(|e| early(e.into()))?;
        let not = |why: &str| {
            early(DeliveryError::NotDeliverable {
                id: id.to_string(),
                why: why.to_string(),
            })
        };
        if request.status != RequestStatus::Completed {
            return Err(not(&format!("it is {}, not completed", request.status)));
        }
        if request.dry_run {
            return Err(not("it was a preview (--dry-run): nothing changed"));
        }
        if request.exports_expired_at.is_some() || request.pseudonymised_at.is_some() {
            return Err(not(
                "its export was deleted at the end of its retention ([export] retention)",
            ));
        }
        let Some(to) = request.identities.emails.first().map(|e| e.as_str().to_string()) else {
            return Err(not("it has no e-mail address to send to"));
        };
        let store =
            crate::wiring::export_store(&self.config).map_err(|e| early(DeliveryError::Storage(e.message())))?;
        let token = secrets::token();
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.config.delivery.link_ttl).unwrap_or(chrono::Duration::days(7));
        let delivery = Delivery {
            id: secrets::id(),
            request_id: id.to_string(),
            created_at: now,
            expires_at: now + ttl,
            max_downloads: self.config.delivery.max_downloads,
            downloads: 0,
            revoked_at: None,
            code_sha256: None,
            code_expires_at: None,
            code_tries: 0,
            codes_sent: 0,
            code_sent_at: None,
            locked_at: None,
            grant_sha256: None,
            grant_expires_at: None,
            grant_used: false,
        };
        let link = super::public_link(&self.config, &format!("/privacy/download/{token}"))
            .ok_or_else(|| not("[subject] public_url is not set"))?;
        let expires = delivery
            .expires_at
            .with_timezone(&self.config.zone())
            .format("%Y-%m-%d %H:%M %Z")
            .to_string();
        let controller = &self.config.controller.name;
        let mail = if let Some(location) = &request.bundle {
            let size = match store.key_of(location) {
                Some(key) => store.size(&key).await.ok(),
                None => None,
            };
            let facts = texts::LinkFacts {
                link: &link,
                expires: &expires,
                max_downloads: delivery.max_downloads,
                size,
            };
            texts::bundle_ready(&to, request.lang, controller, request.kind, &facts)
        } else if request.confirmation.is_some() {
            let bytes = store
                .get(&confirmation_keys(id).json)
                .await
                .map_err(|e| early(DeliveryError::Storage(e.to_string())))?;
            let doc =
                ConfirmationDocument::from_slice(&bytes).map_err(|e| early(DeliveryError::Storage(e.to_string())))?;
            let facts = texts::LinkFacts {
                link: &link,
                expires: &expires,
                max_downloads: delivery.max_downloads,
                size: None,
            };
            texts::change_done(&to, request.lang, controller, &doc, &facts)
        } else {
            return Err(not("it has neither a bundle nor a confirmation"));
        };
        ledger
            .create_delivery(
                &delivery.id,
                id,
                &secrets::sha256(&token),
                delivery.expires_at,
                delivery.max_downloads,
            )
            .await
            .map_err(|e| early(e.into()))?;
        self.mailer
            .send(mail)
            .await
            .map_err(|e| (Some(delivery.id.clone()), e.into()))?;
        // The subject has the link now: it is never withdrawn. Recording the send is tried
        // again if the ledger is busy; if it still fails, the lease runs out and the worker
        // sends a fresh link (a second e-mail rather than none).
        let mut tries = 0;
        loop {
            match ledger.delivery_sent(&delivery, by).await {
                Ok(()) => return Ok(delivery),
                Err(e) if tries >= 2 => return Err((None, DeliveryError::SentNotRecorded(e.to_string()))),
                Err(e) => {
                    tracing::warn!(error = %e, "the e-mail went out but the ledger did not record it; trying again");
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
