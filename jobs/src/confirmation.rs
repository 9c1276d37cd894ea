//! The confirmation a finished erasure, rectification or objection leaves behind (the bundle
//! for access and portability is in `bundle`): per processor the plan item by item and what
//! became of each item, the verification (planning again) after the change, what was kept and why, before/after
//! for each rectified field, the consents withdrawn, and the recipients the change reached
//! (Art. 19). The JSON pins the audit chain's head when it was written and is signed when a
//! key is configured (`.sig` beside it). Each object is stored whole in one write, so a
//! re-run of `finalize` replaces rather than duplicates.
//!
//! [`ConfirmationDocument`] is the JSON's one shape: `write_confirmation` serialises it and
//! [`crate::verification`] reads it back.

use chrono::{DateTime, SubsecRound, Utc};
use dsr_connector::{Evidence, Processor, Retained};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::EngineError;
use crate::ledger::Head;
use crate::model::{Outcome, Request, RequestKind, RequestStatus, Task, TaskStatus};
use crate::signing::Signer;
use crate::storage::{ExportStore, Key, key};
use crate::verification::{DocumentError, read_versioned};

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

/// The version of [`ConfirmationDocument`]'s shape. A reader refuses a version it does not
/// know; a change of shape bumps it (and keeps the reader of the old one).
pub const CONFIRMATION_SCHEMA: u32 = 1;

/// The confirmation as JSON: what the operator keeps and the subject receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmationDocument {
    /// [`CONFIRMATION_SCHEMA`] when written by this dsr.
    pub schema_version: u32,
    pub request_id: String,
    pub kind: RequestKind,
    pub status: RequestStatus,
    /// A dry run: what the request would do; nothing was changed.
    pub preview: bool,
    #[serde(with = "micros")]
    pub received_at: DateTime<Utc>,
    #[serde(with = "micros")]
    pub generated_at: DateTime<Utc>,
    pub processors: Vec<ProcessorReport>,
    /// Art. 19: every processor the change reached (for a preview: would reach), by name.
    pub recipients: Vec<String>,
    /// The audit chain's head when the confirmation was written: the chain must still hold
    /// this event, unaltered.
    #[serde(with = "HeadDef")]
    pub audit_chain: Head,
    /// The Ed25519 key the `.sig` beside it was made with (base64), when signed.
    pub public_key: Option<String>,
}

/// One processor's part in a confirmation. The plan items and the evidence details are the
/// vendor's shapes, kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorReport {
    pub processor: Processor,
    /// The processor as a person reads it.
    pub name: String,
    pub status: TaskStatus,
    pub outcome: Option<Outcome>,
    pub found: u64,
    pub changed: u64,
    pub reason: Option<String>,
    pub error: Option<String>,
    /// What planning again after the change found (the `verification_search` evidence).
    pub verification: Option<Value>,
    pub retained: Vec<Retained>,
    pub notes: Vec<String>,
    /// Items left alone because they are not the subject's.
    pub refused: Vec<Refused>,
    /// The hash of the plan carried out.
    pub plan: Option<String>,
    /// The plan, item by item: key, category, action, state, and before/after when changed.
    pub items: Vec<Value>,
    pub evidence: Vec<Evidence>,
}

/// An item the plan left alone: not the subject's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    pub item: String,
    pub reason: String,
}

/// The part of a task's evidence a confirmation shows (as `change::succeeded` records it;
/// a task that never got that far has none).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TaskEvidence {
    plan: Option<String>,
    evidence: Vec<Evidence>,
    items: Vec<Value>,
    retained: Vec<Retained>,
    notes: Vec<String>,
    refused: Vec<Refused>,
}

fn render(document: &'static str, error: impl std::fmt::Display) -> EngineError {
    EngineError::Render {
        document,
        reason: error.to_string(),
    }
}

/// The kind of evidence that holds the verification search.
const VERIFICATION_SEARCH: &str = "verification_search";

