//! How Google rectifies (Art. 16): Workspace contacts only, since Analytics keys its data on
//! pseudonymous ids and offers no way to correct it. Each contact of the subject's is planned
//! as one `updateContact` naming in `updatePersonFields` the person fields it replaces (each
//! whole: "All fields specified in the update_mask will be replaced", so a corrected address or
//! number is sent with the list's other entries), with the etag and sources the contact was
//! read with. A stale etag is answered by reading the contact again (`people.get`) and
//! sending the same planned body with the fresh etag only while the contact still holds what
//! the plan read.
//! https://developers.google.com/people/api/rest/v1/people/updateContact,
//! https://developers.google.com/people/api/rest/v1/people/get

use dsr_connector::{
    Action, ConnectorError, FieldChange, Identities, ItemCall, ItemOutcome, Phone, Plan, PlanItem, RectifyField,
    correct_values,
};
use serde_json::{Map, Value, json};

use crate::Google;
use crate::client::{Call, PROCESSOR, PlannedUpdate, is_stale};
use crate::people::{CATEGORY, person_claims};
use crate::wire::{Address, EmailAddress, Person, PersonUpdate, PhoneNumber};

/// Why Analytics is not rectified: the subject's note, and the reason `capabilities` gives
/// without Workspace.
pub const NO_RECTIFICATION: &str = "Google Analytics holds a record of visits keyed by pseudonymous ids; it offers no way to correct it (erasure is available).";
const ALREADY: &str = "already as requested";
const NOTHING_SETTABLE: &str = "none of the fields asked for can be set on a Google contact (see the notes)";

/// The fields to change on one person (each replaced whole, as `updatePersonFields` does);
/// unsupported fields noted.
pub fn changes_for(person: &Person, changes: &[FieldChange], subject: &Identities) -> (PersonUpdate, Vec<String>) {
    let mut update = PersonUpdate::default();
    let mut notes = Vec::new();
    // Names and organizations: the first entry is corrected, its other fields kept.
    let mut name = person.names.first().cloned();
    let mut organization = person.organizations.first().cloned();
    for change in changes {
        let value = Some(change.value.clone());
        match change.field {
            RectifyField::GivenName => name.get_or_insert_with(Default::default).given_name = value,
            RectifyField::FamilyName => name.get_or_insert_with(Default::default).family_name = value,
            RectifyField::DisplayName => notes.push(
                "display_name: Google builds a contact's display name from its name fields; set given_name and family_name".into(),
            ),
            RectifyField::Company => organization.get_or_insert_with(Default::default).name = value,
            RectifyField::JobTitle => organization.get_or_insert_with(Default::default).title = value,
            // One rule for every processor: the entries that are the subject's are
            // corrected, the record's other entries stay (dsr_connector::correct_values).
            RectifyField::Email => {
                let hers = |e: &EmailAddress| {
                    e.value
                        .as_deref()
                        .is_some_and(|v| subject.owns_email(v) || v.trim().eq_ignore_ascii_case(change.value.trim()))
                };
                let corrected = |e: &EmailAddress| EmailAddress {
                    value: value.clone(),
                    ..e.clone()
                };
                let added = || EmailAddress {
                    value: value.clone(),
                    ..Default::default()
                };
                update.replace("emailAddresses", &correct_values(&person.email_addresses, hers, corrected, added));
            }
            RectifyField::Phone => {
                let hers = |p: &PhoneNumber| holds_her_phone(p, subject) || is_number(p, &change.value, subject);
                let corrected = |p: &PhoneNumber| PhoneNumber {
                    value: value.clone(),
                    canonical_form: None,
                    ..p.clone()
                };
                let added = || PhoneNumber {
                    value: value.clone(),
                    kind: Some("mobile".into()),
                    ..Default::default()
                };
                update.replace("phoneNumbers", &correct_values(&person.phone_numbers, hers, corrected, added));
            }
            RectifyField::Address => {
                let address = Address {
                    formatted_value: value,
                    kind: Some("home".into()),
                    ..Default::default()
                };
                update.replace("addresses", &[address]);
            }
        }
    }
    if let Some(name) = name.filter(|n| Some(n) != person.names.first()) {
        update.replace("names", &[name]);
    }
    if let Some(organization) = organization.filter(|o| Some(o) != person.organizations.first()) {
        update.replace("organizations", &[organization]);
    }
    (update, notes)
}

