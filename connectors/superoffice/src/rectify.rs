//! Correcting the subject's persons (Art. 16) with JSON-Patch: one item per person, its
//! fields before and as asked. Executed only while the person still holds the fields as
//! planned (read again first): otherwise the operator plans again.
//! https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_PatchPersonEntity.html

use dsr_connector::{
    Action, ConnectorError, Email, FieldChange, Identities, ItemCall, ItemOutcome, Phone, Plan, PlanItem, RectifyField,
    correct_values,
};
use serde_json::{Map, Value, json};

use crate::SuperOffice;
use crate::target::{Target, changed_since_plan, odd_target};

/// An `Emails`/`MobilePhones` entry with a new value (SuperOffice derives `StrippedValue`).
fn with_value(entry: &Value, value: &str) -> Value {
    let mut entry = entry.clone();
    entry["Value"] = json!(value);
    if let Some(fields) = entry.as_object_mut() {
        fields.remove("StrippedValue");
    }
    entry
}

fn digits(value: &str) -> String {
    value.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect()
}

/// Whether an entry already holds the value asked for.
fn holds(entry: &Value, field: RectifyField, wanted: &str, subject: &Identities) -> bool {
    let Some(value) = entry["Value"].as_str() else {
        return false;
    };
    match field {
        RectifyField::Email => match Email::parse(wanted) {
            Ok(email) => email.matches(value),
            Err(_) => value.trim() == wanted.trim(),
        },
        _ => {
            let region = subject.phone_region.as_deref();
            digits(value) == digits(wanted)
                || region
                    .and_then(|r| Phone::parse(wanted, r).ok())
                    .is_some_and(|p| p.matches_in(value, region))
        }
    }
}

