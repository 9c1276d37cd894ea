//! `GET /dashboard`: counts by status; requests late or due within the warning days, by days
//! left (a word as well as a colour); what waits for approval or needs attention; the workers;
//! processors with failed tasks. No subject's identifier appears: requests are named by id.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dsr_jobs::ledger::ListFilter;
use dsr_jobs::model::RequestStatus;
use minijinja::context;

use super::SignedIn;
use crate::server::AppState;

/// Requests listed under deadlines at most (the rest are in the requests list).
const DEADLINES_SHOWN: u32 = 50;

pub async fn page(State(state): State<AppState>, who: SignedIn) -> Response {
    let Some(dashboard) = state.dashboard.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match gather(&state).await {
        Ok(values) => dashboard.render(&state, StatusCode::OK, "overview.html", Some(&who), values),
        Err(e) => {
            tracing::warn!(error = %e, "the dashboard's overview could not read the ledger");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger did not answer; reload in a moment",
            )
                .into_response()
        }
    }
}

/// Days left as words: "3 days left", "due today", "2 days late".
fn days_text(days: i64) -> String {
    match days {
        0 => "due today".into(),
        1 => "1 day left".into(),
        -1 => "1 day late".into(),
        d if d > 1 => format!("{d} days left"),
        d => format!("{} days late", -d),
    }
}

async fn gather(state: &AppState) -> Result<minijinja::Value, dsr_jobs::ledger::LedgerError> {
    let ledger = state.engine.ledger();
    let now = ledger.now();
    let zone = state.config.zone();
    let warning_days = state.config.worker.deadline_warning_days();
    let date = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&zone).format("%Y-%m-%d").to_string();
    let time = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string();

    let all = ledger.counts(now, chrono::Duration::days(warning_days)).await?;
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    for (status, _, n) in &all.requests {
        *by_status.entry(status.clone()).or_default() += n;
    }
    let counts: Vec<_> = by_status
        .iter()
        .map(|(status, n)| context! { status => status, n => n })
        .collect();

    let today = now.with_timezone(&zone).date_naive();
    let deadlines: Vec<_> = ledger
        .open_due_before(now + chrono::Duration::days(warning_days), DEADLINES_SHOWN)
        .await?
        .into_iter()
        .map(|r| {
            let days = (r.due_at.with_timezone(&zone).date_naive() - today).num_days();
            let late = r.due_at < now;
            context! {
                id => r.id, kind => r.kind.as_str(), status => r.status.as_str(),
                due => date(r.due_at), due_iso => dsr_jobs::ledger::ts(r.due_at),
                days_text => if late && days >= 0 { "late today".to_string() } else { days_text(days) },
                urgency => if late { "late" } else { "soon" },
            }
        })
        .collect();

    let approval: Vec<_> = ledger
        .list(&ListFilter {
            status: Some(RequestStatus::AwaitingApproval),
            overdue_at: None,
        })
        .await?
        .into_iter()
        .take(DEADLINES_SHOWN as usize)
        .map(|r| context! { id => r.id, kind => r.kind.as_str(), due => date(r.due_at) })
        .collect();
    let attention: Vec<_> = ledger
        .needing_attention()
        .await?
        .into_iter()
        .map(|(id, since)| context! { id => id, since => time(since) })
        .collect();
    let workers: Vec<_> = ledger
        .workers()
        .await?
        .into_iter()
        .map(|w| {
            context! {
                name => w.name, live => w.live, heartbeat => time(w.last_heartbeat_at),
                poll => w.last_poll_at.map(time).unwrap_or_else(|| "never".into()),
            }
        })
        .collect();
    let mut failing: BTreeMap<String, i64> = BTreeMap::new();
    for (processor, status, _, n) in &all.tasks {
        if status == "failed" {
            *failing.entry(processor.clone()).or_default() += n;
        }
    }
    // Processors whose most recent call failed (or waits to be tried again), with the error.
    let last_failed: Vec<_> = ledger
        .last_calls()
        .await?
        .into_iter()
        .filter(|c| c.failed())
        .map(|c| {
            let name = c
                .processor
                .parse::<dsr_connector::Processor>()
                .map(|p| p.display_name().to_string())
                .unwrap_or_else(|_| c.processor.clone());
            context! {
                processor => name, request => c.request_id, status => c.status, at => time(c.at),
                error => c.error.unwrap_or_default(),
            }
        })
        .collect();
    let failing: Vec<_> = failing
        .iter()
        .map(|(processor, n)| context! { processor => processor, n => n })
        .collect();
    Ok(context! {
        here => "overview", counts => counts, deadlines => deadlines, warning_days => warning_days,
        approval => approval, attention => attention, workers => workers, failing => failing,
        last_failed => last_failed,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_left_are_words_not_only_colours() {
        assert_eq!(super::days_text(3), "3 days left");
        assert_eq!(super::days_text(1), "1 day left");
        assert_eq!(super::days_text(0), "due today");
        assert_eq!(super::days_text(-1), "1 day late");
        assert_eq!(super::days_text(-4), "4 days late");
    }
}