impl ProcessorReport {
    fn of(task: &Task) -> Result<ProcessorReport, EngineError> {
        let evidence: TaskEvidence = if task.evidence.is_null() {
            TaskEvidence::default()
        } else {
            serde_json::from_value(task.evidence.clone()).map_err(|e| EngineError::Evidence {
                document: "confirmation",
                request_id: task.request_id.clone(),
                processor: task.processor,
                reason: e.to_string(),
            })?
        };
        Ok(ProcessorReport {
            processor: task.processor,
            name: task.processor.display_name().into(),
            status: task.status,
            outcome: task.outcome,
            found: task.found,
            changed: task.changed,
            reason: task.reason.clone(),
            error: task.error.clone(),
            verification: evidence
                .evidence
                .iter()
                .find(|e| e.kind == VERIFICATION_SEARCH)
                .map(|e| e.detail.clone()),
            retained: evidence.retained,
            notes: evidence.notes,
            refused: evidence.refused,
            plan: evidence.plan,
            items: evidence.items,
            evidence: evidence.evidence,
        })
    }
}

impl ConfirmationDocument {
    /// The confirmation of `request` from its tasks, pinned to the audit chain's `head`.
    pub fn new(
        request: &Request,
        tasks: &[Task],
        status: RequestStatus,
        head: &Head,
        signer: Option<&Signer>,
    ) -> Result<ConfirmationDocument, EngineError> {
        // Art. 19: every processor the change reached (for a preview: would reach).
        let recipients = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Succeeded && t.found > 0)
            .map(|t| t.processor.display_name().to_string())
            .collect();
        Ok(ConfirmationDocument {
            schema_version: CONFIRMATION_SCHEMA,
            request_id: request.id.clone(),
            kind: request.kind,
            status,
            preview: request.dry_run,
            // As precise as written, so the document equals what reads back.
            received_at: request.received_at.trunc_subsecs(6),
            generated_at: Utc::now().trunc_subsecs(6),
            processors: tasks.iter().map(ProcessorReport::of).collect::<Result<_, _>>()?,
            recipients,
            audit_chain: head.clone(),
            public_key: signer.map(|s| s.public_key()),
        })
    }

    /// Reads a confirmation as written (any schema version this dsr knows).
    pub fn from_slice(bytes: &[u8]) -> Result<ConfirmationDocument, DocumentError> {
        read_versioned(bytes, CONFIRMATION_SCHEMA)
    }

    /// The JSON as stored (and signed).
    pub fn to_vec(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }

    /// The page beside the JSON, in the request's language.
    pub fn html(&self, lang: crate::model::Lang) -> Result<String, minijinja::Error> {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.render_str(
            CONFIRMATION_HTML,
            minijinja::context! {
                lang => lang.as_str(),
                t => labels(lang == crate::model::Lang::Nb),
                ..minijinja::Value::from_serialize(self)
            },
        )
    }
}

/// The audit chain's head as a confirmation holds it (`Head` is the ledger's).
#[derive(Serialize, Deserialize)]
#[serde(remote = "Head")]
struct HeadDef {
    seq: i64,
    hash: String,
}

