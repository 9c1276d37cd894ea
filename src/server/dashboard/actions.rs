//! `POST /dashboard/requests/{id}/{action}`: what an operator does to a request from its page
//! — retry, cancel and extend (operators and approvers), approve and reject a plan (approvers
//! only). Each needs the session's CSRF token and a post from the dashboard's own page; each
//! is the ledger's own transition, recorded in the audit chain as `dashboard:<account>`.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use dsr_jobs::LedgerError;
use dsr_jobs::model::Role;
use serde::Deserialize;

use super::SignedIn;
use super::session::same_origin;
use crate::server::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ActionBody {
    #[serde(default)]
    csrf: String,
    /// approve: the plan hash shown on the page.
    #[serde(default)]
    plan: String,
    /// reject, extend: why.
    #[serde(default)]
    reason: String,
    /// extend: by how many months (1 or 2).
    #[serde(default)]
    months: String,
}

/// The role an action needs.
fn needs(action: &str) -> Option<Role> {
    match action {
        "retry" | "cancel" | "extend" => Some(Role::Operator),
        "approve" | "reject" => Some(Role::Approver),
        _ => None,
    }
}

/// Why an action was not done: bad input (400), a refusal of the rules (403, recorded), no
/// such request (404), a transition the ledger refused (409), or the ledger not answering
/// (503; its words go to the log, not the page).
enum NotDone {
    Input(String),
    Refused(String),
    Missing(String),
    Ledger(String),
    Unavailable,
}

fn ledger_said(e: LedgerError) -> NotDone {
    match e {
        LedgerError::Refused(why) => NotDone::Ledger(why),
        LedgerError::NotFound(id) => NotDone::Missing(format!("No request has the id {id}.")),
        other => {
            tracing::warn!(error = %other, "a dashboard action could not reach the ledger");
            NotDone::Unavailable
        }
    }
}

pub async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: SignedIn,
    Path((id, action)): Path<(String, String)>,
    Form(body): Form<ActionBody>,
) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let refused = |status: StatusCode, title: &str, why: String| {
        dashboard.refusal(&state, status, Some(&who), title, &why, Some(&id))
    };
    if !who.csrf_matches(&body.csrf) || !same_origin(&headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "Not done: the form was stale",
            "This form is stale or came from elsewhere: reload the request's page and try again.".into(),
        );
    }
    let Some(role) = needs(&action) else {
        return refused(
            StatusCode::NOT_FOUND,
            "No such action",
            format!("There is no action `{action}`."),
        );
    };
    let by = who.actor();
    let engine = state.engine.clone();
    let ledger = engine.ledger();
    if who.operator.role < role {
        who.record_refusal(ledger, Some(&id), &action, "role").await;
        return refused(
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!(
                "{} is a {}: to {action} a request takes an {} account.",
                who.operator.name,
                who.operator.role,
                if role == Role::Approver {
                    "approver"
                } else {
                    "operator or approver"
                }
            ),
        );
    }
    if action == "approve" && state.config.erasure.four_eyes {
        let entered = match ledger.entered_by(&id).await {
            Ok(entered) => entered,
            Err(e) => {
                tracing::warn!(error = %e, "the dashboard could not read who entered a request");
                return refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The ledger did not answer",
                    "The ledger did not answer; try again in a moment. The server's log says why.".into(),
                );
            }
        };
        if who.entered(entered.as_deref()) {
            who.record_refusal(ledger, Some(&id), &action, "four_eyes").await;
            return refused(
                StatusCode::FORBIDDEN,
                "Not allowed: four-eyes",
                format!(
                    "{} entered this request, and with [erasure] four_eyes nobody approves a request they entered: another approver must.",
                    who.operator.name
                ),
            );
        }
    }
    // What the ledger did, and whether the queue took the work it made (when it did not,
    // the recovery sweep queues it within minutes: the action still stands).
    let done: Result<Option<String>, NotDone> = async {
        let later = |queued: bool| (!queued).then(|| "the queue did not answer".to_string());
        match action.as_str() {
            "retry" => {
                let reset = ledger.retry(&id, None, &by).await.map_err(ledger_said)?;
                Ok(later(engine.queue_tasks_or_sweep(&id, &reset).await))
            }
            "cancel" => {
                let (engine, by, request) = (engine.clone(), by.clone(), id.clone());
                // Withdrawn at processors too, on a task of its own (a closed tab does not stop it).
                tokio::spawn(async move {
                    dsr_jobs::cancel::cancel(engine.ledger(), engine.connectors(), &request, &by)
                        .await
                        .map(|_| None)
                        .map_err(ledger_said)
                })
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "a cancellation's task stopped");
                    NotDone::Unavailable
                })?
            }
            "extend" => {
                let months: u32 = body
                    .months
                    .trim()
                    .parse()
                    .map_err(|_| NotDone::Input("Say by how many months: 1 or 2.".into()))?;
                if body.reason.trim().is_empty() {
                    return Err(NotDone::Input(
                        "An extension needs a reason (Art. 12(3)): the subject is told it.".into(),
                    ));
                }
                ledger
                    .extend(&id, months, body.reason.trim(), state.config.zone(), Utc::now(), &by)
                    .await
                    .map(|_| None)
                    .map_err(ledger_said)
            }
            "approve" => {
                let approved = ledger
                    .approve(&id, body.plan.trim(), &by, state.config.erasure.four_eyes)
                    .await
                    .map_err(ledger_said)?;
                Ok(later(engine.queue_tasks_or_sweep(&id, &approved).await))
            }
            "reject" => {
                if body.reason.trim().is_empty() {
                    return Err(NotDone::Input("A rejection needs a reason.".into()));
                }
                ledger
                    .reject(&id, body.reason.trim(), &by)
                    .await
                    .map(|_| None)
                    .map_err(ledger_said)
            }
            _ => Err(NotDone::Refused(format!("There is no action `{action}`."))),
        }
    }
    .await;
    match done {
        Ok(warning) => {
            tracing::info!(request = %id, %action, operator = %who.operator.name, "dashboard action");
            let mut to = format!("/dashboard/requests/{id}?done={action}");
            if warning.is_some() {
                to.push_str("&queued=later");
            }
            Redirect::to(&to).into_response()
        }
        Err(NotDone::Input(why)) => refused(StatusCode::BAD_REQUEST, "Not done: something is missing", why),
        Err(NotDone::Refused(why)) => refused(StatusCode::FORBIDDEN, "Not allowed", why),
        Err(NotDone::Missing(why)) => refused(StatusCode::NOT_FOUND, "No such request", why),
        Err(NotDone::Unavailable) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "The ledger did not answer",
            "The ledger did not answer, so nothing was done; try again in a moment. The server's log says why.".into(),
        ),
        Err(NotDone::Ledger(why)) => refused(
            StatusCode::CONFLICT,
            "The request was not changed",
            format!("The request was not changed: {why}"),
        ),
    }
}
