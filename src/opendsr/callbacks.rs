//! Status callbacks (OpenDSR §8.5–8.6), sent by the worker: every `[opendsr] callback_every`
//! it compares each OpenDSR request's status with the one its callback URLs were last told
//! of, queues one callback per URL for a change (in the ledger, so a worker that dies loses
//! none), and sends those due — signed, over https only, to hosts `[opendsr] callback_allow`
//! names (checked again at sending: a host taken off the list is never called), following no
//! redirect — retrying with backoff until the URL answers 2xx or `callback_attempts` run out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dsr_jobs::Engine;
use dsr_jobs::ledger::opendsr::OpenDsrCallback;
use dsr_opendsr::protocol::{Callback, Status, time_text};

use super::{OpenDsr, status_of};
use crate::error::{CliError, bad_input};

/// How long one callback may take; it is leased for twice that.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's wait, doubled per attempt up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(10);
const LONGEST_WAIT: Duration = Duration::from_secs(3600);
/// Callbacks sent per round at most (the rest wait for the next).
const PER_ROUND: u32 = 100;

pub struct Sender {
    engine: Engine,
    opendsr: Arc<OpenDsr>,
    http: reqwest::Client,
}

impl Sender {
    pub fn new(engine: Engine, opendsr: Arc<OpenDsr>) -> Result<Sender, CliError> {
        let mut builder = dsr_connector::http::builder(CALL_TIMEOUT)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &opendsr.config.callback_roots {
            let pem = std::fs::read(path)
                .map_err(|e| bad_input(format!("opendsr.callback_roots: cannot read {}: {e}", path.display())))?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad_input(format!("opendsr.callback_roots: {} is not PEM: {e}", path.display())))?;
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        let http = builder
            .build()
            .map_err(|e| bad_input(format!("cannot make the OpenDSR callback client: {e}")))?;
        Ok(Sender { engine, opendsr, http })
    }

    /// Rounds every `callback_every` until `stop`.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(self.opendsr.config.callback_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "OpenDSR callbacks: the ledger did not answer; trying again next round");
            }
        }
    }

    /// One round: status changes queued as callbacks, then the callbacks due sent.
    pub async fn round(&self) -> Result<(), dsr_jobs::LedgerError> {
        let ledger = self.engine.ledger();
        for (request, status) in ledger.opendsr_unsettled().await? {
            let status = status_of(status).as_str();
            if status != request.status_notified {
                ledger.opendsr_status_changed(&request, status).await?;
            }
        }
        for callback in ledger.opendsr_due_callbacks(Utc::now(), PER_ROUND).await? {
            let Some(request) = ledger.opendsr_request(&callback.subject_request_id).await? else {
                continue;
            };
            // Everything read before the callback is taken: its lease covers the call alone.
            let prepared = self
                .prepare(&request.request_id, &request.controller_id, &callback)
                .await;
            let lease = Utc::now() + chrono::Duration::from_std(2 * CALL_TIMEOUT).unwrap_or_default();
            if !ledger.opendsr_take_callback(&callback, lease).await? {
                continue;
            }
            let sent = match prepared {
                Ok((url, body)) => self.send(url, body).await,
                Err(failure) => Err(failure),
            };
            let outcome = match sent {
                Ok(()) => Ok(()),
                Err(Failure::Never(why)) => Err((why, None)),
                Err(Failure::Again(why)) => Err((why, self.retry_at(callback.attempts + 1))),
            };
            if let Err((why, retry)) = &outcome {
                tracing::warn!(
                    request = %request.request_id,
                    status = %callback.request_status,
                    error = %why,
                    retry_at = ?retry,
                    "OpenDSR callback not taken"
                );
            }
            if !ledger
                .opendsr_callback_done(&request.request_id, &callback, lease, outcome)
                .await?
            {
                tracing::warn!(request = %request.request_id, "an OpenDSR callback outlived its lease; another worker has it");
            }
        }
        Ok(())
    }

    /// When to try again after `attempts` failed, or none once they are used up.
    fn retry_at(&self, attempts: u32) -> Option<DateTime<Utc>> {
        (attempts < self.opendsr.config.callback_attempts).then(|| {
            let wait = FIRST_WAIT
                .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
                .min(LONGEST_WAIT);
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
        })
    }

    /// The callback's URL (checked against the allow-list) and its signed body.
    async fn prepare(
        &self,
        request_id: &str,
        controller_id: &str,
        callback: &OpenDsrCallback,
    ) -> Result<(url::Url, Signed), Failure> {
        let url =
            url::Url::parse(&callback.url).map_err(|_| Failure::Never("the callback URL does not parse".into()))?;
        if !self.opendsr.config.callback_allowed(&url) {
            return Err(Failure::Never(format!(
                "`{}` is not on [opendsr] callback_allow (any more): not sent",
                url.host_str().unwrap_or("(no host)")
            )));
        }
        let status = Status::parse(&callback.request_status)
            .ok_or_else(|| Failure::Never(format!("`{}` is not an OpenDSR status", callback.request_status)))?;
        let ledger = self.engine.ledger();
        let unreadable = |e: dsr_jobs::LedgerError| Failure::Again(format!("the ledger did not answer: {e}"));
        let request = ledger.get_request(request_id).await.map_err(unreadable)?;
        let tasks = ledger.tasks(request_id).await.map_err(unreadable)?;
        let (results_url, results_count) = match status {
            Status::Completed => self.opendsr.results(&callback.subject_request_id, &request, &tasks),
            _ => (None, None),
        };
        let doc = Callback {
            controller_id: controller_id.to_string(),
            expected_completion_time: time_text(request.due_at),
            status_callback_url: callback.url.clone(),
            subject_request_id: callback.subject_request_id.clone(),
            request_status: status,
            results_url,
            results_count,
        };
        let body = serde_json::to_vec(&doc).map_err(|e| Failure::Never(format!("cannot write the callback: {e}")))?;
        let signature = self
            .opendsr
            .identity
            .sign(&body)
            .map_err(|e| Failure::Never(format!("cannot sign the callback: {e}")))?;
        Ok((url, Signed { body, signature }))
    }

    async fn send(&self, url: url::Url, signed: Signed) -> Result<(), Failure> {
        let mut call = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in self.opendsr.signature_headers(&signed.signature) {
            call = call.header(name, value);
        }
        let answer = call
            .body(signed.body)
            .send()
            .await
            .map_err(|e| Failure::Again(format!("the callback URL could not be reached: {}", e.without_url())))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(Failure::Again(format!("the callback URL answered {}", answer.status())))
        }
    }
}

/// A callback's body and its signature.
struct Signed {
    body: Vec<u8>,
    signature: String,
}

/// Why a callback was not taken: worth trying again, or never.
enum Failure {
    Again(String),
    Never(String),
}
