//! Correcting the subject's persons (Art. 16) with JSON-Patch, before and after recorded.

use dsr_connector::{
    ChangeReport, ConnectorError, Evidence, FieldChange, Identities, RectifyField, TaskContext, correct_values,
};
use serde_json::{Value, json};

use crate::SuperOffice;

/// An `Emails`/`MobilePhones` entry with a new value (SuperOffice derives `StrippedValue`).
fn with_value(entry: &Value, value: &str) -> Value {
    let mut entry = entry.clone();
    entry["Value"] = json!(value);
    if let Some(fields) = entry.as_object_mut() {
        fields.remove("StrippedValue");
    }
    entry
}

/// JSON-Patch operations for one person, and the fields left alone with why.
pub fn patch_for(person: &Value, changes: &[FieldChange], subject: &Identities) -> (Vec<Value>, Vec<String>) {
    let mut ops = Vec::new();
    let mut notes = Vec::new();
    let replace = |path: &str, value: Value| json!({"op": "replace", "path": path, "value": value});
    for change in changes {
        match change.field {
            RectifyField::GivenName => ops.push(replace("/Firstname", json!(change.value))),
            RectifyField::FamilyName => ops.push(replace("/Lastname", json!(change.value))),
            RectifyField::JobTitle => ops.push(replace("/Title", json!(change.value))),
            // One rule for every processor: the entries that are the subject's are corrected,
            // the person's other entries stay (dsr_connector::correct_values). A list in a
            // JSON Patch replaces the whole list, so every entry is sent.
            RectifyField::Email => {
                let entries: Vec<Value> = person["Emails"].as_array().cloned().unwrap_or_default();
                let emails = correct_values(
                    &entries,
                    |e| e["Value"].as_str().is_some_and(|v| subject.owns_email(v)),
                    |e| with_value(e, &change.value),
                    || json!({"Value": change.value}),
                );
                ops.push(replace("/Emails", Value::Array(emails)));
            }
            RectifyField::Phone => {
                let entries: Vec<Value> = person["MobilePhones"].as_array().cloned().unwrap_or_default();
                let phones = correct_values(
                    &entries,
                    |p| p["Value"].as_str().is_some_and(|v| subject.owns_phone(v)),
                    |p| with_value(p, &change.value),
                    || json!({"Value": change.value, "Description": "Mobil"}),
                );
                ops.push(replace("/MobilePhones", Value::Array(phones)));
            }
            RectifyField::DisplayName => {
                notes.push("display_name: SuperOffice shows a person by first and last name; set given_name and family_name".into())
            }
            RectifyField::Company => notes.push(
                "company: in SuperOffice a person belongs to a company (contact) record; moving the person is a manual step".into(),
            ),
            RectifyField::Address => notes.push(
                "address: SuperOffice keeps addresses as structured fields (street, postal code, city); correct them in SuperOffice".into(),
            ),
        }
    }
    (ops, notes)
}

impl SuperOffice {
    pub async fn rectify_subject(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        changes: &[FieldChange],
    ) -> Result<ChangeReport, ConnectorError> {
        let mut report = ChangeReport::default();
        for person in self.own_persons(ctx, subject).await? {
            let id = person.entity.person_id;
            report.found += 1;
            let person = person.raw;
            let (ops, notes) = patch_for(&person, changes, subject);
            for n in notes {
                if !report.notes.contains(&n) {
                    report.notes.push(n);
                }
            }
            if ops.is_empty() || ctx.dry_run {
                report.evidence.push(Evidence {
                    kind: "person_would_change".into(),
                    detail: json!({"person": id, "patch": ops}),
                });
                continue;
            }
            let patch = Value::Array(ops.clone());
            let updated: Value = self
                .tenant
                .json(&format!("Person/{id}"), &[], |http, url| http.patch(url).json(&patch))
                .await?;
            let fields: Vec<Value> = ops
                .iter()
                .filter_map(|op| op["path"].as_str())
                .map(|path| {
                    let field = path.trim_start_matches('/');
                    json!({"field": field, "before": person[field], "after": updated[field]})
                })
                .collect();
            report.changed += 1;
            report.evidence.push(Evidence {
                kind: "person_changed".into(),
                detail: json!({"person": id, "fields": fields}),
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::Email;

    #[test]
    fn emails_keep_the_addresses_not_being_corrected() {
        let person = json!({"Emails": [{"Value": "KARI.NORDMANN@example.no", "Description": "Jobb"}, {"Value": "kari@privat.example", "Description": "Privat"}]});
        let subject = Identities {
            emails: vec![Email::parse("kari.nordmann@example.no").unwrap()],
            ..Default::default()
        };
        let changes = vec![FieldChange {
            field: RectifyField::Email,
            value: "kari.hansen@example.no".into(),
        }];
        let (ops, _) = patch_for(&person, &changes, &subject);
        assert_eq!(ops[0]["path"], "/Emails");
        assert_eq!(ops[0]["value"][0]["Value"], "kari.hansen@example.no");
        assert_eq!(ops[0]["value"][1]["Value"], "kari@privat.example");
    }
}
