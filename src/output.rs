//! What commands print: one JSON object with `--json`, readable text otherwise.

use chrono::{DateTime, Utc};
use dsr_jobs::Ledger;
use dsr_jobs::model::{Request, Task};
use serde_json::Value;

use crate::error::CliError;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The status document: one request and its tasks (`dsr status --json`, and the HTTP API's
/// request). The API's schema is derived from these types, so it is what is sent.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RequestDoc {
    pub id: String,
    /// access, erasure, rectification, objection, portability.
    pub kind: String,
    /// received, in_progress, awaiting_approval, completed, partially_completed, failed,
    /// cancelled, rejected.
    pub status: String,
    /// RFC 3339, UTC.
    pub received_at: String,
    /// The legal deadline (Art. 12(3)), RFC 3339, UTC.
    pub due_at: String,
    /// One task per processor.
    pub processors: Vec<TaskDoc>,
    pub dry_run: bool,
    /// Where the access bundle is (download it from `/v1/requests/{id}/bundle`).
    pub bundle: Option<String>,
    /// Where the confirmation is (`/v1/requests/{id}/confirmation`).
    pub confirmation: Option<String>,
    pub exports_expired_at: Option<String>,
    pub pseudonymised_at: Option<String>,
    pub finalize_error: Option<String>,
    /// A task still failing close to the deadline (in lists and single reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_attention: Option<bool>,
}

/// One processor's task of a request.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TaskDoc {
    pub processor: String,
    /// pending, running, retrying, planned, succeeded, failed, not_applicable, cancelled.
    pub status: String,
    /// done, nothing_found, partly_retained.
    pub outcome: Option<String>,
    pub attempts: u32,
    pub records: Records,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub next_retry_at: Option<String>,
    /// What the connector told the operator only.
    pub operator_notes: Vec<String>,
    /// What the processor's task recorded as proof (in `GET /v1/requests/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Records {
    pub found: u64,
    pub changed: u64,
}

pub fn request_doc(request: &Request, tasks: &[Task]) -> RequestDoc {
    RequestDoc {
        id: request.id.clone(),
        kind: request.kind.as_str().to_string(),
        status: request.status.as_str().to_string(),
        received_at: rfc3339(request.received_at),
        due_at: rfc3339(request.due_at),
        processors: tasks
            .iter()
            .map(|t| TaskDoc {
                processor: t.processor.as_str().to_string(),
                status: t.status.as_str().to_string(),
                outcome: t.outcome.map(|o| o.as_str().to_string()),
                attempts: t.attempts,
                records: Records {
                    found: t.found,
                    changed: t.changed,
                },
                reason: t.reason.clone(),
                error: t.error.clone(),
                next_retry_at: t.next_retry_at.map(rfc3339),
                operator_notes: operator_notes(t),
                evidence: None,
            })
            .collect(),
        dry_run: request.dry_run,
        bundle: request.bundle.clone(),
        confirmation: request.confirmation.clone(),
        exports_expired_at: request.exports_expired_at.map(rfc3339),
        pseudonymised_at: request.pseudonymised_at.map(rfc3339),
        finalize_error: request.finalize_error.clone(),
        needs_attention: None,
    }
}

pub fn status_json(request: &Request, tasks: &[Task]) -> Value {
    serde_json::to_value(request_doc(request, tasks)).unwrap_or(Value::Null)
}

/// What a connector told the operator only (never the subject): skipped mailboxes and the like.
fn operator_notes(task: &Task) -> Vec<String> {
    task.evidence["operator_notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(String::from))
        .collect()
}

pub fn status_text(request: &Request, tasks: &[Task]) -> String {
    let mut out = format!(
        "request {}\n  kind      {}\n  status    {}\n  received  {}\n  due       {}{}\n",
        request.id,
        request.kind,
        request.status,
        rfc3339(request.received_at),
        rfc3339(request.due_at),
        request
            .extension_reason
            .as_ref()
            .map(|r| format!(" (extended {} month(s): {r})", request.extended_months))
            .unwrap_or_default(),
    );
    out.push_str(&format!(
        "  {:<13} {:<15} {:<16} {:>8} {:>6} {:>8}  note\n",
        "processor", "status", "outcome", "attempts", "found", "changed"
    ));
    for t in tasks {
        let note = t.error.as_deref().or(t.reason.as_deref()).unwrap_or("").to_string();
        let retry = t
            .next_retry_at
            .map(|at| format!(" (next try {})", rfc3339(at)))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<13} {:<15} {:<16} {:>8} {:>6} {:>8}  {note}{retry}\n",
            t.processor.as_str(),
            t.status.as_str(),
            t.outcome.map(|o| o.as_str()).unwrap_or("-"),
            t.attempts,
            t.found,
            t.changed,
        ));
    }
    for t in tasks {
        for note in operator_notes(t) {
            out.push_str(&format!("  {:<13} note: {note}\n", t.processor.as_str()));
        }
    }
    if let Some(b) = &request.bundle {
        out.push_str(&format!("  bundle        {b}\n"));
    }
    if let Some(c) = &request.confirmation {
        out.push_str(&format!("  confirmation  {c}\n"));
    }
    if let Some(e) = &request.finalize_error {
        out.push_str(&format!(
            "  not ended     every task is done, but {e}; fix the storage and it is retried every sweep\n"
        ));
    }
    if let Some(at) = request.exports_expired_at {
        out.push_str(&format!(
            "  expired       {} (bundle and confirmation deleted)\n",
            rfc3339(at)
        ));
    }
    if let Some(at) = request.pseudonymised_at {
        out.push_str(&format!(
            "  pseudonymised {} (identities replaced by keyed hashes)\n",
            rfc3339(at)
        ));
    }
    out
}

pub async fn print_status(ledger: &Ledger, id: &str, as_json: bool) -> Result<Request, CliError> {
    let request = ledger.get_request(id).await?;
    let tasks = ledger.tasks(id).await?;
    if as_json {
        println!("{}", status_json(&request, &tasks));
    } else {
        print!("{}", status_text(&request, &tasks));
    }
    Ok(request)
}

/// One line per change of a task's state, on stderr, while an operator waits.
#[derive(Default)]
pub struct Progress {
    last: Vec<String>,
}

impl Progress {
    pub fn show(&mut self, request: &Request, tasks: &[Task]) {
        let now: Vec<String> = std::iter::once(format!("request {}: {}", request.id, request.status))
            .chain(tasks.iter().map(|t| {
                let attempt = if t.attempts > 0 {
                    format!(" (attempt {})", t.attempts)
                } else {
                    String::new()
                };
                format!("  {}: {}{attempt}", t.processor, t.status)
            }))
            .collect();
        for line in &now {
            if !self.last.contains(line) {
                eprintln!("{line}");
            }
        }
        self.last = now;
    }
}
