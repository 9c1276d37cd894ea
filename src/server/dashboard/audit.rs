//! `GET /dashboard/audit`: the audit chain verified on demand (`?verify=1`), whole or with its
//! first broken event named — what `dsr audit verify` says.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;

use super::SignedIn;
use crate::server::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct Ask {
    #[serde(default)]
    verify: String,
}

pub async fn page(State(state): State<AppState>, who: SignedIn, Query(ask): Query<Ask>) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let verdict = if ask.verify.is_empty() {
        None
    } else {
        // The walk reads every event: one at a time, with the doctor's checks.
        let Some(_walking) = dashboard.heavy_slot().await else {
            return dashboard.refusal(
                &state,
                StatusCode::CONFLICT,
                Some(&who),
                "A check is running",
                "A check is already running (the audit chain's or the processors', started here or by another operator): try again in a minute.",
                None,
            );
        };
        let walked = tokio::time::timeout(
            std::time::Duration::from_secs(300),
            state.engine.ledger().verify_audit_chain(),
        );
        let Ok(walked) = walked.await else {
            return dashboard.refusal(
                &state,
                StatusCode::GATEWAY_TIMEOUT,
                Some(&who),
                "The walk took too long",
                "Walking the audit chain took more than five minutes here: run `dsr audit verify` on the server.",
                None,
            );
        };
        match walked {
            Ok(v) => Some(context! {
                ok => v.problem.is_none(), events => v.events, seq => v.head.seq, hash => v.head.hash,
                problem => v.problem,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "the dashboard could not verify the audit chain");
                return dashboard.refusal(
                    &state,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&who),
                    "The ledger did not answer",
                    "The ledger did not answer; try again in a moment. The server's log says why.",
                    None,
                );
            }
        }
    };
    dashboard.render(
        &state,
        StatusCode::OK,
        "audit.html",
        Some(&who),
        context! { here => "audit", verdict => verdict },
    )
}
