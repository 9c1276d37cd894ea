//! dsr as an OpenDSR processor (docs/opendsr.md): what `dsr serve`'s OpenDSR routes and the
//! worker's status callbacks share — the configured signing key and certificate, the
//! mapping of dsr's request statuses onto OpenDSR's four, and the status document.

pub mod callbacks;

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dsr_jobs::model::{Request, RequestKind, RequestStatus, Task};
use dsr_opendsr::SigningIdentity;
use dsr_opendsr::protocol::{self, API_VERSION, Status, StatusDoc, time_text};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::config::OpenDsrConfig;
use crate::error::{CliError, bad_input};

/// The `[opendsr]` section with its key and certificate read and checked.
#[derive(Debug, Clone)]
pub struct OpenDsr {
    pub config: OpenDsrConfig,
    pub identity: Arc<SigningIdentity>,
}

impl OpenDsr {
    /// Reads the key and the certificate; refuses a pair that does not belong together, a
    /// key OpenDSR signatures cannot use, and a certificate that is self-signed or not issued
    /// for `public_url`'s host.
    pub fn from_config(config: &OpenDsrConfig) -> Result<OpenDsr, CliError> {
        let key = config
            .signing_key
            .resolve()
            .map_err(|e| bad_input(format!("opendsr.signing_key: {e}")))?;
        let certificate = config
            .certificate
            .resolve()
            .map_err(|e| bad_input(format!("opendsr.certificate: {e}")))?;
        let identity = SigningIdentity::from_pem(key.expose_secret(), certificate.expose_secret())
            .map_err(|e| bad_input(format!("opendsr.signing_key and opendsr.certificate: {e}")))?;
        identity.check_domain(config.domain()).map_err(|e| {
            bad_input(format!(
                "opendsr.certificate: {e} (the OpenDSR domain is opendsr.public_url's host)"
            ))
        })?;
        Ok(OpenDsr {
            config: config.clone(),
            identity: Arc::new(identity),
        })
    }

    /// `[opendsr]` when configured, read; none otherwise.
    pub fn configured(config: &crate::config::Config) -> Result<Option<OpenDsr>, CliError> {
        config.opendsr.as_ref().map(OpenDsr::from_config).transpose()
    }

    pub fn domain(&self) -> &str {
        self.config.domain()
    }

    /// `doc` as JSON, signed: the body and the signature and domain headers under both their
    /// OpenDSR and their OpenGDPR names (§10.1).
    pub fn signed<T: Serialize>(&self, status: StatusCode, doc: &T) -> Response {
        let body = match serde_json::to_vec(doc) {
            Ok(body) => body,
            Err(e) => return internal(&format!("cannot write an OpenDSR document: {e}")),
        };
        let signature = match self.identity.sign(&body) {
            Ok(signature) => signature,
            Err(e) => return internal(&format!("cannot sign an OpenDSR document: {e}")),
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.signature_headers(&signature) {
            headers.insert(name, value);
        }
        response
    }

    /// The signature and domain headers for a body signed with `signature`.
    pub fn signature_headers(&self, signature: &str) -> Vec<(&'static str, HeaderValue)> {
        let mut headers = Vec::new();
        if let (Ok(signature), Ok(domain)) = (HeaderValue::try_from(signature), HeaderValue::try_from(self.domain())) {
            for name in [protocol::SIGNATURE_HEADER, protocol::LEGACY_SIGNATURE_HEADER] {
                headers.push((name, signature.clone()));
            }
            for name in [protocol::DOMAIN_HEADER, protocol::LEGACY_DOMAIN_HEADER] {
                headers.push((name, domain.clone()));
            }
        }
        headers
    }

    /// Where a completed access or portability request's bundle is fetched (with the
    /// controller's token).
    pub fn results_url(&self, subject_request_id: &str) -> String {
        format!("{}/requests/{subject_request_id}/results", self.config.versioned_base())
    }

    /// The status document of `request` (§8.3).
    pub fn status_doc(
        &self,
        controller_id: &str,
        subject_request_id: &str,
        request: &Request,
        tasks: &[Task],
    ) -> StatusDoc {
        let status = status_of(request.status);
        let (results_url, results_count) = self.results(subject_request_id, request, tasks);
        StatusDoc {
            controller_id: controller_id.to_string(),
            expected_completion_time: time_text(request.due_at),
            subject_request_id: subject_request_id.to_string(),
            request_status: status,
            api_version: Some(API_VERSION.to_string()),
            results_url,
            results_count,
        }
    }

    /// For a completed access or portability request with a bundle still kept: where it is,
    /// and how many records it holds.
    pub fn results(
        &self,
        subject_request_id: &str,
        request: &Request,
        tasks: &[Task],
    ) -> (Option<String>, Option<u64>) {
        let offers_results = matches!(request.kind, RequestKind::Access | RequestKind::Portability)
            && status_of(request.status) == Status::Completed
            && request.bundle.is_some()
            && request.exports_expired_at.is_none();
        if !offers_results {
            return (None, None);
        }
        let count = tasks.iter().map(|t| t.found).sum();
        (Some(self.results_url(subject_request_id)), Some(count))
    }
}

/// dsr's status as one of OpenDSR's four (§8). A request dsr could not finish (failed,
/// partially completed) is `in_progress`: it is not fulfilled, and it waits for an operator,
/// who retries it; one an operator cancelled, or whose change plan was rejected, is
/// `cancelled`.
pub fn status_of(status: RequestStatus) -> Status {
    match status {
        RequestStatus::Received => Status::Pending,
        RequestStatus::InProgress
        | RequestStatus::AwaitingApproval
        | RequestStatus::PartiallyCompleted
        | RequestStatus::Failed => Status::InProgress,
        RequestStatus::Completed => Status::Completed,
        RequestStatus::Cancelled | RequestStatus::Rejected => Status::Cancelled,
    }
}

/// A 500 whose cause goes to the log only.
fn internal(cause: &str) -> Response {
    tracing::error!(%cause, "OpenDSR answer failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error: see the server's log",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dsr_status_has_an_opendsr_status_and_only_an_ended_success_is_completed() {
        for &status in RequestStatus::ALL {
            let mapped = status_of(status);
            assert_eq!(
                mapped == Status::Completed,
                status == RequestStatus::Completed,
                "{status}"
            );
            if !status.is_terminal() {
                assert!(!mapped.is_final(), "{status} can still change");
            }
        }
        assert_eq!(status_of(RequestStatus::Received), Status::Pending);
        assert_eq!(status_of(RequestStatus::Failed), Status::InProgress);
        assert_eq!(status_of(RequestStatus::Rejected), Status::Cancelled);
    }
}
