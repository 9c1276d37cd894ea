//! `POST /dashboard/requests/{id}/{action}`: what an operator does to a request from its page
//! — retry, cancel and extend (operators and approvers), approve and reject a plan (approvers
//! only). Each needs the session's CSRF token and a post from the dashboard's own page; each
//! is the ledger's own transition, recorded in the audit chain as `dashboard:<account>`.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
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
    if who.operator.role < role {
        let ledger = state.engine.ledger();
        let _ = ledger
            .audit(
                Some(&id),
                None,
                "operator.refused",
                serde_json::json!({"operator": who.operator.name, "action": action, "role": who.operator.role}),
            )
            .await;
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
    let by = format!("dashboard:{}", who.operator.name);
    let engine = state.engine.clone();
    let ledger = engine.ledger();
    let done: Result<(), String> = async {
        match action.as_str() {
            "retry" => {
                let reset = ledger.retry(&id, None, &by).await.map_err(|e| e.to_string())?;
                engine.queue_tasks(&id, &reset).await.map_err(|e| e.to_string())
            }
            "cancel" => {
                let (engine, by, request) = (engine.clone(), by.clone(), id.clone());
                // Withdrawn at processors too, on a task of its own (a closed tab does not stop it).
                tokio::spawn(async move {
                    dsr_jobs::cancel::cancel(engine.ledger(), engine.connectors(), &request, &by)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            "extend" => {
                let months: u32 = body
                    .months
                    .trim()
                    .parse()
                    .map_err(|_| "say by how many months (1 or 2)".to_string())?;
                if body.reason.trim().is_empty() {
                    return Err("an extension needs a reason (Art. 12(3)): the subject is told it".into());
                }
                ledger
                    .extend(&id, months, body.reason.trim(), state.config.zone(), Utc::now(), &by)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            "approve" => {
                let approved = ledger
                    .approve(&id, body.plan.trim(), &by, state.config.erasure.four_eyes)
                    .await
                    .map_err(|e| e.to_string())?;
                engine.queue_tasks(&id, &approved).await.map_err(|e| e.to_string())
            }
            "reject" => {
                if body.reason.trim().is_empty() {
                    return Err("a rejection needs a reason".into());
                }
                ledger
                    .reject(&id, body.reason.trim(), &by)
                    .await
                    .map_err(|e| e.to_string())
            }
            _ => Err(format!("no action `{action}`")),
        }
    }
    .await;
    match done {
        Ok(()) => {
            tracing::info!(request = %id, %action, operator = %who.operator.name, "dashboard action");
            Redirect::to(&format!("/dashboard/requests/{id}?done={action}")).into_response()
        }
        Err(why) => refused(
            StatusCode::CONFLICT,
            "The request was not changed",
            format!("The request was not changed: {why}"),
        ),
    }
}
