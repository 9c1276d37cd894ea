//! `GET /dashboard/requests` (filters, newest first, a page at a time, search by id) and
//! `GET /dashboard/requests/{id}` (the request, each processor's part, and its timeline from
//! the audit log). A subject's address is shown on the request's own page only, never in the
//! list or a URL.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dsr_connector::Processor;
use dsr_jobs::ledger::RequestQuery;
use dsr_jobs::model::{RequestKind, RequestStatus, Role};
use minijinja::context;
use serde::Deserialize;

use super::{SignedIn, session};
use crate::server::AppState;

/// Requests per page.
const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    processor: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    overdue: String,
    #[serde(default)]
    attention: String,
    /// The cursor: `<received_at>|<id>` of the last request on the page before.
    #[serde(default)]
    after: String,
}

fn date_start(text: &str, zone: chrono_tz::Tz) -> Option<chrono::DateTime<chrono::Utc>> {
    let day = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    day.and_hms_opt(0, 0, 0)?
        .and_local_timezone(zone)
        .earliest()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The page said when the ledger does not answer (the error goes to the log).
fn unavailable(state: &AppState, who: &SignedIn, e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "a dashboard page could not read the ledger");
    match &state.dashboard {
        Some(dashboard) => dashboard.refusal(
            state,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(who),
            "The ledger did not answer",
            "The ledger did not answer; reload in a moment. The server's log says why.",
            None,
        ),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn list(State(state): State<AppState>, who: SignedIn, Query(f): Query<Filters>) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let ledger = state.engine.ledger();
    let zone = state.config.zone();
    // A request id typed into the search goes to its page.
    let q = f.q.trim();
    if !q.is_empty() {
        return match ledger.request(q).await {
            Ok(Some(r)) => Redirect::to(&format!("/dashboard/requests/{}", r.id)).into_response(),
            Ok(None) => render(
                &state,
                &dashboard,
                &who,
                &f,
                vec![],
                None,
                Some(format!("No request has the id {q}.")),
            ),
            Err(e) => unavailable(&state, &who, e),
        };
    }
    let mut errors = Vec::new();
    let mut parsed = |name: &str, text: &str, ok: bool| {
        if !text.is_empty() && !ok {
            errors.push(format!("{name} `{text}` is not one this list knows."));
        }
    };
    let status = f.status.parse::<RequestStatus>().ok();
    parsed("status", &f.status, status.is_some());
    let kind = f.kind.parse::<RequestKind>().ok();
    parsed("kind", &f.kind, kind.is_some());
    let processor = Processor::known(&f.processor).ok();
    parsed("processor", &f.processor, processor.is_some());
    let received_from = date_start(&f.from, zone);
    parsed("date", &f.from, received_from.is_some());
    let received_before = date_start(&f.to, zone).map(|t| t + chrono::Duration::days(1));
    parsed("date", &f.to, received_before.is_some());
    let after = f.after.split_once('|').and_then(|(at, id)| {
        let at = chrono::DateTime::parse_from_rfc3339(at)
            .ok()?
            .with_timezone(&chrono::Utc);
        Some((at, id.to_string()))
    });
    if !errors.is_empty() {
        return render(&state, &dashboard, &who, &f, vec![], None, Some(errors.join(" ")));
    }
    let now = ledger.now();
    let query = RequestQuery {
        status,
        kind,
        processor,
        overdue_at: (!f.overdue.is_empty()).then_some(now),
        attention: !f.attention.is_empty(),
        received_from,
        received_before,
        after,
        limit: PAGE + 1,
    };
    let mut found = match ledger.query_requests(&query).await {
        Ok(found) => found,
        Err(e) => return unavailable(&state, &who, e),
    };
    let more = found.len() > PAGE as usize;
    found.truncate(PAGE as usize);
    let next = more.then(|| found.last()).flatten().map(|last| {
        let cursor = format!("{}|{}", dsr_jobs::ledger::ts(last.received_at), last.id);
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &f.status),
            ("kind", &f.kind),
            ("processor", &f.processor),
            ("from", &f.from),
            ("to", &f.to),
            ("overdue", &f.overdue),
            ("attention", &f.attention),
        ] {
            if !v.is_empty() {
                params.append_pair(k, v);
            }
        }
        params.append_pair("after", &cursor);
        format!("/dashboard/requests?{}", params.finish())
    });
    let date = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string();
    let rows = found
        .into_iter()
        .map(|r| {
            context! {
                id => r.id, kind => r.kind.as_str(), status => r.status.as_str(),
                received => date(r.received_at), due => date(r.due_at),
                late => r.due_at < now && !r.status.is_terminal(),
            }
        })
        .collect();
    render(&state, &dashboard, &who, &f, rows, next, None)
}