/// Whether `entry` holds one of the subject's numbers (by Google's canonical form where given).
fn holds_her_phone(entry: &PhoneNumber, subject: &Identities) -> bool {
    entry
        .canonical_form
        .as_deref()
        .or(entry.value.as_deref())
        .is_some_and(|v| subject.owns_phone(v))
}

/// Whether `entry` is the number `requested` (an international number in any region; a
/// national one in the subject's region when the request gives one; else by its digits).
fn is_number(entry: &PhoneNumber, requested: &str, subject: &Identities) -> bool {
    let Some(written) = entry.canonical_form.as_deref().or(entry.value.as_deref()) else {
        return false;
    };
    // The region only reads a national number; an international one is the same anywhere.
    let region = subject
        .phone_region
        .as_deref()
        .or(requested.trim_start().starts_with('+').then_some("US"));
    match region.and_then(|r| Phone::parse(requested, r).ok()) {
        Some(number) => number.matches_in(written, subject.phone_region.as_deref()),
        None => {
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            !digits(requested).is_empty() && digits(requested) == digits(written)
        }
    }
}

/// Whether `person` already holds what `change` asks for, so it needs no update.
fn already_set(person: &Person, change: &FieldChange, subject: &Identities) -> bool {
    let value = change.value.as_str();
    let name = person.names.first();
    let organization = person.organizations.first();
    match change.field {
        RectifyField::GivenName => name.and_then(|n| n.given_name.as_deref()) == Some(value),
        RectifyField::FamilyName => name.and_then(|n| n.family_name.as_deref()) == Some(value),
        // Not settable (Google builds it): a note, never an update.
        RectifyField::DisplayName => false,
        RectifyField::Company => organization.and_then(|o| o.name.as_deref()) == Some(value),
        RectifyField::JobTitle => organization.and_then(|o| o.title.as_deref()) == Some(value),
        RectifyField::Email => {
            let is_new = |v: &str| v.trim().eq_ignore_ascii_case(value.trim());
            let values = || person.email_addresses.iter().filter_map(|e| e.value.as_deref());
            values().any(is_new) && !values().any(|v| subject.owns_email(v) && !is_new(v))
        }
        RectifyField::Phone => {
            let is_new = |p: &PhoneNumber| is_number(p, value, subject);
            let old = |p: &PhoneNumber| holds_her_phone(p, subject) && !is_new(p);
            person.phone_numbers.iter().any(is_new) && !person.phone_numbers.iter().any(old)
        }
        RectifyField::Address => {
            person.addresses.len() == 1 && person.addresses[0].formatted_value.as_deref() == Some(value)
        }
    }
}

/// What `changes` still asks of `person`: those it does not hold already.
fn pending(person: &Person, changes: &[FieldChange], subject: &Identities) -> Vec<FieldChange> {
    changes
        .iter()
        .filter(|c| !already_set(person, c, subject))
        .cloned()
        .collect()
}

/// Whether `person` still lacks something `changes` asks for that can be set.
fn needs_update(person: &Person, changes: &[FieldChange], subject: &Identities) -> bool {
    !changes_for(person, &pending(person, changes, subject), subject)
        .0
        .mask()
        .is_empty()
}

/// The person field a rectifiable field is kept in.
fn person_field(field: RectifyField) -> &'static str {
    match field {
        RectifyField::GivenName | RectifyField::FamilyName | RectifyField::DisplayName => "names",
        RectifyField::Company | RectifyField::JobTitle => "organizations",
        RectifyField::Email => "emailAddresses",
        RectifyField::Phone => "phoneNumbers",
        RectifyField::Address => "addresses",
    }
}

