//! The confirmation a finished erasure, rectification or objection leaves behind (the bundle
//! for access and portability is in `bundle`): per processor the plan item by item and what
//! became of each item, the verification (planning again) after the change, what was kept and why, before/after
//! for each rectified field, the consents withdrawn, and the recipients the change reached
//! (Art. 19). The JSON pins the audit chain's head when it was written and is signed when a
//! key is configured (`.sig` beside it). Each object is stored whole in one write, so a
//! re-run of `finalize` replaces rather than duplicates.

use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::EngineError;
use crate::ledger::{Head, ts};
use crate::model::{Request, RequestStatus, Task, TaskStatus};
use crate::signing::Signer;
use crate::storage::{ExportStore, Key, key};

const CONFIRMATION_HTML: &str = r#"<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ t.title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.35rem;text-align:left;vertical-align:top}
.preview{background:#fff3cd;padding:.5rem}section{border-top:1px solid #ddd;margin-top:1.2rem}
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto;font-size:.85rem}small{color:#555}</style></head><body>
<h1>{{ t.title }}</h1>
{% if preview %}<p class="preview">{{ t.preview }}</p>{% endif %}
<p>{{ t.request }}: <code>{{ request_id }}</code> · {{ kind }} · {{ t.status }}: {{ status }}<br>
{{ t.received }}: {{ received_at }} · {{ t.generated }}: {{ generated_at }}</p>
<table><tr><th>{{ t.processor }}</th><th>{{ t.status }}</th><th>{{ t.found }}</th><th>{{ t.changed }}</th><th>{{ t.verification }}</th></tr>
{% for p in processors %}<tr><td>{{ p.name }}</td><td>{{ p.status }}{% if p.outcome %} ({{ p.outcome }}){% endif %}</td><td>{{ p.found }}</td><td>{{ p.changed }}</td><td>{% if p.verification %}{% for k, v in p.verification|items %}{{ k }}: {{ v }}<br>{% endfor %}{% else %}–{% endif %}</td></tr>
{% endfor %}</table>
{% if kind != "access" %}<p><strong>{{ t.recipients }}</strong>: {% if recipients %}{{ recipients|join(", ") }}{% else %}{{ t.none }}{% endif %}</p>{% endif %}
{% for p in processors %}<section><h2>{{ p.name }}</h2>
{% if p.reason %}<p>{{ t.reason }}: {{ p.reason }}</p>{% endif %}
{% if p.error %}<p>{{ t.error }}: {{ p.error }}</p>{% endif %}
{% for n in p.notes %}<p>{{ n }}</p>{% endfor %}
{% if p.retained %}<h3>{{ t.retained }}</h3><table><tr><th>{{ t.category }}</th><th>{{ t.count }}</th><th>{{ t.reason }}</th><th>{{ t.legal_basis }}</th></tr>
{% for r in p.retained %}<tr><td>{{ r.category }}</td><td>{{ r.count }}</td><td>{{ r.reason }}</td><td>{{ r.legal_basis }}</td></tr>{% endfor %}</table>{% endif %}
{% if p.items %}<h3>{{ t.plan }}{% if p.plan %} <small><code>{{ p.plan }}</code></small>{% endif %}</h3><table><tr><th>{{ t.category }}</th><th>{{ t.item }}</th><th>{{ t.action }}</th><th>{{ t.state }}</th><th>{{ t.before }}</th><th>{{ t.after }}</th></tr>
{% for i in p.items %}<tr><td>{{ i.category }}</td><td><code>{{ i.key }}</code>{% if i.shared %}<br><small>{{ i.shared }}</small>{% endif %}</td><td>{{ i.action }}</td><td>{{ i.state }}{% if i.reason %}<br><small>{{ i.reason }}</small>{% endif %}</td><td>{% if i.before is defined %}{{ i.before|tojson }}{% endif %}</td><td>{% if i.after is defined %}{{ i.after|tojson }}{% endif %}</td></tr>{% endfor %}</table>{% endif %}
{% if p.refused %}<h3>{{ t.refused }}</h3><ul>{% for r in p.refused %}<li>{{ r.item }}: {{ r.reason }}</li>{% endfor %}</ul>{% endif %}
{% for e in p.evidence %}<h3>{{ e.kind }}</h3><pre>{{ e.detail|tojson(indent=2) }}</pre>{% endfor %}
</section>{% endfor %}
<p><small>{{ t.integrity }}: {{ t.chain }} #{{ audit_chain.seq }} <code>{{ audit_chain.hash }}</code>{% if public_key %} · Ed25519 <code>{{ public_key }}</code>{% endif %}</small></p>
</body></html>
"#;

fn labels(nb: bool) -> Value {
    let pick = |nb_text: &str, en_text: &str| if nb { nb_text.to_string() } else { en_text.to_string() };
    json!({
        "title": pick("Bekreftelse på behandlet forespørsel", "Confirmation of your request"),
        "preview": pick("Forhåndsvisning: ingenting er endret. Slik ville forespørselen blitt utført.", "Preview: nothing was changed. This is what the request would do."),
        "request": pick("Forespørsel", "Request"),
        "status": "Status",
        "received": pick("Mottatt", "Received"),
        "generated": pick("Laget", "Generated"),
        "processor": pick("Databehandler", "Processor"),
        "found": pick("Funnet", "Found"),
        "changed": pick("Endret", "Changed"),
        "verification": pick("Kontrollsøk etterpå", "Verification search"),
        "recipients": pick("Endringen er formidlet til (art. 19)", "The change was passed on to (Art. 19)"),
        "none": pick("ingen", "none"),
        "reason": pick("Begrunnelse", "Reason"),
        "error": pick("Feil", "Error"),
        "retained": pick("Beholdt", "Retained"),
        "refused": pick("Ikke endret: ikke den registrertes", "Not changed: not the subject's"),
        "category": pick("Kategori", "Category"),
        "count": pick("Antall", "Count"),
        "legal_basis": pick("Rettslig grunnlag", "Legal basis"),
        "plan": pick("Plan, punkt for punkt", "Plan, item by item"),
        "item": pick("Punkt", "Item"),
        "action": pick("Handling", "Action"),
        "state": pick("Utfall", "Outcome"),
        "before": pick("Før", "Before"),
        "after": pick("Etter", "After"),
        "integrity": pick("Integritet", "Integrity"),
        "chain": pick("revisjonslogg", "audit chain"),
    })
}

/// The confirmation as JSON: what the operator keeps and the subject receives.
pub fn document(
    request: &Request,
    tasks: &[Task],
    status: RequestStatus,
    head: &Head,
    signer: Option<&Signer>,
) -> Value {
    let processors: Vec<Value> = tasks
        .iter()
        .map(|t| {
            let evidence = t.evidence["evidence"].as_array().cloned().unwrap_or_default();
            let verification = evidence
                .iter()
                .find(|e| e["kind"] == "verification_search")
                .map(|e| e["detail"].clone());
            json!({
                "processor": t.processor,
                "name": t.processor.display_name(),
                "status": t.status.as_str(),
                "outcome": t.outcome.map(|o| o.as_str()),
                "found": t.found,
                "changed": t.changed,
                "reason": t.reason,
                "error": t.error,
                "verification": verification,
                "retained": t.evidence["retained"].as_array().cloned().unwrap_or_default(),
                "notes": t.evidence["notes"].as_array().cloned().unwrap_or_default(),
                "refused": t.evidence["refused"].as_array().cloned().unwrap_or_default(),
                "plan": t.evidence["plan"],
                "items": t.evidence["items"].as_array().cloned().unwrap_or_default(),
                "evidence": evidence,
            })
        })
        .collect();
    // Art. 19: every processor the change reached (for a preview: would reach).
    let recipients: Vec<&str> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Succeeded && t.found > 0)
        .map(|t| t.processor.display_name())
        .collect();
    json!({
        "schema_version": 1,
        "request_id": request.id,
        "kind": request.kind,
        "status": status,
        "preview": request.dry_run,
        "received_at": ts(request.received_at),
        "generated_at": ts(Utc::now()),
        "processors": processors,
        "recipients": recipients,
        "audit_chain": head,
        "public_key": signer.map(|s| s.public_key()),
    })
}

