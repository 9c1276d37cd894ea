//! Correcting the subject's contact entries (Art. 16), with before and after per field.

use dsr_connector::{ChangeReport, ConnectorError, Evidence, FieldChange, Identities, RectifyField, TaskContext};
use serde_json::{Value, json};

use crate::Microsoft365;
use crate::access::FoundContact;
use crate::client::needs_permission;
use crate::wire::{Change, Contact, ContactPatch, EmailAddress};

/// The PATCH body for one contact, and the fields it leaves alone with why.
fn patch_for(contact: &Contact, changes: &[FieldChange], subject: &Identities) -> (ContactPatch, Vec<String>) {
    let mut patch = ContactPatch::default();
    let mut skipped = Vec::new();
    for change in changes {
        let value = Some(change.value.clone());
        match change.field {
            RectifyField::GivenName => patch.given_name = value,
            RectifyField::FamilyName => patch.surname = value,
            RectifyField::DisplayName => patch.display_name = value,
            RectifyField::Company => patch.company_name = value,
            RectifyField::JobTitle => patch.job_title = value,
            RectifyField::Phone => patch.mobile_phone = value,
            RectifyField::Email => {
                // emailAddresses is replaced whole: swap the old address, keep the others.
                let entries = contact
                    .email_addresses
                    .iter()
                    .map(|entry| EmailAddress {
                        address: match &entry.address {
                            Some(a) if subject.emails.iter().any(|e| e.matches(a)) => Some(change.value.clone()),
                            other => other.clone(),
                        },
                        ..entry.clone()
                    })
                    .collect();
                patch.email_addresses = Some(entries);
            }
            RectifyField::Address => skipped.push(
                "address: Graph keeps contact addresses as structured fields (street, city, postal code); correct them in Outlook".into(),
            ),
        }
    }
    (patch, skipped)
}

/// Before and after per property the patch sets.
fn field_changes(changes: Vec<Change>) -> Vec<Value> {
    changes
        .into_iter()
        .map(|(field, before, after)| json!({"field": field, "before": before, "after": after}))
        .collect()
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
            for FoundContact { contact, .. } in contacts {
                found += 1;
                let (patch, skipped) = patch_for(&contact, changes, subject);
                for s in skipped {
                    if !notes.contains(&s) {
                        notes.push(s);
                    }
                }
                let planned = patch.planned(&contact);
                if planned.is_empty() || ctx.dry_run {
                    evidence.push(Evidence {
                        kind: "contact_would_change".into(),
                        detail: json!({"mailbox": mailbox.address, "id": contact.id, "fields": field_changes(planned)}),
                    });
                    continue;
                }
                let url = self.graph.url(&["users", &mailbox.key, "contacts", &contact.id], &[]);
                let updated: Contact = self
                    .graph
                    .client
                    .json(&mailbox.key, |http| http.patch(url.clone()).json(&patch))
                    .await
                    .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "update contacts"))?;
                let fields = field_changes(patch.applied(&contact, &updated));
                changed += 1;
                evidence.push(Evidence {
                    kind: "contact_changed".into(),
                    detail: json!({"mailbox": mailbox.address, "id": contact.id, "fields": fields}),
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
        let contact: Contact = dsr_connector::decode(json!({"id": "c", "givenName": "Kari", "surname": "Nordmann",
            "emailAddresses": [{"name": "Kari", "address": "KARI@example.no"}, {"name": "Jobb", "address": "kari@jobb.no"}]}))
        .unwrap();
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
        let (patch, skipped) = patch_for(&contact, &changes, &old);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!({"surname": "Hansen", "emailAddresses": [
                {"name": "Kari", "address": "kari.hansen@example.no"}, {"name": "Jobb", "address": "kari@jobb.no"}]})
        );
        assert_eq!(skipped.len(), 1);
        let fields = field_changes(patch.planned(&contact));
        assert_eq!(fields.len(), 2);
        assert!(fields.contains(&json!({"field": "surname", "before": "Nordmann", "after": "Hansen"})));
    }
}
