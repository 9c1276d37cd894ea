//! Retention of what dsr holds, run with every sweep tick: a finished request's bundle and
//! confirmation leave the export storage after `[export] retention_days`, and its identities,
//! requested changes and the vendor texts that name the subject are replaced in the ledger by
//! keyed hashes after `[privacy] pseudonymise_after_days`. The audit chain never held them,
//! so it stays whole; the same subject always gets the same hash, so a later request can
//! still be matched to what was done. Staging files an interrupted write left in a local
//! export directory are removed after a day.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::confirmation::confirmation_keys;
use crate::engine::{Engine, EngineError};

/// What one retention pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RetentionReport {
    pub exports_expired: usize,
    pub pseudonymised: usize,
    /// Staging files a crashed write left in the local export directory.
    pub staging_removed: usize,
}

/// How old a staging file must be before it counts as left behind: no write takes a day.
pub const STAGING_LEFTOVER_AGE: chrono::Duration = chrono::Duration::days(1);

pub async fn run(engine: &Engine, now: DateTime<Utc>) -> Result<RetentionReport, EngineError> {
    Ok(RetentionReport {
        exports_expired: expire_exports(engine, now).await?,
        pseudonymised: pseudonymise(engine, now).await?,
        staging_removed: remove_staging_leftovers(engine, now).await?,
    })
}

/// Removes the `<name>#<n>` staging files a write killed mid-way left in a local export
/// store more than a day ago (listing skips them, so expiry never would).
pub async fn remove_staging_leftovers(engine: &Engine, now: DateTime<Utc>) -> Result<usize, EngineError> {
    let cutoff: std::time::SystemTime = (now - STAGING_LEFTOVER_AGE).into();
    let removed = engine.settings().export.remove_staging_leftovers(cutoff).await?;
    if removed > 0 {
        tracing::info!(files = removed, "staging files left by interrupted writes removed");
    }
    Ok(removed)
}

/// Deletes bundles and confirmations older than the retention period, and the spools a
/// cancelled request left behind, and records it.
pub async fn expire_exports(engine: &Engine, now: DateTime<Utc>) -> Result<usize, EngineError> {
    let settings = engine.settings();
    let store = &settings.export;
    let due = engine.ledger().exports_due(now - settings.retention).await?;
    for request in &due {
        let names = confirmation_keys(&request.id);
        let mut deleted = store.delete_prefix(&crate::spool::request_prefix(&request.id)).await?;
        for key in [
            crate::bundle::bundle_key(&request.id),
            names.json,
            names.html,
            names.sig,
        ] {
            if store.size(&key).await.is_ok() {
                store.delete(&key).await?;
                deleted += 1;
            }
        }
        if engine.ledger().mark_exports_expired(&request.id, deleted).await? {
            tracing::info!(request = %request.id, objects = deleted, "bundle and confirmation expired");
        }
    }
    Ok(due.len())
}

/// The keyed hash that stands in for one identity or value.
pub fn pseudonym(key: &[u8], value: &str) -> String {
    let value = value.trim().to_lowercase();
    let digest = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(value.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length, so this does not happen; still no panic.
        Err(_) => <Sha256 as sha2::Digest>::digest([key, value.as_bytes()].concat()).to_vec(),
    };
    format!("pseudonym:{}", &hex::encode(digest)[..32])
}

/// Replaces every string that contains one of `needles` (case-insensitively) by its pseudonym.
fn scrub(value: &mut Value, needles: &[String], key: &[u8]) {
    match value {
        Value::String(s) => {
            let lower = s.to_lowercase();
            if needles.iter().any(|n| lower.contains(n.as_str())) {
                *s = pseudonym(key, s);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, needles, key)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub(v, needles, key)),
        _ => {}
    }
}

