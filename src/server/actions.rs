//! What an operator does to a request, over HTTP as on the command line: cancel, retry,
//! extend, approve (with the plan hash) and reject; its plan and audit events; the audit
//! chain's check; and the bundle and confirmation, streamed from the export storage.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use chrono::Utc;
use dsr_jobs::ledger::tokens::{ApiToken, Scope};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::openapi::Refusals;
use super::problem::Problem;
use crate::output::{RequestDoc, status_json};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(extend))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(plan))
        .routes(routes!(events))
        .routes(routes!(bundle))
        .routes(routes!(confirmation))
        .routes(routes!(audit_verify))
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

/// Cancel a request that has not ended (scope requests:write).
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/cancel",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = RequestDoc), Refusals)
)]
async fn cancel(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    answer(
        async {
            let token = caller.require(Scope::RequestsWrite)?;
            // What processors hold is withdrawn too (each outcome an audit event), on a task
            // of its own: a caller that hangs up does not stop it half-way.
            let (engine, by, request) = (state.engine.clone(), actor(token), id.clone());
            tokio::spawn(
                async move { dsr_jobs::cancel::cancel(engine.ledger(), engine.connectors(), &request, &by).await },
            )
            .await
            .map_err(|e| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("the cancellation failed: {e}"),
                )
            })??;
            status(&state, &id).await
        }
        .await,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Only this processor's task (default: every failed one).
    processor: Option<String>,
}

/// Queue a request's failed tasks again (scope requests:write).
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/retry",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    request_body = Option<RetryBody>,
    responses((status = 200, body = RequestDoc), Refusals)
)]
async fn retry(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            let token = caller.require(Scope::RequestsWrite)?;
            let wanted: RetryBody = body(&bytes)?;
            let processor = wanted
                .processor
                .map(|p| dsr_connector::Processor::known(&p))
                .transpose()
                .map_err(|e| {
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", e.to_string()).field("processor")
                })?;
            let reset = state.engine.ledger().retry(&id, processor, &actor(token)).await?;
            state.engine.queue_tasks_or_sweep(&id, &reset).await;
            status(&state, &id).await
        }
        .await,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    months: u32,
    reason: String,
}

/// Extend the deadline by up to two further months, with a reason (Art. 12(3)) (scope requests:write).
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/extend",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    request_body = ExtendBody,
    responses((status = 200, body = RequestDoc), Refusals)
)]
async fn extend(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            let token = caller.require(Scope::RequestsWrite)?;
            let wanted: ExtendBody = body(&bytes)?;
            let zone = state.config.zone();
            state
                .engine
                .ledger()
                .extend(&id, wanted.months, &wanted.reason, zone, Utc::now(), &actor(token))
                .await?;
            status(&state, &id).await
        }
        .await,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The plan hash `GET …/plan` answered (`dsr plan` prints the same).
    plan: String,
}

/// Execute exactly the plan with this hash (scope requests:approve).
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/approve",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    request_body = ApproveBody,
    responses((status = 200, body = RequestDoc), Refusals)
)]
async fn approve(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            let token = caller.require(Scope::RequestsApprove)?;
            let wanted: ApproveBody = body(&bytes)?;
            let approved = state
                .engine
                .ledger()
                .approve(&id, &wanted.plan, &actor(token), state.config.erasure.four_eyes)
                .await?;
            state.engine.queue_tasks_or_sweep(&id, &approved).await;
            status(&state, &id).await
        }
        .await,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    reason: String,
}

/// End a request awaiting approval as rejected (scope requests:approve).
#[utoipa::path(
    post,
    path = "/v1/requests/{id}/reject",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    request_body = RejectBody,
    responses((status = 200, body = RequestDoc), Refusals)
)]
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

/// The request's plans and the hash to approve, as `dsr plan --json` (scope requests:read).
#[utoipa::path(
    get,
    path = "/v1/requests/{id}/plan",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = Object), Refusals)
)]
async fn plan(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    answer(
        async {
            caller.require(Scope::RequestsRead)?;
            // An unknown id is a 404 (plan_doc answers in the command line's terms).
            state.engine.ledger().get_request(&id).await?;
            let doc = crate::commands::plans::plan_doc(state.engine.ledger(), &id).await?;
            Ok(Json(doc).into_response())
        }
        .await,
    )
}

/// The request's audit events with their notes (scope audit:read).
#[utoipa::path(
    get,
    path = "/v1/requests/{id}/events",
    tag = "audit",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = Object), Refusals)
)]
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

/// Walk the audit chain (scope audit:read).
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "audit",
    security(("token" = [])),
    responses((status = 200, body = Object), Refusals)
)]
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

/// The access bundle, streamed (scope requests:read).
#[utoipa::path(
    get,
    path = "/v1/requests/{id}/bundle",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = super::openapi::ZipFile, content_type = "application/zip"), Refusals)
)]
async fn bundle(State(state): State<AppState>, method: Method, caller: Caller, Path(id): Path<String>) -> Response {
    answer(download(&state, &method, &caller, &id, Export::Bundle).await)
}

/// The signed confirmation of a change (scope requests:read).
#[utoipa::path(
    get,
    path = "/v1/requests/{id}/confirmation",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = Object, content_type = "application/json"), Refusals)
)]
async fn confirmation(
    State(state): State<AppState>,
    method: Method,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    answer(download(&state, &method, &caller, &id, Export::Confirmation).await)
}

#[derive(Clone, Copy)]
pub(super) enum Export {
    Bundle,
    Confirmation,
}

/// Streams a request's bundle or confirmation from the export storage, never held whole.
async fn download(
    state: &AppState,
    method: &Method,
    caller: &Caller,
    id: &str,
    what: Export,
) -> Result<Response, Problem> {
    let token = caller.require(Scope::RequestsRead)?;
    let by = (method != Method::HEAD).then(|| actor(token));
    stream_export(state, id, what, by.as_deref()).await
}

/// Streams request `id`'s bundle or confirmation (the caller's right to it checked before).
/// A download handed to `by` is first an audit event (`export.downloaded`, naming who): one
/// that cannot be recorded is not handed over. `None` (a `HEAD`) records nothing.
pub(super) async fn stream_export(
    state: &AppState,
    id: &str,
    what: Export,
    by: Option<&str>,
) -> Result<Response, Problem> {
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
    // Only a missing file is a 404; anything else is the storage failing, said in the log.
    let failed = |e: dsr_jobs::storage::StorageError| {
        if e.kind() == std::io::ErrorKind::NotFound {
            gone("it is no longer in the export storage")
        } else {
            tracing::warn!(error = %e, "could not read an export for the API");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the export storage did not answer; the server's log says why",
            )
        }
    };
    let size = store.size(&key).await.map_err(failed)?;
    let reader = store.reader(&key).await.map_err(failed)?;
    if let Some(by) = by {
        let detail = serde_json::json!({"by": by, "file": name});
        if let Err(e) = state
            .engine
            .ledger()
            .audit(Some(id), None, "export.downloaded", detail)
            .await
        {
            tracing::warn!(error = %e, "could not record a download; not handed over");
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the download could not be recorded in the ledger, so it was not handed over; try again",
            ));
        }
    }
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
