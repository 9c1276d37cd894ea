//! Correcting the subject's site contacts (Art. 16): PATCH with the contact's current
//! `revision`; when someone else changed it meanwhile (409), read it again and retry once.

use dsr_connector::{
    ChangeReport, ConnectorError, Evidence, FieldChange, Identities, RectifyField, TaskContext, correct_values,
};
use serde_json::{Map, Value, json};

use crate::Wix;
use crate::access::Found;
use crate::client::PROCESSOR;
use crate::wire::{Contact, ContactAnswer};

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
                    |e| e["email"].as_str().is_some_and(|v| subject.owns_email(v)),
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
                let hers = |p: &Value| {
                    ["e164Phone", "phone"]
                        .iter()
                        .filter_map(|k| p[*k].as_str())
                        .any(|v| subject.owns_phone(v))
                };
                let items = correct_values(
                    &entries,
                    hers,
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
    async fn update(&self, contact: &Found<Contact>, info: &Map<String, Value>) -> Result<Value, ConnectorError> {
        let id = urlencoding::encode(&contact.view.id);
        let body = json!({"revision": contact.view.revision, "info": info});
        let answer: ContactAnswer = self.patch(&format!("/contacts/v4/contacts/{id}"), &body).await?;
        Ok(answer.contact)
    }

    pub async fn rectify_subject(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        changes: &[FieldChange],
    ) -> Result<ChangeReport, ConnectorError> {
        let mut report = ChangeReport::default();
        if changes.iter().any(|c| c.field == RectifyField::DisplayName) {
            report.notes.push(
                "display_name: Wix shows a contact by first and last name; set given_name and family_name".into(),
            );
        }
        if changes.iter().any(|c| c.field == RectifyField::Email) && !self.find_members(subject).await?.is_empty() {
            report.notes.push(
                "The site member's login e-mail was not changed: Wix lets only the member change it (or the site owner in the dashboard).".into(),
            );
        }
        for contact in self.find_contacts(subject).await? {
            let claims = crate::access::contact_claims(&contact, subject);
            if !ctx.permit(subject, &format!("contact {}", contact.view.id), &contact.raw, &claims) {
                continue;
            }
            report.found += 1;
            let info = info_for(&contact.raw, changes, subject);
            if info.is_empty() || ctx.dry_run {
                report.evidence.push(Evidence {
                    kind: "contact_would_change".into(),
                    detail: json!({"contact": contact.view.id, "info": info}),
                });
                continue;
            }
            let updated = match self.update(&contact, &info).await {
                // Changed meanwhile: read the current revision and apply the change once more.
                Err(ConnectorError::Permanent { code, .. }) if code.starts_with("409") => {
                    const ENDPOINT: &str = "/contacts/v4/contacts/{id}";
                    let id = urlencoding::encode(&contact.view.id);
                    let fresh: ContactAnswer = self.get(&format!("/contacts/v4/contacts/{id}")).await?;
                    let view = dsr_connector::decode_answer(PROCESSOR, ENDPOINT, fresh.contact.clone())?;
                    let fresh = Found {
                        raw: fresh.contact,
                        view,
                    };
                    // Read again: it must still be hers before it is patched.
                    let claims = crate::access::contact_claims(&fresh, subject);
                    if !ctx.permit(subject, &format!("contact {}", fresh.view.id), &fresh.raw, &claims) {
                        continue;
                    }
                    self.update(&fresh, &info_for(&fresh.raw, changes, subject)).await?
                }
                other => other?,
            };
            let after = &updated["info"];
            let fields: Vec<Value> = info
                .keys()
                .map(|k| json!({"field": k, "before": contact.raw["info"][k], "after": after[k]}))
                .collect();
            report.changed += 1;
            report.evidence.push(Evidence {
                kind: "contact_changed".into(),
                detail: json!({"contact": contact.view.id, "fields": fields}),
            });
        }
        Ok(report)
    }
}
