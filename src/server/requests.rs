//! `/v1/requests`: create (with the command line's validation; an `Idempotency-Key` makes a
//! retried POST return the first request), list (filters and a cursor), and get one.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use chrono::Utc;
use dsr_jobs::ledger::tokens::Scope;
use dsr_jobs::ledger::{Idempotency, ListFilter, Origin};
use dsr_jobs::model::{RequestKind, RequestStatus};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::openapi::{Refusals, RequestPage};
use super::problem::Problem;
use crate::cli::RequestArgs;
use crate::output::{RequestDoc, status_json};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(one))
}

/// A new request, as the command line takes it (`dsr enqueue KIND --email … --set …`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestBody {
    /// access, erasure, rectification, objection or portability.
    kind: String,
    #[serde(default)]
    email: Vec<String>,
    #[serde(default)]
    phone: Vec<String>,
    #[serde(default)]
    name: Vec<String>,
    #[serde(default)]
    ga_client_id: Vec<String>,
    #[serde(default)]
    ga_user_id: Vec<String>,
    /// For a rectification: field → new value.
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// Only these processors (default: every configured one).
    #[serde(default)]
    processors: Vec<String>,
    lang: Option<String>,
    #[serde(default)]
    dry_run: bool,
    /// How the subject's identity was checked ("ID card at the counter"); required for
    /// access, portability and erasure unless `[subject] operator_verification = "optional"`.
    verified_by: Option<String>,
}

/// Longest `Idempotency-Key` taken.
const KEY_MAX: usize = 255;