/// Replaces every value held under a `before` or `after` key (a field's old or new value,
/// a consent's state, in a plan or its evidence) by its pseudonym, whatever it names: an old
/// surname is personal data even when it is none of the subject's identifiers.
fn seal_values(value: &mut Value, key: &[u8]) {
    match value {
        Value::Object(map) => {
            for (name, v) in map.iter_mut() {
                if (name == "before" || name == "after") && !v.is_null() {
                    *v = Value::String(pseudonym(key, &v.to_string()));
                } else {
                    seal_values(v, key);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| seal_values(v, key)),
        _ => {}
    }
}

/// Replaces `value[field]` by its pseudonym, whatever it holds.
fn seal_field(value: &mut Value, field: &str, key: &[u8]) {
    if let Some(v) = value.get_mut(field).filter(|v| !v.is_null()) {
        let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        *v = Value::String(pseudonym(key, &text));
    }
}

/// A stored plan item and its plan, pseudonymised: the item's name (key), the call it made
/// (target), the vendor's receipt and every value before and after become keyed hashes, and
/// any other text naming the subject too. The plan still reads back (`dsr plan` works).
fn seal_plan(plan: &mut crate::ledger::PlanText, needles: &[String], key: &[u8]) {
    for field in ["key", "target", "before", "after"] {
        seal_field(&mut plan.item, field, key);
    }
    seal_field(&mut plan.state, "receipt", key);
    if let Some(remaining) = plan.verification.get_mut("remaining").and_then(Value::as_array_mut) {
        for k in remaining.iter_mut() {
            *k = Value::String(pseudonym(key, k.as_str().unwrap_or_default()));
        }
    }
    if let Some(after) = plan.verification.get_mut("after").and_then(Value::as_object_mut) {
        let sealed: serde_json::Map<String, Value> = after
            .iter()
            .map(|(k, v)| (pseudonym(key, k), Value::String(pseudonym(key, &v.to_string()))))
            .collect();
        *after = sealed;
    }
    for text in [&mut plan.item, &mut plan.state, &mut plan.body, &mut plan.verification] {
        scrub(text, needles, key);
    }
}

fn scrub_text(text: &mut Option<String>, needles: &[String], key: &[u8]) {
    if let Some(t) = text {
        let mut v = Value::String(std::mem::take(t));
        scrub(&mut v, needles, key);
        *t = v.as_str().unwrap_or_default().to_string();
    }
}

/// Pseudonymises finished requests past `[privacy] pseudonymise_after_days`.
pub async fn pseudonymise(engine: &Engine, now: DateTime<Utc>) -> Result<usize, EngineError> {
    let settings = engine.settings();
    let key = &settings.pseudonym_key;
    let ledger = engine.ledger();
    let due = ledger.pseudonymisation_due(now - settings.pseudonymise_after).await?;
    for id in &due {
        let request = ledger.get_request(id).await?;
        let ids = &request.identities;
        // Every form the identifiers are written in (percent-encoded, dot-free…), as
        // the text dsr kept before stored errors were scrubbed may hold any of them.
        let mut needles: Vec<String> = crate::redact::encodings(ids)
            .into_iter()
            .chain(request.changes.iter().map(|c| c.value.clone()))
            .map(|n| n.trim().to_lowercase())
            .filter(|n| n.len() >= 4)
            .collect();
        needles.sort();
        needles.dedup();
        let identities = json!({
            "pseudonyms": ids.emails.iter().map(|e| e.as_str().to_string())
                .chain(ids.phones.iter().map(|p| p.as_str().to_string()))
                .chain(ids.names.iter().cloned())
                .chain(ids.ga_client_ids.iter().cloned())
                .chain(ids.ga_user_ids.iter().cloned())
                .map(|v| pseudonym(key, &v))
                .collect::<Vec<_>>(),
        });
        let mut changes = serde_json::to_value(&request.changes).unwrap_or(Value::Array(vec![]));
        if let Value::Array(items) = &mut changes {
            for change in items {
                if let Some(value) = change.get_mut("value")
                    && let Some(text) = value.as_str()
                {
                    *value = Value::String(pseudonym(key, text));
                }
            }
        }
        let mut tasks = ledger.task_texts(id).await?;
        for task in &mut tasks {
            seal_values(&mut task.evidence, key);
            // The plan's items as the task's evidence lists them: named by keyed hashes.
            for (list, field) in [("items", "key"), ("refused", "item")] {
                if let Some(items) = task.evidence.get_mut(list).and_then(Value::as_array_mut) {
                    items.iter_mut().for_each(|i| seal_field(i, field, key));
                }
            }
            scrub(&mut task.evidence, &needles, key);
            scrub_text(&mut task.reason, &needles, key);
            scrub_text(&mut task.error, &needles, key);
        }
        let mut plans = ledger.plan_texts(id).await?;
        for plan in &mut plans {
            seal_plan(plan, &needles, key);
        }
        if ledger.pseudonymise(id, &identities, &changes, &tasks, &plans).await? {
            tracing::info!(request = %id, "identities replaced by keyed hashes");
        }
    }
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_case_blind() {
        let a = pseudonym(b"k1", "Kari.Nordmann@example.no");
        assert_eq!(a, pseudonym(b"k1", "kari.nordmann@example.no "));
        assert_ne!(a, pseudonym(b"k2", "kari.nordmann@example.no"));
        assert!(a.starts_with("pseudonym:") && !a.contains("kari"));
    }

    #[test]
    fn a_sealed_plan_names_nobody_and_still_reads_back() {
        let item = dsr_connector::PlanItem::new(
            "contacts kari.nordmann@example.no/c-1",
            "contacts",
            dsr_connector::Action::Patch,
            json!({"id": "c-1", "patch": {"surname": "Nordmann-Lie"}}),
            Value::Null,
            vec![dsr_connector::MatchClaim::email("/email")],
        )
        .before(json!({"family_name": "Nordmann"}))
        .after(json!({"family_name": "Nordmann-Lie"}));
        let verification = dsr_connector::Verification {
            remaining: vec!["contacts kari.nordmann@example.no/c-2".into()],
            after: [(item.key.clone(), json!({"family_name": "Nordmann-Lie"}))].into(),
        };
        let mut text = crate::ledger::PlanText {
            hash: "h".into(),
            seq: Some(0),
            item: serde_json::to_value(&item).unwrap(),
            state: json!({"state": "done", "receipt": {"surname": "Nordmann-Lie"}}),
            body: json!({"notes": ["Kari Nordmann's contact was renamed"]}),
            verification: serde_json::to_value(&verification).unwrap(),
        };
        let needles = vec!["kari.nordmann@example.no".to_string(), "kari nordmann".to_string()];
        seal_plan(&mut text, &needles, b"k");
        let all = format!("{}{}{}{}", text.item, text.state, text.body, text.verification).to_lowercase();
        assert!(!all.contains("nordmann"), "{all}");
        let back: dsr_connector::PlanItem = serde_json::from_value(text.item).unwrap();
        assert_eq!(back.category, "contacts", "still a plan item");
        let _: dsr_connector::ItemState = serde_json::from_value(text.state).unwrap();
        let _: dsr_connector::Verification = serde_json::from_value(text.verification).unwrap();
    }

    #[test]
    fn scrubbing_replaces_every_string_naming_the_subject_and_keeps_the_rest() {
        let mut evidence = json!({"evidence": [{"kind": "contact_changed", "detail": {
            "field": "familyName", "before": "Nordmann", "after": "Nordmann-Lie",
            "address": "KARI.NORDMANN@example.no", "count": 2}}], "notes": ["Wix keeps deleted contacts for 90 days."]});
        let needles = vec![
            "kari.nordmann@example.no".to_string(),
            "nordmann-lie".to_string(),
            "nordmann".to_string(),
        ];
        scrub(&mut evidence, &needles, b"k");
        let text = evidence.to_string().to_lowercase();
        assert!(!text.contains("nordmann"), "{text}");
        assert!(text.contains("familyname") && text.contains("90 days") && text.contains("\"count\":2"));
    }
}
