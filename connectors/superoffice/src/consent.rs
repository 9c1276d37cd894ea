//! Objection to direct marketing and withdrawal of consent (Art. 7(3), 21(2)): the
//! EMARKETING consent withdrawn and every newsletter subscription unselected, the person
//! otherwise left as it is. Nothing is taken as withdrawn until SuperOffice, read back by
//! planning again, shows it so (a consent still in force is still due).
//!
//! - withdraw: `DELETE Person/{id}/Consent/{purpose}` (RemoveConsent); the consent stays in
//!   `GET Person/{id}/Consent` with legal base `WITHDRAWN`
//!   (https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_RemoveConsent.html)
//! - subscriptions: `ShipmentTypes[].Selected`, unselected with JSON Patch at the place the
//!   ShipmentType's id holds when the item is executed, guarded by a `test` of that id
//!   (https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_PatchPersonEntity.html)

use dsr_connector::{Action, ConnectorError, Identities, Plan, PlanItem};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::access::{Consent, found_under, found_via_claims};
use crate::target::Target;
use crate::wire::{ShipmentType, WITHDRAWN};

/// The consent purpose for e-mail marketing.
pub const EMARKETING: &str = "EMARKETING";

/// What SuperOffice holds for one consent (an item's `before`).
fn consent_state(c: &Consent) -> Value {
    json!({
        "purpose": c.info.consent_purpose_key,
        "legal_base": c.info.legal_base_key,
        "source": c.info.consent_source_key,
        "updated": c.info.updated,
        "in_force": c.info.in_force(),
    })
}

/// A consent as RemoveConsent leaves it (an item's `after`).
fn withdrawn_state(purpose: &str) -> Value {
    json!({"purpose": purpose, "legal_base": WITHDRAWN, "in_force": false})
}

fn subscription_state(s: &ShipmentType, selected: bool) -> Value {
    json!({"id": s.id, "name": s.name, "selected": selected})
}

impl SuperOffice {
    /// Per person the search returned: one item per consent (`Unsubscribe` for EMARKETING in
    /// force, `Keep` for the rest) and per newsletter (`Unsubscribe` while selected). A
    /// person holding none of her addresses is listed the same, without values: the engine
    /// refuses its items by their claim.
    pub async fn plan_objection(&self, subject: &Identities) -> Result<Plan, ConnectorError> {
        let mut plan = Plan::default();
        for person in self.found_persons(subject).await? {
            let id = person.entity.person_id;
            let email = person.found_via(subject);
            let consents = match self.consents(id).await {
                Ok(consents) => consents,
                // Gone since it was read: nothing to withdraw.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let mut items = Vec::new();
            for consent in &consents {
                let purpose = consent.info.consent_purpose_key.clone();
                let data = found_under(id, email.as_deref(), "consent", consent.raw.clone());
                let key = format!("consents {id}/{purpose}");
                let item = if !consent.info.in_force() {
                    PlanItem::new(key, "consents", Action::Keep, Value::Null, data, found_via_claims())
                        .reason("already withdrawn")
                } else if purpose == EMARKETING {
                    let target = Target::WithdrawConsent {
                        person: id,
                        purpose: purpose.clone(),
                    };
                    PlanItem::new(
                        key,
                        "consents",
                        Action::Unsubscribe,
                        target.json(),
                        data,
                        found_via_claims(),
                    )
                    .after(withdrawn_state(&purpose))
                } else {
                    PlanItem::new(key, "consents", Action::Keep, Value::Null, data, found_via_claims())
                        .reason("not a consent to direct marketing: an objection leaves it")
                };
                items.push((item, consent_state(consent)));
            }
            for (index, subscription) in person.entity.shipment_types().iter().enumerate() {
                let raw = person.raw["ShipmentTypes"][index].clone();
                let data = found_under(id, email.as_deref(), "subscription", raw);
                let key = format!("newsletter_subscriptions {id}/{}", subscription.id);
                let category = "newsletter_subscriptions";
                let item = if subscription.selected {
                    // Found by its id when executed: the list may be reordered meanwhile.
                    let target = Target::Unsubscribe {
                        person: id,
                        shipment_type: subscription.id,
                        index: None,
                    };
                    PlanItem::new(
                        key,
                        category,
                        Action::Unsubscribe,
                        target.json(),
                        data,
                        found_via_claims(),
                    )
                    .after(subscription_state(subscription, false))
                } else {
                    PlanItem::new(key, category, Action::Keep, Value::Null, data, found_via_claims())
                        .reason("not subscribed")
                };
                items.push((item, subscription_state(subscription, subscription.selected)));
            }
            for (mut item, before) in items {
                if email.is_some() {
                    item = item.before(before);
                } else {
                    // Not hers: nothing of it is kept in the plan.
                    item.after = None;
                }
                plan.items.push(item);
            }
        }
        plan.notes
            .push("Only marketing is stopped: the person and other consents (such as STORE) are kept.".into());
        Ok(plan)
    }
}