/// Timestamps as the ledger writes them: RFC 3339, UTC, microseconds.
pub(crate) mod micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::ledger::ts(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Where a confirmation went, and the SHA-256 of its JSON (kept in the ledger).
#[derive(Debug, Clone)]
pub struct StoredConfirmation {
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
) -> Result<StoredConfirmation, EngineError> {
    let document = ConfirmationDocument::new(request, tasks, status, head, signer)?;
    let html = document
        .html(request.lang)
        .map_err(|e| render("confirmation template", e))?;
    let bytes = document.to_vec().map_err(|e| render("confirmation", e))?;
    let names = confirmation_keys(&request.id);
    store.put(&names.html, html.into_bytes()).await?;
    if let Some(signer) = signer {
        let sig = serde_json::to_vec_pretty(&signer.sign(&bytes)).map_err(|e| render("confirmation signature", e))?;
        store.put(&names.sig, sig).await?;
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    store.put(&names.json, bytes).await?;
    Ok(StoredConfirmation {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Lang;
    use chrono::TimeZone;

    fn request() -> Request {
        let received_at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap();
        Request::received("r-1", RequestKind::Erasure, Default::default(), Lang::En, received_at)
    }

    fn task(processor: Processor, status: TaskStatus, evidence: Value) -> Task {
        Task {
            outcome: (status == TaskStatus::Succeeded).then_some(Outcome::PartlyRetained),
            found: 2,
            changed: 1,
            error: (status == TaskStatus::Failed).then(|| "vendor said no".to_string()),
            evidence,
            ..Task::attempted("r-1", processor, status)
        }
    }

    /// A task's evidence as `change::succeeded` records it.
    fn evidence() -> Value {
        json!({
            "plan": "plan-hash",
            "evidence": [
                {"kind": "plan", "detail": {"items": 2}},
                {"kind": "verification_search", "detail": {"remaining": 0}},
            ],
            "items": [
                {"key": "contact/1", "category": "contacts", "action": "delete", "state": "done",
                 "before": {"family_name": "Nordmann"}},
                {"key": "sale/7", "category": "sales", "action": "keep", "state": "retained",
                 "shared": "with the company", "reason": "bookkeeping"},
            ],
            "retained": [{"category": "sales", "count": 1, "reason": "bookkeeping",
                          "legal_basis": "Bokføringsloven § 13"}],
            "notes": ["Deleted contacts stay in the trash for 30 days."],
            "operator_notes": [],
            "refused": [{"item": "contact/9", "reason": "another person's address"}],
        })
    }

    fn sample() -> ConfirmationDocument {
        let tasks = [
            task(Processor::Superoffice, TaskStatus::Succeeded, evidence()),
            task(Processor::Wix, TaskStatus::Failed, Value::Null),
        ];
        let head = Head {
            seq: 42,
            hash: "ab".repeat(32),
        };
        let (signer, _) = Signer::generate().unwrap();
        ConfirmationDocument::new(
            &request(),
            &tasks,
            RequestStatus::PartiallyCompleted,
            &head,
            Some(&signer),
        )
        .unwrap()
    }

    #[test]
    fn a_written_confirmation_reads_back_typed() {
        let document = sample();
        let bytes = document.to_vec().unwrap();
        let read = ConfirmationDocument::from_slice(&bytes).unwrap();
        assert_eq!(read, document);
        assert_eq!(read.schema_version, CONFIRMATION_SCHEMA);
        assert_eq!(read.audit_chain.seq, 42);
        assert_eq!(read.recipients, ["SuperOffice"], "only what the change reached");
        let superoffice = &read.processors[0];
        assert_eq!(superoffice.verification, Some(json!({"remaining": 0})));
        assert_eq!(superoffice.refused[0].item, "contact/9");
        assert_eq!(superoffice.retained[0].legal_basis, "Bokføringsloven § 13");
        let wix = &read.processors[1];
        assert!(wix.items.is_empty() && wix.plan.is_none() && wix.verification.is_none());
        assert_eq!(wix.error.as_deref(), Some("vendor said no"));
    }

    #[test]
    fn the_json_keeps_the_version_1_fields_and_values() {
        let document = sample();
        let written: Value = serde_json::from_slice(&document.to_vec().unwrap()).unwrap();
        let expected = json!({
            "schema_version": 1,
            "request_id": "r-1",
            "kind": "erasure",
            "status": "partially_completed",
            "preview": false,
            "received_at": "2026-03-02T09:30:00.000000Z",
            "generated_at": crate::ledger::ts(document.generated_at),
            "processors": [
                {
                    "processor": "superoffice", "name": "SuperOffice", "status": "succeeded",
                    "outcome": "partly_retained", "found": 2, "changed": 1, "reason": null, "error": null,
                    "verification": {"remaining": 0},
                    "retained": evidence()["retained"], "notes": evidence()["notes"],
                    "refused": evidence()["refused"], "plan": "plan-hash",
                    "items": evidence()["items"], "evidence": evidence()["evidence"],
                },
                {
                    "processor": "wix", "name": "Wix", "status": "failed", "outcome": null, "found": 2,
                    "changed": 1, "reason": null, "error": "vendor said no", "verification": null,
                    "retained": [], "notes": [], "refused": [], "plan": null, "items": [], "evidence": [],
                },
            ],
            "recipients": ["SuperOffice"],
            "audit_chain": {"seq": 42, "hash": "ab".repeat(32)},
            "public_key": document.public_key,
        });
        assert_eq!(written, expected);
    }

    #[test]
    fn a_version_1_confirmation_written_before_the_typed_writer_still_reads() {
        // As the `json!` writer laid it out: keys in alphabetical order.
        let old = r#"{
  "audit_chain": {"hash": "0f0f", "seq": 7},
  "generated_at": "2026-01-05T10:00:00.123456Z",
  "kind": "objection",
  "preview": true,
  "processors": [
    {
      "changed": 0, "error": null,
      "evidence": [{"detail": {"remaining": 1}, "kind": "verification_search"}],
      "found": 1,
      "items": [{"action": "withdraw", "category": "consents", "key": "EMARKETING", "state": "planned"}],
      "name": "SuperOffice", "notes": [], "outcome": "done", "plan": "h", "processor": "superoffice",
      "reason": null, "refused": [], "retained": [], "status": "succeeded",
      "verification": {"remaining": 1}
    }
  ],
  "public_key": null,
  "received_at": "2026-01-05T09:59:00.000000Z",
  "recipients": ["SuperOffice"],
  "request_id": "r-old",
  "schema_version": 1,
  "status": "completed"
}"#;
        let read = ConfirmationDocument::from_slice(old.as_bytes()).unwrap();
        assert_eq!(read.request_id, "r-old");
        assert_eq!(read.kind, RequestKind::Objection);
        assert_eq!(
            read.audit_chain,
            Head {
                seq: 7,
                hash: "0f0f".into()
            }
        );
        assert_eq!(read.processors[0].outcome, Some(Outcome::Done));
        assert_eq!(crate::ledger::ts(read.generated_at), "2026-01-05T10:00:00.123456Z");
    }

    #[test]
    fn an_unknown_schema_version_is_refused_as_such() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["schema_version"] = json!(2);
        value["processors"] = json!("a shape version 1 never had");
        let err = ConfirmationDocument::from_slice(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(
            matches!(err, DocumentError::UnknownSchema { found: 2, known: 1 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("schema version 2"), "{err}");
        assert!(matches!(
            ConfirmationDocument::from_slice(b"{\"schema_version\": 1,"),
            Err(DocumentError::NotJson(_))
        ));
        assert!(matches!(
            ConfirmationDocument::from_slice(b"{\"schema_version\": 1}"),
            Err(DocumentError::Shape(_))
        ));
    }

    #[test]
    fn the_page_renders_from_the_typed_document() {
        let document = sample();
        let html = document.html(Lang::Nb).unwrap();
        assert!(html.contains("<html lang=\"nb\">"), "{html}");
        assert!(html.contains("Bekreftelse på behandlet forespørsel"));
        assert!(html.contains("SuperOffice") && html.contains("partly_retained"));
        assert!(html.contains("remaining: 0"), "the verification search: {html}");
        assert!(html.contains("Bokføringsloven § 13"));
        assert!(html.contains("&quot;family_name&quot;") || html.contains("family_name"));
        assert!(html.contains("#42"), "the pinned audit event");
        assert!(html.contains(" · Ed25519 <code>"), "the signing key");
        assert!(html.contains("vendor said no"));
    }

    #[test]
    fn evidence_that_does_not_read_stops_the_writer_naming_the_task() {
        let tasks = [task(
            Processor::Wix,
            TaskStatus::Succeeded,
            json!({"notes": "not a list"}),
        )];
        let head = Head {
            seq: 1,
            hash: "h".into(),
        };
        let err = ConfirmationDocument::new(&request(), &tasks, RequestStatus::Completed, &head, None).unwrap_err();
        assert!(err.to_string().contains("r-1's wix task"), "{err}");
    }
}