fn render(
    state: &AppState,
    dashboard: &super::Dashboard,
    who: &SignedIn,
    f: &Filters,
    rows: Vec<minijinja::Value>,
    next: Option<String>,
    error: Option<String>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let processors: Vec<String> = state
        .engine
        .connectors()
        .processors()
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    dashboard.render(
        state,
        status,
        "requests.html",
        Some(who),
        context! {
            here => "requests", rows => rows, next => next, error => error,
            statuses => RequestStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            kinds => RequestKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            processors => processors,
            f => context! {
                q => f.q, status => f.status, kind => f.kind, processor => f.processor, from => f.from,
                to => f.to, overdue => !f.overdue.is_empty(), attention => !f.attention.is_empty(),
            },
        },
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
    /// "later": the action stands, but the queue did not take its work yet.
    #[serde(default)]
    queued: String,
    /// A polling page (htmx): the status and the actions it was loaded with, and the last
    /// event it shows.
    #[serde(default)]
    since: String,
    #[serde(default)]
    acts: String,
    #[serde(default)]
    seq: String,
    /// "1" when the polling page showed the request late.
    #[serde(default)]
    late: String,
    /// "0": do not follow the request by itself.
    #[serde(default)]
    follow: String,
}

pub async fn show(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    who: SignedIn,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let ledger = state.engine.ledger();
    // The last event first: whatever is read after it is at least as new, so a page is never
    // told "nothing new" about a change it does not show.
    let seq = match ledger.last_event_seq(&id).await {
        Ok(seq) => seq,
        Err(e) => return unavailable(&state, &who, e),
    };
    let request = match ledger.request(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return dashboard.render(
                &state,
                StatusCode::NOT_FOUND,
                "requests.html",
                Some(&who),
                context! { here => "requests", error => format!("No request has the id {id}.") },
            );
        }
        Err(e) => return unavailable(&state, &who, e),
    };
    let now = ledger.now();
    let late = request.due_at < now && !request.status.is_terminal();
    let polled = session::is_poll(&headers);
    if polled {
        // A page from before polls carried the last event: load it again, once.
        if done.seq.is_empty() {
            return (StatusCode::OK, [("hx-refresh", "true")]).into_response();
        }
        // Nothing new since the event it shows, and not late since (the deadline passing is
        // no event): nothing to swap (204 — htmx leaves the page alone).
        if done.seq.parse::<i64>().is_ok_and(|shown| shown == seq) && done.late == (late as u8).to_string() {
            return StatusCode::NO_CONTENT.into_response();
        }
    }
    let (tasks, events) = match (ledger.tasks(&id).await, ledger.audit_events(&id).await) {
        (Ok(t), Ok(e)) => (t, e),
        (Err(e), _) | (_, Err(e)) => return unavailable(&state, &who, e),
    };
    let zone = state.config.zone();
    let time = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S").to_string();
    let failed = tasks.iter().any(|t| t.status == dsr_jobs::model::TaskStatus::Failed);
    let tasks: Vec<_> = tasks
        .iter()
        .map(|t| {
            context! {
                processor => t.processor.display_name(), status => t.status.as_str(),
                outcome => t.outcome.map(|o| o.as_str()).unwrap_or("—"), found => t.found, changed => t.changed,
                attempts => t.attempts, error => t.error.clone().unwrap_or_default(),
                notes => t.reason.clone().unwrap_or_default(), evidence => evidence_text(&t.evidence),
                next_retry => t.next_retry_at.map(time).unwrap_or_default(),
            }
        })
        .collect();
    let events: Vec<_> = events
        .iter()
        .map(|e| {
            let text = |key: &str| e.detail.get(key).and_then(|v| v.as_str()).map(String::from);
            let number = |key: &str| e.detail.get(key).and_then(|v| v.as_i64());
            context! {
                at => time(e.at), at_iso => dsr_jobs::ledger::ts(e.at), event => e.event,
                label => event_label(&e.event),
                processor => e.processor, code => text("code").or_else(|| text("error")),
                by => text("by").or_else(|| text("operator")), note => e.note, attempt => number("attempt"),
                found => number("found"), changed => number("changed"),
                next_retry => text("next_retry_at")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| time(t.with_timezone(&chrono::Utc))),
                reason => text("reason"), file => text("file"),
            }
        })
        .collect();
    let plan = match crate::commands::plans::plan_doc(ledger, &id).await {
        Ok(mut plan) => {
            // Values as words for the page (escaped there like any text), not JSON.
            for processor in plan["processors"].as_array_mut().into_iter().flatten() {
                for item in processor["items"].as_array_mut().into_iter().flatten() {
                    for (from, to) in [("before", "before_text"), ("after", "after_text")] {
                        let text = item.get(from).filter(|v| !v.is_null()).map(value_text);
                        item[to] = serde_json::json!(text);
                    }
                }
            }
            plan
        }
        Err(e) => return unavailable(&state, &who, e.message()),
    };
    let role = who.operator.role;
    let entered_by = match ledger.entered_by(&id).await {
        Ok(by) => by,
        Err(e) => return unavailable(&state, &who, e),
    };
    // With four-eyes, whoever entered the request sees why they cannot approve it.
    let own = state.config.erasure.four_eyes && who.entered(entered_by.as_deref());
    let open = !request.status.is_terminal();
    let can = |r: dsr_jobs::model::Role| role >= r;
    let awaiting = request.status == RequestStatus::AwaitingApproval;
    let (approve, four_eyes, reject) = (
        can(Role::Approver) && awaiting && !own,
        can(Role::Approver) && awaiting && own,
        can(Role::Approver) && awaiting,
    );
    let retry = can(Role::Operator) && failed;
    let cancel = can(Role::Operator) && open;
    // Art. 12(3): an extension is told to the subject within the month, not after it.
    let extend = can(Role::Operator) && open && request.extended_months < 2 && request.due_at > now;
    let viewer = role == Role::Viewer;
    // What the page offers, in short: a polling page whose offer changed says to reload.
    let offer: String = [
        ("approve", approve),
        ("reject", reject),
        ("retry", retry),
        ("cancel", cancel),
        ("extend", extend),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| *name)
    .collect::<Vec<_>>()
    .join(",");
    let (since, offered) = if polled {
        (done.since.clone(), done.acts.clone())
    } else {
        (request.status.as_str().to_string(), offer.clone())
    };
    let live = matches!(request.status, RequestStatus::Received | RequestStatus::InProgress);
    let notice = if since != request.status.as_str() && !live {
        Some(format!("The request is now {}.", status_words(request.status)))
    } else if offered != offer {
        Some("What can be done with this request has changed.".to_string())
    } else {
        None
    };
    let acts = context! {
        approve, four_eyes, reject, retry, cancel, extend, viewer,
        none => !(viewer || approve || four_eyes || reject || retry || cancel || extend),
    };
    let r = &request;
    dashboard.render(
        &state,
        StatusCode::OK,
        "request.html",
        Some(&who),
        context! {
            here => "requests", tasks => tasks, events => events, acts => acts,
            plan => minijinja::Value::from_serialize(&plan),
            done => (!done.done.is_empty()).then_some(done.done),
            queued_later => done.queued == "later",
            follow => context! {
                on => done.follow != "0", seq => seq, since => since, acts => offered, late => late as u8,
                notice => notice.filter(|_| polled),
            },
            can_download => role >= dsr_jobs::model::Role::Operator,
            r => context! {
                id => r.id, kind => r.kind.as_str(), status => r.status.as_str(), dry_run => r.dry_run,
                emails => r.identities.emails.iter().map(|e| e.as_str().to_string()).collect::<Vec<_>>(),
                received => time(r.received_at), due => time(r.due_at),
                late => late,
                bundle => r.bundle.is_some() && r.exports_expired_at.is_none(),
                confirmation => r.confirmation.is_some() && r.exports_expired_at.is_none(),
                exports_expired => r.exports_expired_at.map(time), entered_by => entered_by,
                // Worked on without anyone acting: the page refreshes itself (htmx).
                live => live,
            },
        },
    )
}

