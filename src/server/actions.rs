//! What an operator does to a request, over HTTP as on the command line: cancel, retry,
//! extend, approve (with the plan hash) and reject; its plan and audit events; the audit
//! chain's check; and the bundle and confirmation, streamed from the export storage.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use dsr_jobs::ledger::tokens::{ApiToken, Scope};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::output::status_json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/requests/{id}/cancel", post(cancel))
        .route("/requests/{id}/retry", post(retry))
        .route("/requests/{id}/extend", post(extend))
        .route("/requests/{id}/approve", post(approve))
        .route("/requests/{id}/reject", post(reject))
        .route("/requests/{id}/plan", get(plan))
        .route("/requests/{id}/events", get(events))
        .route("/requests/{id}/bundle", get(bundle))
        .route("/requests/{id}/confirmation", get(confirmation))
        .route("/audit/verify", get(audit_verify))
}

/// Who acted, as the audit events record it.
fn actor(token: &ApiToken) -> String {
    format!("token:{}", token.name)
}

/// A JSON body (`{}` when the body is empty), or 400 naming the field serde names.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            format!("the body is not valid: {message}"),
        );
        problem.field = message.split('`').nth(1).map(String::from);
        problem
    })
}

/// The request as `GET /v1/requests/{id}` answers it.
async fn status(state: &AppState, id: &str) -> Result<Response, Problem> {
    let ledger = state.engine.ledger();
    let request = ledger.get_request(id).await?;
    let tasks = ledger.tasks(id).await?;
    Ok(Json(status_json(&request, &tasks)).into_response())
}

fn answer(result: Result<Response, Problem>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn cancel(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    answer(
        async {
            caller.require(Scope::RequestsWrite)?;
            state.engine.ledger().cancel(&id).await?;
            status(&state, &id).await
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    /// Only this processor's task (default: every failed one).
    processor: Option<String>,
}

async fn retry(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            caller.require(Scope::RequestsWrite)?;
            let wanted: RetryBody = body(&bytes)?;
            let processor = wanted
                .processor
                .map(|p| p.parse::<dsr_connector::Processor>())
                .transpose()
                .map_err(|e| {
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", e.to_string()).field("processor")
                })?;
            let reset = state.engine.ledger().retry(&id, processor).await?;
            state.engine.queue_tasks(&id, &reset).await?;
            status(&state, &id).await
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    months: u32,
    reason: String,
}

async fn extend(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            caller.require(Scope::RequestsWrite)?;
            let wanted: ExtendBody = body(&bytes)?;
            let zone = state.config.zone();
            state
                .engine
                .ledger()
                .extend(&id, wanted.months, &wanted.reason, zone, Utc::now())
                .await?;
            status(&state, &id).await
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// The plan hash `GET …/plan` answered (`dsr plan` prints the same).
    plan: String,
}

async fn approve(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            let token = caller.require(Scope::RequestsApprove)?;
            let wanted: ApproveBody = body(&bytes)?;
            let approved = state.engine.ledger().approve(&id, &wanted.plan, &actor(token)).await?;
            state.engine.queue_tasks(&id, &approved).await?;
            status(&state, &id).await
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: String,
}

async fn reject(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            let token = caller.require(Scope::RequestsApprove)?;
            let wanted: RejectBody = body(&bytes)?;
            state.engine.ledger().reject(&id, &wanted.reason, &actor(token)).await?;
            status(&state, &id).await
        }
        .await,
    )
}

async fn plan(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    answer(
        async {
            caller.require(Scope::RequestsRead)?;
            let doc = crate::commands::plans::plan_doc(state.engine.ledger(), &id).await?;
            Ok(Json(doc).into_response())
        }
        .await,
    )
}

async fn events(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    answer(
        async {
            caller.require(Scope::AuditRead)?;
            let ledger = state.engine.ledger();
            ledger.get_request(&id).await?;
            let events = ledger.audit_events(&id).await?;
            Ok(Json(crate::commands::verify::events_json(&id, &events)).into_response())
        }
        .await,
    )
}

async fn audit_verify(State(state): State<AppState>, caller: Caller) -> Response {
    answer(
        async {
            caller.require(Scope::AuditRead)?;
            let verdict = state.engine.ledger().verify_audit_chain().await?;
            Ok(Json(crate::commands::verify::chain_json(&verdict)).into_response())
        }
        .await,
    )
}

async fn bundle(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    answer(download(&state, &caller, &id, Export::Bundle).await)
}

async fn confirmation(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    answer(download(&state, &caller, &id, Export::Confirmation).await)
}

#[derive(Clone, Copy)]
enum Export {
    Bundle,
    Confirmation,
}

/// Streams a request's bundle or confirmation from the export storage, never held whole.
async fn download(state: &AppState, caller: &Caller, id: &str, what: Export) -> Result<Response, Problem> {
    caller.require(Scope::RequestsRead)?;
    let request = state.engine.ledger().get_request(id).await?;
    let (location, name, media_type) = match what {
        Export::Bundle => (request.bundle, "bundle", "application/zip"),
        Export::Confirmation => (request.confirmation, "confirmation", "application/json"),
    };
    let gone = |why: &str| Problem::not_found(format!("request {id} has no {name}: {why}"));
    if request.exports_expired_at.is_some() {
        return Err(gone("it was deleted at the end of its retention ([export] retention)"));
    }
    let location = location.ok_or_else(|| gone("none was written (see its status)"))?;
    let store = crate::wiring::export_store(&state.config)?;
    let key = store
        .key_of(&location)
        .ok_or_else(|| gone("it is in an export storage this server is not configured for"))?;
    let size = store.size(&key).await.map_err(|e| gone(&e.to_string()))?;
    let reader = store.reader(&key).await.map_err(|e| gone(&e.to_string()))?;
    let file_name = location.rsplit('/').next().unwrap_or(name).to_string();
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(reader)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(disposition) = HeaderValue::try_from(format!("attachment; filename=\"{}\"", file_name.replace('"', ""))) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
