//! The connector for a processor that speaks OpenDSR: an access request or an erasure is
//! handed to the processor as an OpenDSR request (its id derived from dsr's request and the
//! processor, so a retried attempt finds the one it made rather than making another), and
//! the task waits ([`ConnectorError::Waiting`]) until the processor reports it completed —
//! polled every `poll`, or at once when a verified callback arrives (`dsr serve`). An
//! access request's results are fetched into the bundle when the processor offers them on
//! its own origin; the processor's receipt and final status are the evidence.

use chrono::Utc;
use dsr_connector::plan::{Action, Change, ItemOutcome, Plan, PlanItem};
use dsr_connector::{
    AccessSummary, Capabilities, CheckReport, ConfigError, Connector, ConnectorError, Identities, ItemCall, MatchClaim,
    Processor, Record, RecordSink, Right, Support, TaskContext,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::config::ProcessorConfig;
use crate::protocol::{API_VERSION, Identity, RequestType, Status, StatusDoc, SubjectRequest, time_text};

/// The category of what an OpenDSR processor holds: its answer, as it gave it.
const RESULTS: &str = "opendsr_results";
const REQUEST: &str = "opendsr_request";

pub struct OpenDsrConnector {
    processor: Processor,
    config: ProcessorConfig,
    client: Client,
}

impl OpenDsrConnector {
    /// The connector for `[processors.opendsr.<name>]` (`processor` is `opendsr.<name>`).
    pub fn new(processor: Processor, config: ProcessorConfig) -> Result<OpenDsrConnector, ConfigError> {
        let client = Client::new(processor, &config)?;
        Ok(OpenDsrConnector {
            processor,
            config,
            client,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The `subject_request_id` dsr uses at this processor for the task of `ctx`: a
    /// lowercase UUID v4 (§1.1) made from the request, the processor and the task's
    /// generation, the same on every attempt until an operator sends the task back.
    pub fn subject_request_id(&self, ctx: &TaskContext) -> String {
        subject_request_id(self.processor, &ctx.request_id, ctx.generation)
    }

    fn waiting(&self, status: Status) -> ConnectorError {
        ConnectorError::Waiting {
            processor: self.processor,
            status: status.as_str().into(),
            after: self.config.poll,
        }
    }

    fn cancelled(&self, id: &str) -> ConnectorError {
        ConnectorError::permanent(
            self.processor,
            "cancelled_by_processor",
            format!("the processor reports request {id} cancelled: ask it why, then `dsr retry` sends a new one"),
        )
    }

    /// The OpenDSR request for `subject` (its e-mail addresses, raw), asked at `asked_at`.
    fn request_body(
        &self,
        id: &str,
        kind: RequestType,
        subject: &Identities,
        asked_at: Option<chrono::DateTime<Utc>>,
    ) -> Vec<u8> {
        let request = SubjectRequest {
            regulation: "gdpr".into(),
            subject_request_id: id.to_string(),
            subject_request_type: kind,
            subject_identities: subject
                .emails
                .iter()
                .map(|email| Identity {
                    identity_type: "email".into(),
                    identity_value: email.as_str().to_string(),
                    identity_format: "raw".into(),
                })
                .collect(),
            // §7.1.1: when the subject asked, not when dsr passes it on.
            submitted_time: time_text(asked_at.unwrap_or_else(Utc::now)),
            api_version: Some(API_VERSION.into()),
            status_callback_urls: self.client.callback_url().map(str::to_string).into_iter().collect(),
            extensions: None,
        };
        serde_json::to_vec(&request).unwrap_or_default()
    }

    /// The request this task has at the processor, and its status there (none when it has
    /// none yet). A task an operator sent back (`dsr retry`) carries on with the newest
    /// request made for it unless the processor cancelled that one; then, or when there is
    /// none, it is the task's current generation's.
    async fn current(&self, ctx: &TaskContext) -> Result<(String, Option<StatusDoc>), ConnectorError> {
        let newest = self.subject_request_id(ctx);
        for generation in (0..=ctx.generation).rev() {
            let id = subject_request_id(self.processor, &ctx.request_id, generation);
            match self.client.status(&id).await? {
                None => continue,
                Some(status) if status.request_status == Status::Cancelled && generation < ctx.generation => {
                    return Ok((newest, None));
                }
                Some(status) => return Ok((id, Some(status))),
            }
        }
        Ok((newest, None))
    }

    /// The request at the processor: its status, submitting it first when it has none.
    async fn submitted(
        &self,
        ctx: &TaskContext,
        kind: RequestType,
        subject: &Identities,
    ) -> Result<(String, StatusDoc), ConnectorError> {
        let (id, status) = self.current(ctx).await?;
        if let Some(status) = status {
            return Ok((id, status));
        }
        // Portability goes as access to a processor that does not take it (discovery).
        let kind = match kind {
            RequestType::Portability
                if !self
                    .client
                    .discovery()
                    .await?
                    .supported_subject_request_types
                    .contains(&RequestType::Portability) =>
            {
                RequestType::Access
            }
            kind => kind,
        };
        let body = self.request_body(&id, kind, subject, ctx.asked_at);
        let created = self.client.submit(body, &id).await?;
        tracing::info!(processor = %self.processor, subject_request_id = %id, "OpenDSR request submitted");
        let status = StatusDoc {
            controller_id: created.controller_id,
            expected_completion_time: created.expected_completion_time,
            subject_request_id: created.subject_request_id,
            request_status: Status::Pending,
            api_version: None,
            results_url: None,
            results_count: None,
        };
        Ok((id, status))
    }

    fn no_email(&self) -> String {
        format!(
            "{} takes requests by e-mail address over OpenDSR, and this request has none",
            self.processor.display_name()
        )
    }
}

/// See [`OpenDsrConnector::subject_request_id`].
pub fn subject_request_id(processor: Processor, request_id: &str, generation: u32) -> String {
    let digest = Sha256::digest(format!("dsr opendsr {processor} {request_id} {generation}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The receipt an erasure's item keeps: what the processor said, never the subject.
fn receipt(status: &StatusDoc) -> serde_json::Value {
    json!({
        "subject_request_id": status.subject_request_id,
        "request_status": status.request_status,
        "controller_id": status.controller_id,
        "expected_completion_time": status.expected_completion_time,
    })
}

#[async_trait::async_trait]
impl Connector for OpenDsrConnector {
    fn processor(&self) -> Processor {
        self.processor
    }

    fn capabilities(&self) -> Capabilities {
        let outside = || Support::NotApplicable("OpenDSR carries access, portability and erasure requests only".into());
        Capabilities {
            access: Support::Supported,
            erasure: Support::Supported,
            rectification: outside(),
            objection: outside(),
        }
    }

    async fn check(&self) -> Result<CheckReport, ConnectorError> {
        let discovery = self.client.discovery().await?;
        self.client.certificate().await?;
        let mut details = vec![
            format!("discovery answers: OpenDSR {}", discovery.api_version),
            format!(
                "its certificate is issued for {}, trusted, and carries the pinned key",
                self.client.domain()
            ),
        ];
        let email_raw = discovery
            .supported_identities
            .iter()
            .any(|i| i.identity_type == "email" && i.identity_format == "raw");
        let mut ok = email_raw;
        if !email_raw {
            details.push("it does not list e-mail addresses in raw format, the only identity dsr sends".into());
        }
        for wanted in [RequestType::Access, RequestType::Erasure] {
            if !discovery.supported_subject_request_types.contains(&wanted) {
                ok = false;
                details.push(format!("it does not take {} requests", wanted.as_str()));
            }
        }
        if self.client.callback_url().is_none() {
            details.push(format!(
                "no callback_url: dsr polls every {}s instead of hearing of changes",
                self.config.poll.as_secs()
            ));
        }
        Ok(CheckReport { ok, details })
    }

    async fn access(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        if subject.emails.is_empty() {
            return Ok(AccessSummary {
                notes: vec![self.no_email()],
                ..AccessSummary::default()
            });
        }
        let kind = match ctx.portability {
            true => RequestType::Portability,
            false => RequestType::Access,
        };
        let (id, status) = self.submitted(ctx, kind, subject).await?;
        match status.request_status {
            Status::Pending | Status::InProgress => return Err(self.waiting(status.request_status)),
            Status::Cancelled => return Err(self.cancelled(&id)),
            Status::Completed => {}
        }
        let requested_for: Vec<&str> = subject.emails.iter().map(|e| e.as_str()).collect();
        let mut summary = AccessSummary::default();
        let results = match &status.results_url {
            Some(url) => self.client.results(url).await?,
            None => None,
        };
        match (results, &status.results_url) {
            (Some((media, body)), _) => {
                let data = match media.starts_with("application/json") {
                    true => serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body))),
                    false => json!(String::from_utf8_lossy(&body)),
                };
                sink.accept(Record {
                    category: RESULTS.into(),
                    id: Some(id.clone()),
                    provided_by_subject: false,
                    data: json!({"requested_for": requested_for, "results": data}),
                    claims: vec![MatchClaim::email("/requested_for/0")],
                })
                .await?;
                summary.found = status.results_count.unwrap_or(1);
            }
            (None, Some(_)) => summary.notes.push(format!(
                "{} offers the results at an address outside its OpenDSR service; dsr did not fetch them",
                self.processor.display_name()
            )),
            (None, None) => summary.notes.push(format!(
                "{} fulfilled the request and offered no results",
                self.processor.display_name()
            )),
        }
        summary.operator_notes.push(format!(
            "OpenDSR request {id}: completed at the processor (results_count {:?})",
            status.results_count
        ));
        Ok(summary)
    }

    async fn plan(&self, ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        if *change != Change::Erasure {
            return Err(self.unsupported(change.right()));
        }
        let mut plan = Plan::default();
        if subject.emails.is_empty() {
            plan.notes.push(self.no_email());
            return Ok(plan);
        }
        // Planning again is the verification: the erasure is done when the processor says
        // so. Before that the item is due; once executed, a processor that does not know the
        // request yet leaves it due (the engine looks again later, executing nothing twice).
        let (id, status) = self.current(ctx).await?;
        match status {
            None => {}
            Some(status) => match status.request_status {
                Status::Pending | Status::InProgress => return Err(self.waiting(status.request_status)),
                Status::Cancelled => return Err(self.cancelled(&id)),
                Status::Completed => {
                    plan.operator_notes.push(format!(
                        "the processor reports the erasure completed (OpenDSR request {id})"
                    ));
                    return Ok(plan);
                }
            },
        }
        let requested_for: Vec<&str> = subject.emails.iter().map(|e| e.as_str()).collect();
        plan.items.push(PlanItem::new(
            format!("{REQUEST} {id}"),
            REQUEST,
            Action::Delete,
            json!({"subject_request_id": id}),
            json!({"requested_for": requested_for}),
            vec![MatchClaim::email("/requested_for/0")],
        ));
        Ok(plan)
    }

    async fn execute(&self, call: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
        if *call.change != Change::Erasure || call.item.category != REQUEST {
            return Err(ConnectorError::foreign_item(
                self.processor,
                call.item,
                "not an OpenDSR erasure request",
            ));
        }
        let id = self.subject_request_id(call.ctx);
        if call.item.target["subject_request_id"] != id.as_str() {
            return Err(ConnectorError::foreign_item(
                self.processor,
                call.item,
                "made for another request",
            ));
        }
        let (_, status) = self.submitted(call.ctx, RequestType::Erasure, call.subject).await?;
        Ok(ItemOutcome::Done(receipt(&status)))
    }

    /// A cancelled request is cancelled at the processor too, while it is pending there
    /// (§9 allows no more); one it has started or fulfilled is for an operator to take up.
    async fn withdraw(&self, ctx: &TaskContext) -> Result<Option<String>, ConnectorError> {
        let (id, status) = self.current(ctx).await?;
        let Some(status) = status else {
            return Ok(None);
        };
        match status.request_status {
            Status::Pending => {
                self.client.cancel(&id).await?;
                Ok(Some(format!("OpenDSR request {id} cancelled at the processor")))
            }
            Status::Cancelled => Ok(Some(format!(
                "OpenDSR request {id} was cancelled at the processor already"
            ))),
            other => Err(ConnectorError::permanent(
                self.processor,
                "not_cancellable",
                format!(
                    "the processor reports OpenDSR request {id} {other}, and OpenDSR cancels only pending requests \
                     (§9): ask the processor to stop it"
                ),
            )),
        }
    }

    fn unsupported(&self, right: Right) -> ConnectorError {
        ConnectorError::NotSupported {
            processor: self.processor,
            reason: match right {
                Right::Access | Right::Erasure => "the processor was asked for something it cannot do".into(),
                Right::Rectification | Right::Objection => {
                    "OpenDSR carries access, portability and erasure requests only".into()
                }
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dsr_connector::{Email, MemorySink, SecretRef};
    use dsr_fixtures::opendsr::{FakeOpenDsr, OpenDsrOptions, Status as FakeStatus};
    use dsr_fixtures::pki::TestPki;

    /// A section for a processor at `url` with the test CA's leaf pinned.
    pub(crate) fn config(dir: &std::path::Path, pki: &TestPki, url: String) -> ProcessorConfig {
        std::fs::write(dir.join("token"), "Bearer t0ken").unwrap();
        let leaf = crate::signing::read_chain(&pki.cert_pem).unwrap();
        ProcessorConfig {
            enabled: true,
            url,
            certificate_pin: crate::Pin::of(&leaf[0]).unwrap().to_string(),
            auth_header: "Authorization".into(),
            auth_value: Some(SecretRef::File(dir.join("token"))),
            trust_roots: Some(dir.join("ca.pem")),
            poll: std::time::Duration::from_secs(1),
            callback_url: None,
        }
    }

    fn subject() -> Identities {
        let mut subject = Identities::default();
        subject.add_email(Email::parse("kari.nordmann@example.no").unwrap());
        subject
    }

    #[tokio::test]
    async fn a_request_waits_while_the_processor_works_and_fails_when_it_cancels() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::make(dir.path(), false);
        let mut options = OpenDsrOptions::new(pki.cert_pem.clone(), pki.key_pem.clone());
        options.domain = "127.0.0.1".into();
        options.auth_header = Some(("Authorization".into(), "Bearer t0ken".into()));
        let fake = FakeOpenDsr::start(options).await.unwrap();
        let acme = Processor::opendsr("acme").unwrap();
        let connector = OpenDsrConnector::new(acme, config(dir.path(), &pki, fake.api_url())).unwrap();
        let ctx = TaskContext::new("r-1", 1, false);
        let mut sink = MemorySink::default();
        let err = connector.access(&ctx, &subject(), &mut sink).await.unwrap_err();
        assert_eq!(err.code(), "waiting:pending");
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(1)));
        let id = connector.subject_request_id(&ctx);
        fake.set_status(&id, FakeStatus::InProgress).await;
        let err = connector.access(&ctx, &subject(), &mut sink).await.unwrap_err();
        assert_eq!(err.code(), "waiting:in_progress");
        // In progress there: a cancellation in dsr cannot be passed on (§9), and says so.
        let refused = connector.withdraw(&ctx).await.unwrap_err();
        assert_eq!(refused.code(), "permanent:not_cancellable");
        fake.set_status(&id, FakeStatus::Cancelled).await;
        let err = connector.access(&ctx, &subject(), &mut sink).await.unwrap_err();
        assert_eq!(err.code(), "permanent:cancelled_by_processor");
        // A pending one is cancelled there; one the processor never had needs nothing.
        let next = ctx.clone().with_generation(1);
        let err = connector.access(&next, &subject(), &mut sink).await.unwrap_err();
        assert_eq!(err.code(), "waiting:pending", "a retried task asks anew");
        let withdrawn = connector.withdraw(&next).await.unwrap().unwrap();
        assert!(withdrawn.contains("cancelled at the processor"), "{withdrawn}");
        let id = connector.subject_request_id(&next);
        assert_eq!(fake.request(&id).unwrap().status, FakeStatus::Cancelled);
        assert_eq!(connector.withdraw(&ctx.clone().with_generation(2)).await.unwrap(), None);
        // Sent back by an operator while the processor still works on it: resumed, not sent
        // again (a request that failed at dsr's end still stands at the processor).
        let other = TaskContext::new("r-2", 1, false);
        connector.access(&other, &subject(), &mut sink).await.unwrap_err();
        let first = connector.subject_request_id(&other);
        fake.set_status(&first, FakeStatus::InProgress).await;
        let before = fake.requests().len();
        let err = connector
            .access(&other.clone().with_generation(1), &subject(), &mut sink)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "waiting:in_progress");
        assert_eq!(fake.requests().len(), before, "nothing new submitted");
        assert_eq!(fake.requests().len(), 3, "r-1 twice (one per generation), r-2 once");
        assert!(sink.records.is_empty());
        // Rectification is outside OpenDSR.
        let refused = connector.plan(&ctx, &subject(), &Change::Objection).await.unwrap_err();
        assert_eq!(refused.code(), "not_supported");
    }

    #[test]
    fn the_subject_request_id_is_a_lowercase_uuid_v4_the_same_for_every_attempt() {
        let acme = Processor::opendsr("acme").unwrap();
        let id = subject_request_id(acme, "r-1", 0);
        assert!(crate::protocol::is_lowercase_uuid_v4(&id), "{id}");
        assert_eq!(id, subject_request_id(acme, "r-1", 0));
        assert_ne!(id, subject_request_id(acme, "r-2", 0));
        assert_ne!(id, subject_request_id(acme, "r-1", 1), "a retried task asks anew");
        assert_ne!(id, subject_request_id(Processor::opendsr("other").unwrap(), "r-1", 0));
    }
}