/// `GET /dashboard/requests/{id}/bundle|confirmation`: the request's ZIP bundle or signed
/// confirmation, streamed from the export storage as the API hands them over, for operators
/// and approvers (a viewer reads the request, not the subject's data); each download an audit
/// event naming the account before it is handed over.
pub async fn file(
    State(state): State<AppState>,
    method: Method,
    who: SignedIn,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let refused = |status: StatusCode, title: &str, message: String| {
        dashboard.refusal(&state, status, Some(&who), title, &message, Some(&id))
    };
    let what = match file.as_str() {
        "bundle" => crate::server::actions::Export::Bundle,
        "confirmation" => crate::server::actions::Export::Confirmation,
        _ => {
            return refused(
                StatusCode::NOT_FOUND,
                "No such file",
                format!("A request has a bundle or a confirmation, not `{file}`."),
            );
        }
    };
    if who.operator.role < Role::Operator {
        who.record_refusal(state.engine.ledger(), Some(&id), &file, "role")
            .await;
        return refused(
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!(
                "{} is a viewer: downloading a subject's {file} takes an operator or approver account.",
                who.operator.name
            ),
        );
    }
    let by = (method != Method::HEAD).then(|| who.actor());
    match crate::server::actions::stream_export(&state, &id, what, by.as_deref()).await {
        Ok(response) => response,
        Err(problem) => refused(problem.status, &format!("No {file} to download"), problem.detail),
    }
}

