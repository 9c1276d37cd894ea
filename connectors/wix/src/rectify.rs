//! Correcting the subject's site contacts (Art. 16): PATCH with the `revision` the plan read;
//! when someone changed the contact meanwhile (409), read it again and send the same planned
//! change once more with the fresh revision only if the contact still holds what the plan
//! read (otherwise the operator plans again).
//!
//! The plan has one item per contact found: `Patch` with the requested fields' current
//! values (`before`) and the requested ones (`after`), or `Keep` when every requested field
//! is already as requested.

use dsr_connector::http::path_segment;
use dsr_connector::{
    Action, ConnectorError, FieldChange, Identities, ItemCall, ItemOutcome, Plan, PlanItem, RectifyField,
    correct_values,
};
use serde_json::{Map, Value, json};

use crate::Wix;
use crate::access::{Found, contact_claims, contact_claims_or_candidates};
use crate::client::PROCESSOR;
use crate::erase::foreign_item;
use crate::wire::{Contact, ContactAnswer};

/// An e-mail entry is hers to correct where it holds one of her addresses, or already the
/// address asked for (so a corrected contact is not corrected again, and holds it once).
fn email_is_hers(entry: &Value, requested: &str, subject: &Identities) -> bool {
    entry["email"]
        .as_str()
        .is_some_and(|v| subject.owns_email(v) || v.trim().eq_ignore_ascii_case(requested.trim()))
}

/// Whether two written numbers are the same digits (`+47 987 65 432` and `+4798765432`).
fn same_number(value: &str, requested: &str) -> bool {
    let digits = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect::<String>()
    };
    !digits(requested).is_empty() && digits(value) == digits(requested)
}

/// A phone entry is hers to correct where it holds one of her numbers, or already the
/// number asked for.
fn phone_is_hers(entry: &Value, requested: &str, subject: &Identities) -> bool {
    ["e164Phone", "phone"]
        .iter()
        .filter_map(|k| entry[*k].as_str())
        .any(|v| subject.owns_phone(v) || same_number(v, requested))
}

fn items(info: &Value, list: &str) -> Vec<Value> {
    info[list]["items"].as_array().cloned().unwrap_or_default()
}

/// A requested field's current value on a contact (`info`), as the plan shows it: the name
/// parts and texts as they are, her addresses and numbers and the contact's addresses as
/// lists. `None` for `display_name`, which Wix does not keep (see the plan's note).
fn current(info: &Value, change: &FieldChange, subject: &Identities) -> Option<Value> {
    let texts = |values: Vec<Value>, pick: &dyn Fn(&Value) -> Option<Value>| {
        Value::Array(values.iter().filter_map(pick).collect())
    };
    Some(match change.field {
        RectifyField::GivenName => info["name"]["first"].clone(),
        RectifyField::FamilyName => info["name"]["last"].clone(),
        RectifyField::Company => info["company"].clone(),
        RectifyField::JobTitle => info["jobTitle"].clone(),
        RectifyField::Email => texts(items(info, "emails"), &|e| {
            email_is_hers(e, &change.value, subject).then(|| e["email"].clone())
        }),
        RectifyField::Phone => texts(items(info, "phones"), &|p| {
            phone_is_hers(p, &change.value, subject).then(|| {
                p.get("phone")
                    .filter(|v| v.is_string())
                    .unwrap_or(&p["e164Phone"])
                    .clone()
            })
        }),
        RectifyField::Address => texts(items(info, "addresses"), &|a| Some(a["address"].clone())),
        RectifyField::DisplayName => return None,
    })
}

/// The value a field is asked to have, in the shape `current` shows it.
fn requested(change: &FieldChange) -> Value {
    match change.field {
        RectifyField::Email | RectifyField::Phone => json!([change.value]),
        RectifyField::Address => json!([{"addressLine": change.value}]),
        _ => json!(change.value),
    }
}

/// Whether a field's current value is the one asked for: her one address or number (any
/// case, any spacing), the one address line, or the same text.
fn as_requested(now: &Value, change: &FieldChange) -> bool {
    let only = |test: &dyn Fn(&str) -> bool| {
        now.as_array()
            .is_some_and(|v| v.len() == 1 && v[0].as_str().is_some_and(test))
    };
    match change.field {
        RectifyField::Email => only(&|v| v.trim().eq_ignore_ascii_case(change.value.trim())),
        RectifyField::Phone => only(&|v| v.trim() == change.value.trim() || same_number(v, &change.value)),
        RectifyField::Address => now
            .as_array()
            .is_some_and(|v| v.len() == 1 && v[0]["addressLine"] == change.value.as_str()),
        _ => now == &json!(change.value),
    }
}

