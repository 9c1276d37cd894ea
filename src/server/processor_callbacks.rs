//! `POST /opendsr/callbacks/{name}`: status callbacks from the OpenDSR processor configured as
//! `[processors.opendsr.<name>]` (dsr as the controller). Each is authenticated before it is
//! read (§8.8, the security guidelines): the domain header is the processor's, the
//! certificate its discovery publishes is trusted and carries the pinned key (else 401), the
//! signature over the raw body holds (else 400); then it must be addressed to this URL and
//! name a request open at that processor. A verified callback is kept as evidence in the
//! audit chain, and a final status makes the waiting task look again at once.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dsr_opendsr::CallbackRefusal;
use dsr_opendsr::connector::subject_request_id;
use serde_json::json;
use sha2::Digest;

use super::AppState;
use super::opendsr::Refusal;

pub fn routes() -> Router<AppState> {
    Router::new().route("/opendsr/callbacks/{name}", post(receive))
}

async fn receive(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    match accept(&state, &name, &headers, &body).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(refusal) => {
            // The name is from the path: logged only when it is a configured one.
            let processor = if state.opendsr_processors.contains_key(&name) {
                name.as_str()
            } else {
                "(not configured)"
            };
            tracing::warn!(%processor, status = %refusal.status, "OpenDSR callback refused");
            refusal.into_response()
        }
    }
}

async fn accept(state: &AppState, name: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let connector = state.opendsr_processors.get(name).ok_or_else(|| {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "Request",
            "UnknownProcessor",
            "no OpenDSR processor of this name is configured here",
        )
    })?;
    let callback = connector.client().callback(headers, body).await.map_err(|e| match e {
        CallbackRefusal::Unauthorized(why) => Refusal::new(StatusCode::UNAUTHORIZED, "Authorization", "Untrusted", why),
        CallbackRefusal::Invalid(why) => Refusal::new(StatusCode::BAD_REQUEST, "Validation", "Invalid", why),
    })?;
    let processor = dsr_connector::Connector::processor(connector.as_ref());
    let ledger = state.engine.ledger();
    let open = ledger.open_tasks_at(processor).await?;
    let request_id = open
        .into_iter()
        .find(|(id, retries)| {
            (0..=*retries)
                .any(|generation| subject_request_id(processor, id, generation) == callback.subject_request_id)
        })
        .map(|(id, _)| id)
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "Request",
                "NotFound",
                "no request open at this processor has this subject_request_id",
            )
        })?;
    let detail = json!({
        "subject_request_id": callback.subject_request_id,
        "status": callback.request_status,
        "expected_completion_time": callback.expected_completion_time,
        "results_url": callback.results_url,
        "results_count": callback.results_count,
    });
    let body_sha256 = hex::encode(sha2::Sha256::digest(body));
    let final_status = callback.request_status.is_final();
    let woken = ledger
        .processor_callback(&request_id, processor, detail, &body_sha256, final_status)
        .await?;
    if woken {
        // The sweep would queue it too; this is sooner.
        if let Err(e) = state.engine.queue_tasks(&request_id, &[processor]).await {
            tracing::warn!(request = %request_id, %processor, error = %e, "could not queue the task after a callback; the sweep will");
        }
    }
    Ok(())
}
