//! The confirmation a finished erasure, rectification or objection leaves behind (the bundle
//! for access and portability is in `bundle`). Written beside the final name and renamed into
//! place, so a re-run of `finalize` replaces rather than duplicates.

use chrono::Utc;
use serde_json::{Value, json};

use crate::engine::EngineError;
use crate::ledger::ts;
use crate::model::{Request, RequestStatus, Task};
use crate::storage::{ExportStore, key};

const CONFIRMATION_HTML: &str = r#"<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4rem;text-align:left}
.preview{background:#fff3cd;padding:.5rem}</style></head><body>
<h1>{{ title }}</h1>
{% if dry_run %}<p class="preview">{{ preview }}</p>{% endif %}
<p>{{ request_label }}: {{ request_id }} · {{ kind }} · {{ status }}</p>
<table><tr><th>{{ processor_label }}</th><th>{{ status_label }}</th><th>{{ found_label }}</th><th>{{ changed_label }}</th><th>{{ note_label }}</th></tr>
{% for p in processors %}<tr><td>{{ p.processor }}</td><td>{{ p.status }}{% if p.outcome %} ({{ p.outcome }}){% endif %}</td><td>{{ p.found }}</td><td>{{ p.changed }}</td><td>{{ p.reason or p.error or "" }}</td></tr>
{% endfor %}</table></body></html>
"#;

/// Writes `dsr-<id>-confirmation.json` and `.html` beside it to the export storage; returns
/// where the `.json` is.
pub async fn write_confirmation(
    store: &ExportStore,
    request: &Request,
    tasks: &[Task],
    status: RequestStatus,
) -> Result<String, EngineError> {
    let processors: Vec<Value> = tasks
        .iter()
        .map(|t| {
            json!({
                "processor": t.processor,
                "status": t.status.as_str(),
                "outcome": t.outcome.map(|o| o.as_str()),
                "found": t.found,
                "changed": t.changed,
                "reason": t.reason,
                "error": t.error,
                "evidence": t.evidence,
            })
        })
        .collect();
    let document = json!({
        "request_id": request.id,
        "kind": request.kind,
        "status": status,
        "preview": request.dry_run,
        "received_at": ts(request.received_at),
        "generated_at": ts(Utc::now()),
        "processors": processors,
    });
    let nb = request.lang == crate::model::Lang::Nb;
    let pick = |nb_text: &'static str, en_text: &'static str| if nb { nb_text } else { en_text };
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    let html = env
        .render_str(
            CONFIRMATION_HTML,
            minijinja::context! {
                lang => request.lang.as_str(),
                title => pick("Bekreftelse på behandlet forespørsel", "Confirmation of your request"),
                preview => pick("Forhåndsvisning: ingenting er endret.", "Preview: nothing was changed."),
                request_label => pick("Forespørsel", "Request"),
                processor_label => pick("Databehandler", "Processor"),
                status_label => "Status",
                found_label => pick("Funnet", "Found"),
                changed_label => pick("Endret", "Changed"),
                note_label => pick("Merknad", "Note"),
                request_id => &request.id,
                kind => request.kind.as_str(),
                status => status.as_str(),
                dry_run => request.dry_run,
                processors => &processors,
            },
        )
        .map_err(|e| EngineError::Invalid(format!("confirmation template: {e}")))?;
    let json_key = key(&format!("dsr-{}-confirmation.json", request.id));
    let html_key = key(&format!("dsr-{}-confirmation.html", request.id));
    store.put(&html_key, html.into_bytes()).await?;
    store
        .put(&json_key, serde_json::to_vec_pretty(&document).unwrap_or_default())
        .await?;
    Ok(store.locate(&json_key))
}