/// The item for one contact: `Patch` (before, after, and in `target` the PATCH body's
/// revision and `info`), or `Keep` when every field asked for is already so.
pub fn contact_item(contact: &Found<Contact>, changes: &[FieldChange], subject: &Identities) -> PlanItem {
    let info = &contact.raw["info"];
    let mut before = Map::new();
    let mut after = Map::new();
    let mut due = false;
    for change in changes {
        let Some(now) = current(info, change, subject) else {
            continue;
        };
        due |= !as_requested(&now, change);
        before.insert(change.field.as_str().into(), now);
        after.insert(change.field.as_str().into(), requested(change));
    }
    let id = &contact.view.id;
    let target = json!({
        "id": id,
        "revision": contact.view.revision,
        "info": info_for(&contact.raw, changes, subject),
    });
    let claims = contact_claims_or_candidates(contact, subject);
    let item = PlanItem::new(
        format!("contacts {id}"),
        "contacts",
        Action::Patch,
        target,
        contact.raw.clone(),
        claims,
    );
    if due {
        return item.before(Value::Object(before)).after(Value::Object(after));
    }
    let mut item = item.before(Value::Object(before.clone()));
    item.action = Action::Keep;
    if before.is_empty() {
        item.reason("nothing Wix keeps was asked for")
    } else {
        item.reason("already as requested")
    }
}

/// The `info` fields to send for one contact.
pub fn info_for(contact: &Value, changes: &[FieldChange], subject: &Identities) -> Map<String, Value> {
    let info = &contact["info"];
    let mut out = Map::new();
    let mut name = info["name"].clone();
    for change in changes {
        let value = json!(change.value);
        match change.field {
            RectifyField::GivenName => name["first"] = value,
            RectifyField::FamilyName => name["last"] = value,
            RectifyField::Company => {
                out.insert("company".into(), value);
            }
            RectifyField::JobTitle => {
                out.insert("jobTitle".into(), value);
            }
            // One rule for every processor: the entries that are the subject's are corrected,
            // the contact's other entries stay (dsr_connector::correct_values).
            RectifyField::Email => {
                let entries: Vec<Value> = info["emails"]["items"].as_array().cloned().unwrap_or_default();
                let items = correct_values(
                    &entries,
                    |e| email_is_hers(e, &change.value, subject),
                    |e| {
                        let mut e = e.clone();
                        e["email"] = json!(change.value);
                        e
                    },
                    || json!({"email": change.value, "tag": "MAIN"}),
                );
                out.insert("emails".into(), json!({"items": items}));
            }
            RectifyField::Phone => {
                let entries: Vec<Value> = info["phones"]["items"].as_array().cloned().unwrap_or_default();
                let items = correct_values(
                    &entries,
                    |p| phone_is_hers(p, &change.value, subject),
                    |p| {
                        let mut p = p.clone();
                        p["phone"] = json!(change.value);
                        if let Some(fields) = p.as_object_mut() {
                            // Wix derives the E.164 form from the number it is given.
                            fields.remove("e164Phone");
                        }
                        p
                    },
                    || json!({"phone": change.value, "tag": "MOBILE"}),
                );
                out.insert("phones".into(), json!({"items": items}));
            }
            RectifyField::Address => {
                out.insert(
                    "addresses".into(),
                    json!({"items": [{"tag": "HOME", "address": {"addressLine": change.value}}]}),
                );
            }
            RectifyField::DisplayName => {}
        }
    }
    if name != info["name"] {
        out.insert("name".into(), name);
    }
    out
}

impl Wix {
    async fn update(&self, id: &str, revision: Option<u64>, info: &Value) -> Result<Value, ConnectorError> {
        let path = format!("/contacts/v4/contacts/{}", path_segment(PROCESSOR, id)?);
        let body = json!({"revision": revision, "info": info});
        let answer: ContactAnswer = self.api.patch(&path, &body).await?;
        Ok(answer.contact)
    }

