//! `/dashboard/processors`: each processor's tasks by status, and `dsr doctor`'s checks run
//! on demand (`POST`, operators and approvers): credentials, permissions, the vendor
//! answering — the same checks, in the same words, as the command line.

use std::collections::BTreeMap;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dsr_jobs::model::Role;
use minijinja::context;
use serde::Deserialize;

use super::SignedIn;
use super::session::same_origin;
use crate::server::AppState;

/// How long a run of the checks may take before the page gives up on it.
const CHECKS_TAKE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug, Default, Deserialize)]
pub struct CheckBody {
    #[serde(default)]
    csrf: String,
}

/// `GET /dashboard/processors`.
pub async fn page(State(state): State<AppState>, who: SignedIn) -> Response {
    show(&state, &who, None).await
}

/// `POST /dashboard/processors`: runs the checks and shows what they found.
pub async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: SignedIn,
    Form(body): Form<CheckBody>,
) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !who.csrf_matches(&body.csrf) || !same_origin(&headers) {
        return dashboard.refusal(
            &state,
            StatusCode::FORBIDDEN,
            Some(&who),
            "Not done: the form was stale",
            "This form is stale or came from elsewhere: reload the processors page and try again.",
            None,
        );
    }
    let ledger = state.engine.ledger();
    if who.operator.role < Role::Operator {
        who.record_refusal(ledger, None, "checks", "role").await;
        return dashboard.refusal(
            &state,
            StatusCode::FORBIDDEN,
            Some(&who),
            "Not allowed",
            &format!(
                "{} is a viewer: running the checks (calls to every processor) takes an operator or approver account.",
                who.operator.name
            ),
            None,
        );
    }
    let Some(_running) = dashboard.heavy_slot().await else {
        return dashboard.refusal(
            &state,
            StatusCode::CONFLICT,
            Some(&who),
            "The checks are running",
            "A check is already running (these checks or the audit chain's, started here or by another operator): try again in a minute.",
            None,
        );
    };
    let detail = serde_json::json!({"by": who.actor()});
    if let Err(e) = ledger.audit(None, None, "operator.ran_checks", detail).await {
        tracing::warn!(error = %e, "could not record a run of the checks");
    }
    tracing::info!(operator = %who.operator.name, "the dashboard runs the doctor's checks");
    match tokio::time::timeout(CHECKS_TAKE_AT_MOST, crate::commands::doctor::checks(&state.config, Some(ledger))).await {
        Ok(checks) => show(&state, &who, Some(checks)).await,
        Err(_) => dashboard.refusal(
            &state,
            StatusCode::GATEWAY_TIMEOUT,
            Some(&who),
            "The checks took too long",
            &format!(
                "The checks did not finish within {} seconds: a processor or the storage is not answering. Run `dsr doctor` on the server to see which.",
                CHECKS_TAKE_AT_MOST.as_secs()
            ),
            None,
        ),
    }
}

async fn show(state: &AppState, who: &SignedIn, checks: Option<Vec<crate::commands::doctor::Check>>) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let ledger = state.engine.ledger();
    let counts = match ledger.counts(ledger.now(), chrono::Duration::zero()).await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::warn!(error = %e, "the processors page could not read the ledger");
            return dashboard.refusal(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(who),
                "The ledger did not answer",
                "The ledger did not answer; reload in a moment.",
                None,
            );
        }
    };
    let mut tasks: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (processor, status, _, n) in &counts.tasks {
        *tasks
            .entry(processor.clone())
            .or_default()
            .entry(status.clone())
            .or_default() += n;
    }
    let processors: Vec<_> = state
        .engine
        .connectors()
        .processors()
        .iter()
        .map(|p| {
            let by_status = tasks.remove(p.as_str()).unwrap_or_default();
            let n = |s: &str| by_status.get(s).copied().unwrap_or(0);
            context! {
                name => p.display_name(), id => p.as_str(),
                open => n("pending") + n("running") + n("retrying") + n("planned"),
                succeeded => n("succeeded"), failed => n("failed"), not_applicable => n("not_applicable"),
            }
        })
        .collect();
    let (ran, failures) = match &checks {
        Some(checks) => (true, checks.iter().filter(|c| !c.ok).count()),
        None => (false, 0),
    };
    // The processors' own checks first, then the rest of the deployment's.
    let (mine, rest): (Vec<_>, Vec<_>) = checks
        .unwrap_or_default()
        .into_iter()
        .partition(|c| c.name.starts_with("processor"));
    let row = |c: crate::commands::doctor::Check| context! { name => c.name, ok => c.ok, detail => c.detail };
    dashboard.render(
        state,
        StatusCode::OK,
        "processors.html",
        Some(who),
        context! {
            here => "processors", processors => processors, ran => ran, failures => failures,
            can_check => who.operator.role >= Role::Operator,
            processor_checks => mine.into_iter().map(row).collect::<Vec<_>>(),
            other_checks => rest.into_iter().map(row).collect::<Vec<_>>(),
        },
    )
}