/// What an audit event means, in words for the timeline (its code stays beside it).
fn event_label(event: &str) -> String {
    let known = match event {
        "request.received" => "Received",
        "request.in_progress" => "Work started",
        "request.awaiting_approval" => "Plan waits for approval",
        "request.approved" => "Plan approved",
        "request.rejected" => "Plan rejected",
        "request.retried" => "Failed tasks retried",
        "request.extended" => "Deadline extended",
        "request.cancelled" => "Cancelled",
        "request.completed" => "Finalised: completed",
        "request.failed" => "Finalised: failed",
        "request.partially_completed" => "Finalised: partly done",
        "request.needs_attention" => "Needs attention",
        "request.attention_cleared" => "Attention cleared",
        "request.pseudonymised" => "Pseudonymised",
        "plan.made" => "Plan made",
        "task.started" => "Task attempt started",
        "task.succeeded" => "Task done",
        "task.planned" => "Task planned, waits for approval",
        "task.cancelled" => "Task cancelled",
        "task.retrying" => "Task attempt failed, will retry",
        "task.failed" => "Task failed",
        "task.not_applicable" => "Task not applicable",
        "task.abandoned" => "Task abandoned",
        "task.withdrawn" => "Withdrawn at the processor",
        "task.withdraw_failed" => "Withdrawal failed",
        "delivery.sent" => "Delivered by e-mail",
        "delivery.opened" => "Link opened",
        "delivery.code_sent" => "Download code sent",
        "delivery.code_failed" => "Wrong download code",
        "delivery.downloaded" => "Downloaded",
        "delivery.resumed" => "Download resumed",
        "delivery.refused" => "Download refused",
        "delivery.locked" => "Link locked",
        "delivery.unlocked" => "Link unlocked",
        "delivery.send_failed" => "Delivery failed, will retry",
        "delivery.given_up" => "Delivery given up",
        "exports.expired" => "Exports deleted (retention)",
        "operator.refused" => "Action refused",
        "export.downloaded" => "Downloaded (bundle or confirmation)",
        "opendsr.status" => "Status sent to the controller",
        "opendsr.callback_sent" => "Callback sent",
        "opendsr.callback_given_up" => "Callback given up",
        _ => "",
    };
    if known.is_empty() {
        event.replace(['.', '_'], " ")
    } else {
        known.to_string()
    }
}