    /// One item per contact the search returned (with what it claims), and notes on what
    /// Wix does not let dsr change.
    pub async fn plan_rectification(
        &self,
        subject: &Identities,
        changes: &[FieldChange],
    ) -> Result<Plan, ConnectorError> {
        let asked = |field: RectifyField| changes.iter().any(|c| c.field == field);
        let mut notes = Vec::new();
        if asked(RectifyField::DisplayName) {
            notes.push(
                "display_name: Wix shows a contact by first and last name; set given_name and family_name".into(),
            );
        }
        if asked(RectifyField::Email) && !self.find_members(subject).await?.is_empty() {
            notes.push(
                "The site member's login e-mail was not changed: Wix lets only the member change it (or the site owner in the dashboard).".into(),
            );
        }
        let contacts = self.find_contacts(subject).await?;
        let items = contacts.iter().map(|c| contact_item(c, changes, subject)).collect();
        Ok(Plan {
            items,
            notes,
            ..Default::default()
        })
    }

    /// PATCHes one contact with the planned body and revision. When Wix answers 409 (the
    /// contact changed since the plan read it), reads it again: already as the item asks,
    /// done; still holding what the plan read in every field the body sets, the same planned
    /// body once more with the fresh revision (only the revision differs); otherwise changed
    /// since the plan: an error naming `dsr retry`, nothing sent.
    pub async fn patch_contact(
        &self,
        call: ItemCall<'_>,
        changes: &[FieldChange],
    ) -> Result<ItemOutcome, ConnectorError> {
        let ItemCall { subject, item, .. } = call;
        let target = &item.target;
        let (Some(id), Action::Patch) = (target["id"].as_str(), item.action) else {
            return Err(foreign_item(item));
        };
        let planned = &target["info"];
        let updated = match self.update(id, target["revision"].as_u64(), planned).await {
            // Wix's `CONTACT_ALREADY_CHANGED`: the revision is no longer the contact's.
            Err(ConnectorError::Permanent { status: Some(409), .. }) => {
                const ENDPOINT: &str = "/contacts/v4/contacts/{id}";
                let fresh: ContactAnswer = match self
                    .api
                    .get(&format!("/contacts/v4/contacts/{}", path_segment(PROCESSOR, id)?))
                    .await
                {
                    Ok(fresh) => fresh,
                    Err(e) if e.is_not_found() => return Ok(ItemOutcome::AlreadyGone),
                    Err(e) => return Err(e),
                };
                let view = dsr_connector::decode_answer(PROCESSOR, ENDPOINT, fresh.contact.clone())?;
                let fresh: Found<Contact> = Found {
                    raw: fresh.contact,
                    view,
                };
                // Already so (someone made the same correction, or this item's call was made
                // once before and re-delivered): no second change.
                if contact_item(&fresh, changes, subject).action == Action::Keep {
                    return Ok(ItemOutcome::Done(
                        json!({"contact": id, "revision": fresh.view.revision, "already_as_requested": true}),
                    ));
                }
                if !as_planned(&fresh, changes, subject, item) {
                    let what = "the contact was changed at Wix (its fields no longer hold what the plan read)";
                    return Err(ConnectorError::changed_since_plan(PROCESSOR, call, what));
                }
                self.update(&fresh.view.id, fresh.view.revision, planned).await?
            }
            other => other?,
        };
        let fields: Map<String, Value> = planned
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| (k.clone(), updated["info"][k].clone()))
            .collect();
        Ok(ItemOutcome::Done(
            json!({"contact": id, "revision": updated["revision"], "info": fields}),
        ))
    }
}

/// Whether `fresh` still holds what the plan read: it is still hers, each requested field has
/// the plan's `before` value, and the body the plan would make from it is the planned body
/// (so the lists it replaces hold the same entries: none added or edited since).
fn as_planned(fresh: &Found<Contact>, changes: &[FieldChange], subject: &Identities, item: &PlanItem) -> bool {
    let info = &fresh.raw["info"];
    let before: Map<String, Value> = changes
        .iter()
        .filter_map(|c| current(info, c, subject).map(|now| (c.field.as_str().to_string(), now)))
        .collect();
    !contact_claims(fresh, subject).is_empty()
        && item.before.as_ref() == Some(&Value::Object(before))
        && Value::Object(info_for(&fresh.raw, changes, subject)) == item.target["info"]
}