/// The person's list `list` (`Emails`, `MobilePhones`) corrected by the one rule for every
/// processor: the entries that are the subject's are corrected, the person's other entries
/// stay (dsr_connector::correct_values), and `added` is added when none was hers. A list in a
/// JSON Patch replaces the whole list, so every entry is sent. A list that holds none of hers
/// but already the value asked for is left as it is (corrected before).
fn corrected_list(
    person: &Value,
    list: &str,
    change: &FieldChange,
    subject: &Identities,
    is_hers: impl Fn(&str) -> bool,
    added: Value,
) -> Value {
    let entries = person[list].as_array().map(Vec::as_slice).unwrap_or_default();
    let wanted = change.value.as_str();
    let hers = |e: &Value| e["Value"].as_str().is_some_and(&is_hers);
    if !entries.iter().any(hers) && entries.iter().any(|e| holds(e, change.field, wanted, subject)) {
        return Value::Array(entries.to_vec());
    }
    Value::Array(correct_values(entries, hers, |e| with_value(e, wanted), || added))
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
            RectifyField::Email => {
                let added = json!({"Value": change.value});
                let emails = corrected_list(person, "Emails", change, subject, |v| subject.owns_email(v), added);
                ops.push(replace("/Emails", emails));
            }
            RectifyField::Phone => {
                let added = json!({"Value": change.value, "Description": "Mobil"});
                let mobiles = corrected_list(person, "MobilePhones", change, subject, |v| subject.owns_phone(v), added);
                ops.push(replace("/MobilePhones", mobiles));
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

/// A field as before and after show it: a list by its values, anything else as it is.
fn shown(value: &Value) -> Value {
    match value {
        Value::Array(entries) => Value::Array(entries.iter().map(|e| e["Value"].clone()).collect()),
        other => other.clone(),
    }
}

/// The fields `ops` set, as `entity` holds them (`before`) and as `ops` set them (`after`).
fn fields(entity: &Value, ops: &[Value]) -> (Value, Value) {
    let mut before = Map::new();
    let mut after = Map::new();
    for op in ops {
        let Some(field) = op["path"].as_str().map(|p| p.trim_start_matches('/')) else {
            continue;
        };
        before.insert(field.into(), shown(&entity[field]));
        after.insert(field.into(), shown(&op["value"]));
    }
    (Value::Object(before), Value::Object(after))
}

impl SuperOffice {
    /// One item per person the search returned: `Patch` with the fields before and as asked,
    /// or `Keep` when they already are. A person holding none of her addresses is listed
    /// without its values (the engine refuses it).
    pub async fn plan_rectification(&self, subject: &Identities, fix: &[FieldChange]) -> Result<Plan, ConnectorError> {
        let persons = self.found_persons(subject).await?;
        let mut plan = Plan::default();
        for person in persons {
            let id = person.entity.person_id;
            let key = format!("persons {id}");
            let claims = person.claims(subject);
            if claims.is_empty() {
                let target = Target::PatchPerson {
                    person: id,
                    patch: Vec::new(),
                };
                plan.items.push(PlanItem::new(
                    key,
                    "persons",
                    Action::Patch,
                    target.json(),
                    person.raw,
                    claims,
                ));
                continue;
            }
            let (ops, notes) = patch_for(&person.raw, fix, subject);
            for n in notes {
                if !plan.notes.contains(&n) {
                    plan.notes.push(n);
                }
            }
            let (before, after) = fields(&person.raw, &ops);
            let item = if before == after {
                let why = if ops.is_empty() {
                    "none of the fields asked for can be set in SuperOffice (see the notes)"
                } else {
                    "already as requested"
                };
                PlanItem::new(key, "persons", Action::Keep, Value::Null, person.raw, claims)
                    .before(before)
                    .reason(why)
            } else {
                let target = Target::PatchPerson { person: id, patch: ops };
                PlanItem::new(key, "persons", Action::Patch, target.json(), person.raw, claims)
                    .before(before)
                    .after(after)
            };
            plan.items.push(item);
        }
        Ok(plan)
    }

    /// `PATCH Person/{id}` with the planned operations, after reading the person again: a
    /// list in a JSON Patch replaces the whole list, so the plan's lists are sent only while
    /// the person still holds what the plan read. Already as the item asks: done, nothing
    /// sent. Otherwise changed since the plan (an address added, a field edited): an error,
    /// nothing sent. The receipt is the fields as SuperOffice answers them.
    pub async fn patch_person(
        &self,
        call: ItemCall<'_>,
        changes: &[FieldChange],
        id: i64,
        ops: Vec<Value>,
    ) -> Result<ItemOutcome, ConnectorError> {
        let item = call.item;
        if ops.is_empty() {
            return Err(odd_target(item, "has nothing to set".into()));
        }
        let now = match self.person(id).await {
            Ok(now) => now,
            Err(e) if e.is_not_found() => return Ok(ItemOutcome::AlreadyGone),
            Err(e) => return Err(e),
        };
        let (fields_now, _) = fields(&now.raw, &ops);
        if item.after.as_ref() == Some(&fields_now) {
            return Ok(ItemOutcome::Done(
                json!({"person": id, "fields": fields_now, "already_as_requested": true}),
            ));
        }
        if item.before.as_ref() != Some(&fields_now) {
            return Err(changed_since_plan(call, "the fields it corrects were changed"));
        }
        // The same values, yet the planned lists would not be what the person's lists give
        // now (another property of an entry changed): sending them would undo that change.
        if patch_for(&now.raw, changes, call.subject).0 != ops {
            return Err(changed_since_plan(call, "the entries it rewrites were changed"));
        }
        let updated: Value = self
            .tenant
            .json(&format!("Person/{id}"), &[], |http, url| http.patch(url).json(&ops))
            .await?;
        let (now, _) = fields(&updated, &ops);
        Ok(ItemOutcome::Done(json!({"person": id, "fields": now})))
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

    #[test]
    fn a_number_already_corrected_is_not_added_again() {
        let person = json!({"MobilePhones": [{"Value": "+47 987 65 432"}, {"Value": "+47 22 00 00 00"}]});
        let subject = Identities {
            phones: vec![dsr_connector::Phone::parse("912 34 567", "NO").unwrap()],
            ..Default::default()
        };
        let changes = vec![FieldChange {
            field: RectifyField::Phone,
            value: "+4798765432".into(),
        }];
        let (ops, _) = patch_for(&person, &changes, &subject);
        let (before, after) = fields(&person, &ops);
        assert_eq!(before, after, "already as requested: {ops:?}");
        let fresh = json!({"MobilePhones": [{"Value": "+47 22 00 00 00"}]});
        let (ops, _) = patch_for(&fresh, &changes, &subject);
        assert_eq!(
            fields(&fresh, &ops).1["MobilePhones"],
            json!(["+4798765432", "+47 22 00 00 00"]),
            "a person with none of hers gets the number asked for"
        );
    }
}
