//! Correcting the subject's contact entries (Art. 16), with before and after per field.

use dsr_connector::{ChangeReport, ConnectorError, Evidence, FieldChange, Identities, RectifyField, TaskContext};
use serde_json::{Map, Value, json};

use crate::Microsoft365;
use crate::access::FoundContact;
use crate::client::needs_permission;

/// The PATCH body for one contact, and the fields it leaves alone with why.
fn patch_for(contact: &Value, changes: &[FieldChange], subject: &Identities) -> (Map<String, Value>, Vec<String>) {
    let mut body = Map::new();
    let mut skipped = Vec::new();
    for change in changes {
        let value = json!(change.value);
        match change.field {
            RectifyField::GivenName => { body.insert("givenName".into(), value); }
            RectifyField::FamilyName => { body.insert("surname".into(), value); }
            RectifyField::DisplayName => { body.insert("displayName".into(), value); }
            RectifyField::Company => { body.insert("companyName".into(), value); }
            RectifyField::JobTitle => { body.insert("jobTitle".into(), value); }
            RectifyField::Phone => { body.insert("mobilePhone".into(), value); }
            RectifyField::Email => {
                // emailAddresses is replaced whole: swap the old address, keep the others.
                let entries = subject.replace_address(&contact["emailAddresses"], "address", &change.value);
                body.insert("emailAddresses".into(), Value::Array(entries));
            }
            RectifyField::Address => skipped.push(
                "address: Graph keeps contact addresses as structured fields (street, city, postal code); correct them in Outlook".into(),
            ),
        }
    }
    (body, skipped)
}

impl Microsoft365 {
    pub async fn rectify_subject(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        changes: &[FieldChange],
    ) -> Result<ChangeReport, ConnectorError> {
        let mut found = 0;
        let mut changed = 0;
        let mut evidence = Vec::new();
        let mut notes = vec![
            "Mail is a record of what was written and is not rewritten; only contact entries are corrected."
                .to_string(),
        ];
        for mailbox in self.mailboxes().await? {
            let contacts: Vec<FoundContact> = self.find_contacts(&mailbox, subject).await?;
            for contact in contacts {
                found += 1;
                let (body, skipped) = patch_for(&contact.json, changes, subject);
                for s in skipped {
                    if !notes.contains(&s) {
                        notes.push(s);
                    }
                }
                let fields: Vec<Value> = body
                    .iter()
                    .map(|(k, after)| json!({"field": k, "before": contact.json[k], "after": after}))
                    .collect();
                if body.is_empty() || ctx.dry_run {
                    evidence.push(Evidence {
                        kind: "contact_would_change".into(),
                        detail: json!({"mailbox": mailbox.address, "id": contact.id(), "fields": fields}),
                    });
                    continue;
                }
                let url = self.graph.url(&["users", &mailbox.key, "contacts", contact.id()], &[]);
                let payload = Value::Object(body);
                let updated: Value = self
                    .graph
                    .client
                    .json(&mailbox.key, |http| http.patch(url.clone()).json(&payload))
                    .await
                    .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "update contacts"))?;
                let fields: Vec<Value> = payload
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| json!({"field": k, "before": contact.json[k], "after": updated[k]}))
                    .collect();
                changed += 1;
                evidence.push(Evidence {
                    kind: "contact_changed".into(),
                    detail: json!({"mailbox": mailbox.address, "id": contact.id(), "fields": fields}),
                });
            }
        }
        Ok(ChangeReport {
            found,
            changed,
            retained: vec![],
            evidence,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_fields_are_patched_and_other_addresses_kept() {
        let contact = json!({"givenName": "Kari", "emailAddresses": [
            {"name": "Kari", "address": "KARI@example.no"}, {"name": "Jobb", "address": "kari@jobb.no"}]});
        let old = Identities {
            emails: vec![dsr_connector::Email::parse("kari@example.no").unwrap()],
            ..Default::default()
        };
        let changes = vec![
            FieldChange {
                field: RectifyField::FamilyName,
                value: "Hansen".into(),
            },
            FieldChange {
                field: RectifyField::Email,
                value: "kari.hansen@example.no".into(),
            },
            FieldChange {
                field: RectifyField::Address,
                value: "Storgata 1".into(),
            },
        ];
        let (body, skipped) = patch_for(&contact, &changes, &old);
        assert_eq!(body.len(), 2, "{body:?}");
        assert_eq!(body["surname"], "Hansen");
        assert_eq!(body["emailAddresses"][0]["address"], "kari.hansen@example.no");
        assert_eq!(body["emailAddresses"][1]["address"], "kari@jobb.no");
        assert!(!body.contains_key("givenName"));
        assert_eq!(skipped.len(), 1);
    }
}
