//! `/metrics` in Prometheus's text format (scope `metrics:read`): from the ledger, requests by
//! status and kind, tasks by processor, status and outcome, requests past or near their
//! deadline or needing attention, and the last scheduled sweep; from the queue, its jobs by
//! state; from this process, its calls to vendors (with `--with-worker`, the worker's).

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use dsr_jobs::ledger::tokens::Scope;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;

/// Prometheus text exposition (scope metrics:read).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("token" = [])),
    responses(
        (status = 200, body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        super::openapi::Refusals,
    )
)]
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> Response {
    match render(&state, &caller).await {
        Ok(text) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Err(problem) => problem.into_response(),
    }
}

/// A label value as the text format wants it.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn render(state: &AppState, caller: &Caller) -> Result<String, Problem> {
    caller.require(Scope::MetricsRead)?;
    let now = Utc::now();
    let horizon = chrono::Duration::from_std(state.config.worker.deadline_warning).unwrap_or(chrono::Duration::days(7));
    let counts = state.engine.ledger().counts(now, horizon).await?;
    let queue = state.engine.queue().stats().await.ok();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP dsr_requests Requests in the ledger, by status and kind.\n# TYPE dsr_requests gauge"
    );
    for (status, kind, n) in &counts.requests {
        let _ = writeln!(
            out,
            "dsr_requests{{status=\"{}\",kind=\"{}\"}} {n}",
            label(status),
            label(kind)
        );
    }
    let _ = writeln!(
        out,
        "# HELP dsr_tasks Processor tasks in the ledger, by processor, status and outcome.\n# TYPE dsr_tasks gauge"
    );
    for (processor, status, outcome, n) in &counts.tasks {
        let _ = writeln!(
            out,
            "dsr_tasks{{processor=\"{}\",status=\"{}\",outcome=\"{}\"}} {n}",
            label(processor),
            label(status),
            label(outcome)
        );
    }
    let _ = writeln!(
        out,
        "# HELP dsr_requests_overdue Requests not ended and past their deadline.\n# TYPE dsr_requests_overdue gauge\n\
         dsr_requests_overdue {}\n\
         # HELP dsr_requests_due_soon Requests not ended whose deadline is within [worker] deadline_warning.\n\
         # TYPE dsr_requests_due_soon gauge\ndsr_requests_due_soon {}\n\
         # HELP dsr_requests_needing_attention Requests whose tasks still fail close to the deadline.\n\
         # TYPE dsr_requests_needing_attention gauge\ndsr_requests_needing_attention {}",
        counts.overdue, counts.due_soon, counts.needing_attention
    );
    if let Some(at) = counts.last_sweep_at {
        let _ = writeln!(
            out,
            "# HELP dsr_last_sweep_timestamp_seconds When a worker last ran the scheduled sweeps.\n\
             # TYPE dsr_last_sweep_timestamp_seconds gauge\ndsr_last_sweep_timestamp_seconds {}",
            at.timestamp()
        );
    }
    if let Some(q) = queue {
        let _ = writeln!(
            out,
            "# HELP dsr_queue_jobs Jobs in the queue, by state.\n# TYPE dsr_queue_jobs gauge\n\
             dsr_queue_jobs{{state=\"pending\"}} {}\ndsr_queue_jobs{{state=\"running\"}} {}\n\
             dsr_queue_jobs{{state=\"done\"}} {}\ndsr_queue_jobs{{state=\"failed\"}} {}",
            q.pending, q.running, q.done, q.failed
        );
    }
    dsr_connector::http::metrics::render(&mut out);
    Ok(out)
}