/// Create a request (scope requests:write). Validated as `dsr enqueue` validates it; an
/// `Idempotency-Key` makes a retried call return the first request.
#[utoipa::path(
    post,
    path = "/v1/requests",
    tag = "requests",
    security(("token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII characters, kept per token")),
    request_body = NewRequestBody,
    responses(
        (status = 201, body = RequestDoc, description = "Created and queued.", headers(("Location" = String))),
        (status = 200, body = RequestDoc, description = "The request this Idempotency-Key created before."),
        Refusals,
    )
)]
async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Bytes) -> Response {
    match create_request(&state, &caller, &headers, &body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn create_request(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let token = caller.require(Scope::RequestsWrite)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= KEY_MAX && k.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-header",
                        format!("Idempotency-Key must be 1 to {KEY_MAX} printable ASCII characters"),
                    )
                    .field("Idempotency-Key")
                })?;
            Some(key.to_string())
        }
    };
    let parsed: NewRequestBody = serde_json::from_slice(body).map_err(|e| {
        let message = e.to_string();
        // serde names the field between backticks: "unknown field `x`", "missing field `kind`".
        let field = message.split('`').nth(1).map(String::from);
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            format!("the body is not a request: {message}"),
        );
        problem.field = field;
        problem
    })?;
    if parsed.kind.parse::<RequestKind>().is_err() {
        let kinds: Vec<_> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            format!("unknown kind `{}`: use one of {}", parsed.kind, kinds.join(", ")),
        )
        .field("kind"));
    }
    let args = RequestArgs {
        kind: parsed.kind,
        email: parsed.email,
        phone: parsed.phone,
        name: parsed.name,
        ga_client_id: parsed.ga_client_id,
        ga_user_id: parsed.ga_user_id,
        set: parsed.set.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        processor: parsed.processors,
        lang: parsed.lang,
        dry_run: parsed.dry_run,
        verified_by: parsed.verified_by,
        by: None,
        timeout: std::time::Duration::ZERO,
    };
    let configured = state.engine.connectors().processors();
    let new = crate::request::build_request(&args, &state.config, &configured)?;
    let origin = Origin {
        actor: Some(format!("token:{}", token.name)),
        idempotency: key.map(|key| Idempotency {
            token_id: token.id.clone(),
            key,
            body_sha256: hex::encode(Sha256::digest(body)),
        }),
        opendsr: None,
        submission: None,
    };
    let (id, new_request) = match state.engine.enqueue_from(new, &origin).await {
        Ok(created) => created,
        // Stored, not yet queued: the recovery sweep queues it. Created all the same.
        Err(dsr_jobs::EngineError::Queue(queue)) if queue.stored_request().is_some() => {
            (queue.stored_request().unwrap_or_default().to_string(), true)
        }
        Err(e) => return Err(e.into()),
    };
    let request = state.engine.ledger().get_request(&id).await?;
    let tasks = state.engine.ledger().tasks(&id).await?;
    let status = if new_request {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(status_json(&request, &tasks))).into_response();
    if let Ok(location) = HeaderValue::try_from(format!("/v1/requests/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if !new_request {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Filters and paging of the request list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// A request status (received, in_progress, awaiting_approval, completed, …).
    status: Option<String>,
    /// access, erasure, rectification, objection or portability.
    kind: Option<String>,
    /// Only requests with a task at this processor.
    processor: Option<String>,
    /// Only requests not ended and past their deadline.
    #[serde(default)]
    overdue: Option<bool>,
    /// Only requests whose tasks still fail close to the deadline.
    #[serde(default)]
    needs_attention: Option<bool>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

const LIMIT_DEFAULT: usize = 50;
const LIMIT_MAX: usize = 200;

/// List requests, newest first (scope requests:read).
#[utoipa::path(
    get,
    path = "/v1/requests",
    tag = "requests",
    security(("token" = [])),
    params(ListQuery),
    responses((status = 200, body = RequestPage), Refusals)
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    match list_requests(&state, &caller, query).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn list_requests(
    state: &AppState,
    caller: &Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Scope::RequestsRead)?;
    let Query(query) = query.map_err(|e| {
        let message = e.body_text();
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            format!("{message}; the query takes status, kind, processor, overdue, needs_attention, limit and cursor"),
        );
        problem.field = message.split('`').nth(1).map(String::from);
        problem
    })?;
    let invalid = |field: &str, detail: String| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-query", detail).field(field.to_string())
    };
    let status = query
        .status
        .as_deref()
        .map(str::parse::<RequestStatus>)
        .transpose()
        .map_err(|e| invalid("status", e.to_string()))?;
    let kind = query
        .kind
        .as_deref()
        .map(str::parse::<RequestKind>)
        .transpose()
        .map_err(|e| invalid("kind", e.to_string()))?;
    let processor = query
        .processor
        .as_deref()
        .map(dsr_connector::Processor::known)
        .transpose()
        .map_err(|e| invalid("processor", e.to_string()))?;
    let limit = query.limit.unwrap_or(LIMIT_DEFAULT);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(invalid("limit", format!("limit must be 1 to {LIMIT_MAX}")));
    }
    let ledger = state.engine.ledger();
    let filter = ListFilter {
        status,
        overdue_at: query.overdue.unwrap_or(false).then(Utc::now),
    };
    let mut requests = ledger.list(&filter).await?;
    let attention: std::collections::HashMap<String, chrono::DateTime<Utc>> =
        ledger.needing_attention().await?.into_iter().collect();
    requests.retain(|r| {
        kind.is_none_or(|k| r.kind == k) && (!query.needs_attention.unwrap_or(false) || attention.contains_key(&r.id))
    });
    // Newest first. The cursor is where the previous page ended — its last request's
    // received time and id — so a request changing status meanwhile moves nothing.
    requests.sort_by(|a, b| b.received_at.cmp(&a.received_at).then_with(|| b.id.cmp(&a.id)));
    if let Some(cursor) = &query.cursor {
        let (at, id) =
            read_cursor(cursor).ok_or_else(|| invalid("cursor", "the cursor is not one this API gave".into()))?;
        requests.retain(|r| (r.received_at, r.id.as_str()) < (at, id.as_str()));
    }
    let mut items: Vec<(chrono::DateTime<Utc>, String, serde_json::Value)> = Vec::new();
    let mut next = None;
    for r in &requests {
        let tasks = ledger.tasks(&r.id).await?;
        if processor.is_some_and(|p| !tasks.iter().any(|t| t.processor == p)) {
            continue;
        }
        if items.len() == limit {
            // One more matches: the page ends with the one before it.
            next = items.last().map(|(at, id, _)| make_cursor(*at, id));
            break;
        }
        let mut item = status_json(r, &tasks);
        item["needs_attention"] = json!(attention.contains_key(&r.id));
        items.push((r.received_at, r.id.clone(), item));
    }
    let items: Vec<_> = items.into_iter().map(|(_, _, item)| item).collect();
    Ok(Json(json!({"requests": items, "next_cursor": next})).into_response())
}

/// An opaque cursor: the hex of `<received_at as RFC 3339 with nanoseconds>|<id>`.
fn make_cursor(at: chrono::DateTime<Utc>, id: &str) -> String {
    hex::encode(format!(
        "{}|{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    ))
}

fn read_cursor(cursor: &str) -> Option<(chrono::DateTime<Utc>, String)> {
    let text = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    let (at, id) = text.split_once('|')?;
    Some((
        chrono::DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
        id.to_string(),
    ))
}

/// One request with its tasks (scope requests:read).
#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = "requests",
    security(("token" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses((status = 200, body = RequestDoc), Refusals)
)]
async fn one(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    let result = async {
        caller.require(Scope::RequestsRead)?;
        let ledger = state.engine.ledger();
        let Some(request) = ledger.request(&id).await? else {
            return Err(Problem::not_found(format!("no request with id {id}")));
        };
        let tasks = ledger.tasks(&id).await?;
        let mut doc = crate::output::request_doc(&request, &tasks);
        for (task, stored) in doc.processors.iter_mut().zip(&tasks) {
            task.evidence = Some(stored.evidence.clone());
        }
        doc.needs_attention = Some(ledger.attention_since(&id).await?.is_some());
        Ok::<_, Problem>(Json(doc).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
