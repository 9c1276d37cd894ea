//! Correcting the subject's contact entries (Art. 16): one item per contact found, with
//! before and after per property, each item one PATCH, sent only while the contact still
//! holds what the plan read (read again first; otherwise the operator plans again).
//! - https://learn.microsoft.com/en-us/graph/api/contact-update

use dsr_connector::{
    Action, ConnectorError, FieldChange, Identities, ItemCall, ItemOutcome, Plan, PlanItem, RectifyField,
    correct_values,
};
use serde_json::{Map, Value, json};

use crate::Microsoft365;
use crate::client::{PROCESSOR, needs_permission};
use crate::erase::{contact_key, contact_target};
use crate::reach::Reach;
use crate::search::{FoundContact, NO_ARCHIVE, contact_claims, contact_filter, contacts_segments};
use crate::target::{CONTACTS, Target};
use crate::wire::{Contact, ContactPatch, EmailAddress, PropertyChange, properties};

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
                // Not hers anywhere: the number goes in as the mobile number, unless a plan
                // made after the change finds it already in one of the lists.
                if !found {
                    if contact.business_phones.contains(&change.value) {
                        patch.business_phones = Some(contact.business_phones.clone());
                    } else if contact.home_phones.contains(&change.value) {
                        patch.home_phones = Some(contact.home_phones.clone());
                    } else {
                        patch.mobile_phone = value;
                    }
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
fn field_changes(changes: Vec<PropertyChange>) -> Vec<Value> {
    changes
        .into_iter()
        .map(|(field, before, after)| json!({"field": field, "before": before, "after": after}))
        .collect()
}

const MAIL_NOT_REWRITTEN: &str =
    "Mail is a record of what was written and is not rewritten; only contact entries are corrected.";

/// Why a contact is left as it is.
pub const ALREADY_AS_REQUESTED: &str = "already as requested";
const NOTHING_TO_SET: &str = "none of the fields asked for can be set on a contact through Graph";

/// One contact's item: `Patch` with the properties' values before and after, or `Keep` with
/// their values now when nothing would change.
fn patch_item(
    found: &FoundContact,
    changes: &[FieldChange],
    subject: &Identities,
    notes: &mut Vec<String>,
) -> PlanItem {
    let contact = &found.contact;
    let (patch, skipped) = patch_for(contact, changes, subject);
    for s in skipped {
        if !notes.contains(&s) {
            notes.push(s);
        }
    }
    let planned = patch.planned(contact);
    let due = planned.iter().any(|(_, before, after)| before != after);
    let before: Map<String, Value> = planned.iter().map(|(f, b, _)| (f.clone(), b.clone())).collect();
    let after: Map<String, Value> = planned.iter().map(|(f, _, a)| (f.clone(), a.clone())).collect();
    let target = Target {
        patch: Some(patch.body()),
        ..contact_target(found)
    };
    let action = if due { Action::Patch } else { Action::Keep };
    let item = PlanItem::new(
        contact_key(found),
        CONTACTS,
        action,
        target.json(),
        json!(contact),
        contact_claims(contact, subject),
    )
    .before(Value::Object(before));
    match (due, planned.is_empty()) {
        (true, _) => item.after(Value::Object(after)),
        (false, false) => item.reason(ALREADY_AS_REQUESTED),
        (false, true) => item.reason(NOTHING_TO_SET),
    }
}

impl Microsoft365 {
    /// Every contact the `$filter`s return, in every folder of every mailbox, as an item.
    pub async fn plan_rectification(
        &self,
        subject: &Identities,
        changes: &[FieldChange],
    ) -> Result<Plan, ConnectorError> {
        let mut plan = Plan {
            notes: vec![MAIL_NOT_REWRITTEN.to_string()],
            ..Default::default()
        };
        let mut reach = Reach::new(self.config.all_mailboxes());
        for mailbox in self.mailboxes().await? {
            let first = self.search_contacts(&mailbox, subject).await;
            let Some(contacts) = reach.admit(&mailbox, first)? else {
                continue;
            };
            for found in &contacts {
                let item = patch_item(found, changes, subject, &mut plan.notes);
                plan.items.push(item);
            }
        }
        reach.finish()?;
        plan.notes.extend(reach.subject_note());
        plan.notes.push(NO_ARCHIVE.into());
        plan.operator_notes = reach.operator_notes();
        Ok(plan)
    }

    /// The contact `target` names as Graph holds it now, read from the folder it was planned
    /// in (the fake Graph, like dsr's other reads, lists; it serves no single contact): first
    /// by each of the subject's addresses, then, when it no longer holds one, the whole
    /// folder. `None` when it is not there (deleted, or moved to another folder).
    async fn contact_now(&self, target: &Target, subject: &Identities) -> Result<Option<Contact>, ConnectorError> {
        let segments = contacts_segments(&target.mailbox, target.folder.as_deref());
        let top = self.graph.page_size.to_string();
        let mut queries: Vec<Vec<(&str, String)>> = subject
            .emails
            .iter()
            .map(|email| vec![("$filter", contact_filter(email.as_str())), ("$top", top.clone())])
            .collect();
        queries.push(vec![("$top", top.clone())]);
        for query in queries {
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let url = self.graph.url(&segments, &query)?;
            let contacts: Vec<Contact> = match self.graph.all(&target.mailbox, url).await {
                Ok(contacts) => contacts,
                // The folder itself is gone.
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(needs_permission(e, "Contacts.ReadWrite", "read contacts")),
            };
            if let Some(contact) = contacts.into_iter().find(|c| c.id == target.id) {
                return Ok(Some(contact));
            }
        }
        Ok(None)
    }

    /// Sends one planned PATCH, after reading the contact again: a list in the body replaces
    /// the contact's whole list, so the plan's body is sent only while the properties it sets
    /// still hold what the plan read (`before`). Already as the item asks: done, nothing sent.
    /// Otherwise changed since the plan (an address added, a field edited, the contact moved
    /// or deleted): an error naming `dsr retry`, nothing sent. The receipt has each property
    /// before and as Graph answered.
    pub async fn execute_patch(
        &self,
        call: ItemCall<'_>,
        changes: &[FieldChange],
    ) -> Result<ItemOutcome, ConnectorError> {
        let item = call.item;
        let target = Target::of(item, Action::Patch)?;
        let Some(body) = &target.patch else {
            return Err(ConnectorError::foreign_item(PROCESSOR, item, "no PATCH body"));
        };
        let before = item.before.as_ref().and_then(Value::as_object);
        let Some(contact) = self.contact_now(&target, call.subject).await? else {
            return Err(ConnectorError::changed_since_plan(
                PROCESSOR,
                call,
                "the contact has left the folder it was planned in (deleted or moved)",
            ));
        };
        let current = properties(&contact);
        let now: Map<String, Value> = body
            .keys()
            .map(|field| (field.clone(), current.get(field).cloned().unwrap_or(Value::Null)))
            .collect();
        if item.after.as_ref().and_then(Value::as_object) == Some(&now) {
            let fields = body
                .keys()
                .map(|field| {
                    let was = before.and_then(|b| b.get(field)).cloned().unwrap_or(Value::Null);
                    (field.clone(), was, now[field].clone())
                })
                .collect();
            return Ok(ItemOutcome::Done(
                json!({"id": target.id, "fields": field_changes(fields), "already_as_requested": true}),
            ));
        }
        if before != Some(&now) {
            return Err(ConnectorError::changed_since_plan(
                PROCESSOR,
                call,
                "the properties it corrects were changed in Outlook",
            ));
        }
        // The same values, yet the plan would now correct other properties (her number
        // added to a list meanwhile): the planned body is not what the contact calls for.
        if &patch_for(&contact, changes, call.subject).0.body() != body {
            return Err(ConnectorError::changed_since_plan(
                PROCESSOR,
                call,
                "the contact was changed in Outlook",
            ));
        }
        let url = self.graph.url(&target.segments(item)?, &[])?;
        let updated: Contact = self
            .graph
            .client
            .json(&target.mailbox, |http| http.patch(url.clone()).json(body))
            .await
            .map_err(|e| needs_permission(e, "Contacts.ReadWrite", "update contacts"))?;
        let now = properties(&updated);
        let applied = body
            .keys()
            .map(|field| {
                let was = before.and_then(|b| b.get(field)).cloned().unwrap_or(Value::Null);
                let is = now.get(field).cloned().unwrap_or(Value::Null);
                (field.clone(), was, is)
            })
            .collect();
        Ok(ItemOutcome::Done(
            json!({"id": target.id, "fields": field_changes(applied)}),
        ))
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
            Value::Object(patch.body()),
            json!({"surname": "Hansen", "emailAddresses": [
                {"name": "Kari", "address": "kari.hansen@example.no"}, {"name": "Jobb", "address": "kari@jobb.no"}]})
        );
        assert_eq!(skipped.len(), 1);
        let fields = field_changes(patch.planned(&contact));
        assert_eq!(fields.len(), 2);
        assert!(fields.contains(&json!({"field": "surname", "before": "Nordmann", "after": "Hansen"})));
    }

    #[test]
    fn a_corrected_number_is_already_as_requested_when_planned_again() {
        let kari = Identities {
            emails: vec![dsr_connector::Email::parse("kari@example.no").unwrap()],
            phones: vec![dsr_connector::Phone::parse("912 34 567", "NO").unwrap()],
            ..Default::default()
        };
        let changes = vec![FieldChange {
            field: RectifyField::Phone,
            value: "+47 400 00 000".into(),
        }];
        let contact: Contact = dsr_connector::decode(json!({"id": "c", "mobilePhone": null,
            "businessPhones": ["+47 912 34 567", "+47 22 00 00 00"], "emailAddresses": [{"address": "kari@example.no"}]}))
        .unwrap();
        let (patch, _) = patch_for(&contact, &changes, &kari);
        assert_eq!(
            Value::Object(patch.body()),
            json!({"businessPhones": ["+47 400 00 000", "+47 22 00 00 00"]})
        );
        let corrected = Contact {
            business_phones: patch.business_phones.clone().unwrap(),
            ..contact
        };
        let (again, _) = patch_for(&corrected, &changes, &kari);
        let planned = again.planned(&corrected);
        assert!(!planned.is_empty());
        assert!(planned.iter().all(|(_, before, after)| before == after), "{planned:?}");
    }
}
