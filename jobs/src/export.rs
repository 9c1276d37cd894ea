//! What a finished request leaves behind on the export storage: the bundle for access and
//! portability (assembled from the accepted spools), the confirmation for the rest. Files
//! are written beside their final name and renamed into place, so a re-run of `finalize`
//! replaces rather than duplicates and a reader never sees half a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::engine::EngineError;
use crate::ledger::ts;
use crate::model::{Request, RequestKind, RequestStatus, Task};
use crate::spool::{SpoolEntry, files_dir, read_spool};
use dsr_connector::StoredFile;

pub const MANIFEST_SCHEMA: u32 = 1;

fn storage(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `dsr-<id>.zip`: per processor and category a JSON file of records, and a
/// manifest with counts and a SHA-256 per file.
pub async fn write_bundle(dir: &Path, request: &Request, tasks: &[Task]) -> Result<PathBuf, EngineError> {
    tokio::fs::create_dir_all(dir).await.map_err(storage(dir))?;
    let final_path = dir.join(format!("dsr-{}.zip", request.id));
    // Group each processor's records by category, in memory per processor only; files
    // (attachments) are copied from the spool into the ZIP as streams.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut attachments: Vec<(String, PathBuf, StoredFile)> = Vec::new();
    let mut processors = Vec::new();
    for task in tasks {
        let mut by_category: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        if let Some(spool) = &task.spool {
            let spool_path = PathBuf::from(spool);
            let portability = request.kind == RequestKind::Portability;
            read_spool(&spool_path, |entry| {
                match entry {
                    SpoolEntry::Record(record) if portability && !record.provided_by_subject => {}
                    SpoolEntry::Record(record) => by_category.entry(record.category).or_default().push(record.data),
                    // Attachments are what others sent the subject, not what the subject
                    // provided: a portability bundle leaves them out.
                    SpoolEntry::File(_) if portability => {}
                    SpoolEntry::File(file) => {
                        let source = files_dir(&spool_path).join(&file.path);
                        attachments.push((format!("{}/{}", task.processor, file.path), source, file));
                    }
                }
                Ok(())
            })
            .await
            .map_err(storage(&spool_path))?;
        }
        let mut categories = serde_json::Map::new();
        for (category, records) in by_category {
            categories.insert(category.clone(), json!({"records": records.len()}));
            let bytes = serde_json::to_vec_pretty(&records).unwrap_or_default();
            files.push((format!("{}/{category}.json", task.processor), bytes));
        }
        processors.push(json!({
            "processor": task.processor,
            "status": task.status.as_str(),
            "outcome": task.outcome.map(|o| o.as_str()),
            "reason": task.reason,
            "error": task.error,
            "categories": categories,
            "notes": task.evidence.get("notes").cloned().unwrap_or(json!([])),
        }));
    }
    let file_entries: Vec<Value> = files
        .iter()
        .map(|(path, bytes)| {
            json!({"path": path, "bytes": bytes.len(), "media_type": "application/json",
                   "sha256": hex::encode(Sha256::digest(bytes))})
        })
        .chain(attachments.iter().map(
            |(path, _, f)| json!({"path": path, "bytes": f.bytes, "media_type": f.media_type, "sha256": f.sha256}),
        ))
        .collect();
    let manifest = json!({
        "schema_version": MANIFEST_SCHEMA,
        "request_id": request.id,
        "kind": request.kind,
        "identities_searched": request.identities,
        "received_at": ts(request.received_at),
        "generated_at": ts(Utc::now()),
        "processors": processors,
        "files": file_entries,
    });
    files.insert(
        0,
        (
            "manifest.json".into(),
            serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        ),
    );

    let tmp = final_path.with_extension("zip.partial");
    let tmp_for_blocking = tmp.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp_for_blocking)?;
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (path, bytes) in files {
            zip.start_file(path, options).map_err(std::io::Error::other)?;
            zip.write_all(&bytes)?;
        }
        for (path, source, _) in attachments {
            zip.start_file(path, options).map_err(std::io::Error::other)?;
            std::io::copy(&mut std::fs::File::open(&source)?, &mut zip)?;
        }
        let file = zip.finish().map_err(std::io::Error::other)?;
        file.sync_all()
    })
    .await
    .map_err(|e| EngineError::Invalid(e.to_string()))?
    .map_err(storage(&tmp))?;
    tokio::fs::rename(&tmp, &final_path)
        .await
        .map_err(storage(&final_path))?;
    Ok(std::path::absolute(&final_path).unwrap_or(final_path))
}

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

/// Writes `dsr-<id>-confirmation.json` and `.html` beside it; returns the `.json` path.
pub async fn write_confirmation(
    dir: &Path,
    request: &Request,
    tasks: &[Task],
    status: RequestStatus,
) -> Result<PathBuf, EngineError> {
    tokio::fs::create_dir_all(dir).await.map_err(storage(dir))?;
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
    let json_path = dir.join(format!("dsr-{}-confirmation.json", request.id));
    let html_path = json_path.with_extension("html");
    write_atomically(&html_path, html.as_bytes()).await?;
    write_atomically(&json_path, &serde_json::to_vec_pretty(&document).unwrap_or_default()).await?;
    Ok(std::path::absolute(&json_path).unwrap_or(json_path))
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let tmp = path.with_extension("partial");
    tokio::fs::write(&tmp, bytes).await.map_err(storage(&tmp))?;
    tokio::fs::rename(&tmp, path).await.map_err(storage(path))
}