/// How much of a task's evidence the page shows (`dsr status --json` has all of it).
const EVIDENCE_SHOWN: usize = 16 * 1024;

/// A task's evidence (the vendors' ids and answers it kept as proof) as indented JSON, cut
/// at [`EVIDENCE_SHOWN`] bytes; empty when there is none.
fn evidence_text(evidence: &serde_json::Value) -> String {
    if evidence.is_null() || evidence.as_object().is_some_and(|o| o.is_empty()) {
        return String::new();
    }
    let mut text = serde_json::to_string_pretty(evidence).unwrap_or_default();
    if text.len() > EVIDENCE_SHOWN {
        let cut = (0..=EVIDENCE_SHOWN)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let more = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!("\n… {more} bytes more: `dsr status --json` shows all of it"));
    }
    text
}

/// A request's status in words, for a sentence.
fn status_words(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Received => "received",
        RequestStatus::InProgress => "in progress",
        RequestStatus::AwaitingApproval => "waiting for approval",
        RequestStatus::Completed => "completed",
        RequestStatus::PartiallyCompleted => "partly completed",
        RequestStatus::Failed => "failed",
        RequestStatus::Cancelled => "cancelled",
        RequestStatus::Rejected => "rejected",
    }
}

/// A vendor's value as a person reads it: `given_name: Kari, email: kari@example.no`.
fn value_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| format!("{k}: {}", value_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn evidence_is_shown_indented_and_cut_when_long() {
        assert_eq!(super::evidence_text(&serde_json::json!({})), "");
        assert_eq!(
            super::evidence_text(&serde_json::json!({"ids": ["a"]})),
            "{\n  \"ids\": [\n    \"a\"\n  ]\n}"
        );
        let long = serde_json::json!({"ids": vec!["ø".repeat(40); 1000]});
        let shown = super::evidence_text(&long);
        assert!(
            shown.len() < super::EVIDENCE_SHOWN + 100 && shown.ends_with("shows all of it"),
            "{}",
            shown.len()
        );
    }

    #[test]
    fn values_read_as_words_not_json() {
        let v = serde_json::json!({"given_name": "O'Brien", "emails": ["a@x.no", "b@x.no"], "n": 2, "gone": null});
        assert_eq!(
            super::value_text(&v),
            "emails: a@x.no, b@x.no, given_name: O'Brien, gone: —, n: 2"
        );
    }

    #[test]
    fn every_event_the_ledger_writes_about_a_request_has_words() {
        for event in [
            "request.received",
            "task.retrying",
            "delivery.downloaded",
            "exports.expired",
            "request.pseudonymised",
        ] {
            assert!(!super::event_label(event).contains('.'), "{event}");
        }
        assert_eq!(super::event_label("something.new_here"), "something new here");
    }
}