/// The values of the person fields `names` on `person`, by Google's field names (`null` for
/// a field it does not hold).
fn values_of<'a>(person: &Person, names: impl IntoIterator<Item = &'a str>) -> Map<String, Value> {
    let all = person.fields();
    names
        .into_iter()
        .map(|name| (name.to_string(), all.get(name).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// The contact no longer holds what the plan read: the stored plan is not carried out, and the
/// operator plans again.
fn changed_since_plan(call: ItemCall<'_>, what: &str) -> ConnectorError {
    ConnectorError::permanent(
        PROCESSOR,
        "changed_since_plan",
        format!(
            "plan item `{}`: the contact changed since the plan was made (stale etag) and {what}, so the planned \
             change was not sent; run `dsr retry {} --processor {PROCESSOR}` to plan again",
            call.item.key, call.ctx.request_id,
        ),
    )
}

impl Google {
    /// One item per contact of the subject's in each mailbox: `Patch` with the fields'
    /// values before and after, or `Keep` with their current values when nothing differs.
    /// Also the notes on fields Google does not let dsr set, and on Analytics.
    pub async fn plan_rectification(
        &self,
        subject: &Identities,
        changes: &[FieldChange],
    ) -> Result<Plan, ConnectorError> {
        let (mut items, mut notes) = (Vec::new(), Vec::<String>::new());
        for mailbox in self.config.mailboxes() {
            for person in self.find_contacts(mailbox, subject).await? {
                let pending = pending(&person, changes, subject);
                let (update, skipped) = changes_for(&person, &pending, subject);
                for note in skipped {
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                let key = format!("{CATEGORY} {mailbox}/{}", person.resource_name);
                let claims = person_claims(&person, subject);
                let mask = update.mask();
                let item = if mask.is_empty() {
                    let reason = if pending.is_empty() { ALREADY } else { NOTHING_SETTABLE };
                    let current = values_of(&person, changes.iter().map(|c| person_field(c.field)));
                    PlanItem::new(key, CATEGORY, Action::Keep, Value::Null, json!(person), claims)
                        .before(Value::Object(current))
                        .reason(reason)
                } else {
                    let target = Call::UpdateContact(PlannedUpdate {
                        mailbox: mailbox.clone(),
                        resource_name: person.resource_name.clone(),
                        update_person_fields: mask.iter().map(|f| f.to_string()).collect(),
                        body: update.for_person(&person),
                    });
                    let before = values_of(&person, mask.iter().copied());
                    PlanItem::new(key, CATEGORY, Action::Patch, json!(target), json!(person), claims)
                        .before(Value::Object(before))
                        .after(Value::Object(update.fields()))
                };
                items.push(item);
            }
        }
        notes.push(NO_RECTIFICATION.into());
        Ok(Plan {
            items,
            notes,
            ..Default::default()
        })
    }

    /// `updateContact` of `resource_name`, replacing the person fields `fields` names.
    async fn send_update(
        &self,
        mailbox: &str,
        resource_name: &str,
        fields: &str,
        body: Value,
    ) -> Result<Person, ConnectorError> {
        let url = self.contact_url(resource_name, ":updateContact")?;
        let query = [("updatePersonFields", fields)];
        self.people(mailbox)
            .json(mailbox, |http| http.patch(&url).query(&query).json(&body))
            .await
    }

    /// `updateContact` with the body and etag the item was planned with. When Google refuses
    /// it because the contact changed since (a stale etag), the contact is read again:
    /// already as the item asks, done; still holding what the plan read (`before`) in every
    /// field the update replaces, and still hers, the same planned body once more with the
    /// fresh etag and source etags (only they differ); otherwise changed since the plan: an
    /// error naming `dsr retry`, nothing sent.
    pub(crate) async fn update_contact(
        &self,
        call: ItemCall<'_>,
        planned: PlannedUpdate,
    ) -> Result<ItemOutcome, ConnectorError> {
        let changes = match call.change {
            dsr_connector::Change::Rectification { changes } => changes.as_slice(),
            _ => &[],
        };
        let subject = call.subject;
        let PlannedUpdate {
            mailbox,
            resource_name,
            update_person_fields: mask,
            body,
        } = planned;
        let fields = mask.join(",");
        let send = |body: Value| self.send_update(&mailbox, &resource_name, &fields, body);
        let updated = match send(body.clone()).await {
            // Changed since it was read: read it again.
            Err(e) if is_stale(&e) => {
                let Some(fresh) = self.read_contact(&mailbox, &resource_name).await? else {
                    return Ok(ItemOutcome::AlreadyGone);
                };
                // Already so (someone made the same correction, or this item's call was made
                // once before and re-delivered): no second change.
                if !needs_update(&fresh, changes, subject) {
                    return Ok(ItemOutcome::Done(
                        json!({"resourceName": resource_name, "unchanged": true, "already_as_requested": true}),
                    ));
                }
                if person_claims(&fresh, subject).is_empty() {
                    return Err(changed_since_plan(
                        call,
                        "no longer holds the subject's address or number",
                    ));
                }
                let now = values_of(&fresh, mask.iter().map(String::as_str));
                if call.item.before.as_ref().and_then(Value::as_object) != Some(&now) {
                    return Err(changed_since_plan(call, "the fields it corrects were changed"));
                }
                // The planned body; only the versions it carries are the fresh contact's.
                // (`metadata.sources[].etag` is a version too: updateContact refuses a stale one.)
                let mut body = body;
                if let Some(fields) = body.as_object_mut() {
                    fields.insert("etag".into(), json!(fresh.etag));
                    match &fresh.metadata {
                        Some(metadata) => fields.insert("metadata".into(), metadata.clone()),
                        None => fields.remove("metadata"),
                    };
                }
                send(body).await?
            }
            other => other?,
        };
        let after = values_of(&updated, mask.iter().map(String::as_str));
        Ok(ItemOutcome::Done(
            json!({"resourceName": resource_name, "etag": updated.etag, "fields": after}),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_connector::{Email, decode};

    fn person(fields: Value) -> Person {
        let mut body = json!({"resourceName": "people/c1", "etag": "%E1"});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        decode(body).unwrap()
    }

    #[test]
    fn only_the_named_fields_change() {
        let person = person(json!({"names": [{"givenName": "Kari", "familyName": "Nordmann"}],
            "organizations": [{"name": "A", "title": "B"}]}));
        let changes = vec![FieldChange {
            field: RectifyField::FamilyName,
            value: "Hansen".into(),
        }];
        let (update, _) = changes_for(&person, &changes, &Identities::default());
        assert_eq!(update.mask(), ["names"]);
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({"names": [{"givenName": "Kari", "familyName": "Hansen"}]})
        );
    }

    #[test]
    fn addresses_and_phones_are_replaced_keeping_the_other_entries() {
        let person = person(json!({
            "emailAddresses": [{"value": "kari@example.no", "type": "home"}, {"value": "kari@jobb.no", "type": "work"}],
            "phoneNumbers": [{"value": "22 33 44 55", "type": "work"}, {"value": "912 34 567", "type": "mobile"}]}));
        let subject = Identities {
            emails: vec![Email::parse("kari@example.no").unwrap()],
            phones: vec![Phone::parse("912 34 567", "NO").unwrap()],
            ..Default::default()
        };
        let changes = [
            FieldChange {
                field: RectifyField::Email,
                value: "kari.hansen@example.no".into(),
            },
            FieldChange {
                field: RectifyField::Phone,
                value: "+47 987 65 432".into(),
            },
        ];
        let (update, _) = changes_for(&person, &changes, &subject);
        assert_eq!(update.mask(), ["emailAddresses", "phoneNumbers"]);
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({
                "emailAddresses": [{"value": "kari.hansen@example.no", "type": "home"}, {"value": "kari@jobb.no", "type": "work"}],
                "phoneNumbers": [{"value": "22 33 44 55", "type": "work"}, {"value": "+47 987 65 432", "type": "mobile"}]}),
            "her number is replaced in place; the office number stays"
        );
    }
}