/// Where a confirmation went, and the SHA-256 of its JSON (kept in the ledger).
#[derive(Debug, Clone)]
pub struct Confirmation {
    pub location: String,
    pub sha256: String,
}

/// Writes `dsr-<id>-confirmation.json`, `.html` beside it and, when a key is configured,
/// `.json.sig` to the export storage.
pub async fn write_confirmation(
    store: &ExportStore,
    request: &Request,
    tasks: &[Task],
    status: RequestStatus,
    head: &Head,
    signer: Option<&Signer>,
) -> Result<Confirmation, EngineError> {
    let document = document(request, tasks, status, head, signer);
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    let mut context = document.clone();
    context["lang"] = json!(request.lang.as_str());
    context["t"] = labels(request.lang == crate::model::Lang::Nb);
    let html = env
        .render_str(CONFIRMATION_HTML, &context)
        .map_err(|e| EngineError::Invalid(format!("confirmation template: {e}")))?;
    let bytes = serde_json::to_vec_pretty(&document).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let names = confirmation_keys(&request.id);
    store.put(&names.html, html.into_bytes()).await?;
    if let Some(signer) = signer {
        let sig = serde_json::to_vec_pretty(&signer.sign(&bytes)).map_err(|e| EngineError::Invalid(e.to_string()))?;
        store.put(&names.sig, sig).await?;
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    store.put(&names.json, bytes).await?;
    Ok(Confirmation {
        location: store.locate(&names.json),
        sha256,
    })
}

/// The keys of a request's confirmation objects.
pub struct ConfirmationKeys {
    pub json: Key,
    pub html: Key,
    pub sig: Key,
}

pub fn confirmation_keys(request_id: &str) -> ConfirmationKeys {
    ConfirmationKeys {
        json: key(&format!("dsr-{request_id}-confirmation.json")),
        html: key(&format!("dsr-{request_id}-confirmation.html")),
        sig: key(&format!("dsr-{request_id}-confirmation.json.sig")),
    }
}
