//! Correcting the subject's contact entries (Art. 16), with before and after per field.

use dsr_connector::{
    ChangeReport, ConnectorError, Evidence, FieldChange, Identities, RectifyField, TaskContext, correct_values,
};
use serde_json::{Value, json};

use crate::Microsoft365;
use crate::client::needs_permission;
use crate::reach::Reach;
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
            // One rule for every processor: the values that are the subject's are corrected
            // wherever they are, the contact's other values stay (dsr_connector::correct_values).
            RectifyField::Phone => {
                let hers = |p: &String| subject.owns_phone(p);
                let mut found = false;
                if contact.mobile_phone.as_ref().is_some_and(hers) {
                    patch.mobile_phone = value.clone();
                    found = true;
                }
                for (list, target) in [
                    (&contact.business_phones, &mut patch.business_phones),
                    (&contact.home_phones, &mut patch.home_phones),
                ] {
                    if list.iter().any(hers) {
                        *target = Some(correct_values(list, hers, |_| change.value.clone(), || change.value.clone()));
                        found = true;
                    }
                }
                if !found {
                    patch.mobile_phone = value;
                }
            }
            RectifyField::Email => {
                let entries = correct_values(
                    &contact.email_addresses,
                    |entry| entry.address.as_deref().is_some_and(|a| subject.owns_email(a)),
                    |entry| EmailAddress {
                        address: Some(change.value.clone()),
                        ..entry.clone()
                    },
                    || EmailAddress {
                        address: Some(change.value.clone()),
                        ..Default::default()
                    },
                );
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
        let mut reach = Reach::new(self.config.all_mailboxes());
        for mailbox in self.mailboxes().await? {
            let first = self.find_contacts(&mailbox, subject).await;
            let Some(contacts) = reach.admit(&mailbox, first)? else {
                continue;
            };
            for found_contact in contacts {
                let contact = &found_contact.contact;
                let claims = crate::access::contact_claims(contact, subject);
                if !ctx.permit(subject, &format!("contact {}", contact.id), &json!(contact), &claims) {
                    continue;
                }
                found += 1;
                let (patch, skipped) = patch_for(contact, changes, subject);
                for s in skipped {
                    if !notes.contains(&s) {
                        notes.push(s);
                    }
                }
                let planned = patch.planned(contact);
                if planned.is_empty() || ctx.dry_run {
                    evidence.push(Evidence {
                        kind: "contact_would_change".into(),
                        detail: json!({"mailbox": mailbox.address, "id": contact.id, "fields": field_changes(planned)}),
                    });
                    continue;
                }
                let url = self.graph.url(&found_contact.segments(), &[]);
                let updated: Contact = self
                    .graph
                    .client
                    .json(&mailbox.key, |http| http.patch(url.clone()).json(&patch))
                    .await
                    .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "update contacts"))?;
                let fields = field_changes(patch.applied(contact, &updated));
                changed += 1;
                evidence.push(Evidence {
                    kind: "contact_changed".into(),
                    detail: json!({"mailbox": mailbox.address, "id": contact.id, "fields": fields}),
                });
            }
        }
        reach.finish()?;
        notes.extend(reach.subject_note());
        notes.push(crate::access::NO_ARCHIVE.into());
        Ok(ChangeReport {
            found,
            changed,
            retained: vec![],
            evidence,
            notes,
            operator_notes: reach.operator_notes(),
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
