//! Objection to direct marketing and withdrawal of consent (Art. 7(3), 21(2)): the
//! EMARKETING consent withdrawn and every newsletter subscription unselected, the person
//! otherwise left as it is. Nothing is reported as withdrawn until SuperOffice, read back,
//! shows it so.
//!
//! - withdraw: `DELETE Person/{id}/Consent/{purpose}` (RemoveConsent); the consent stays in
//!   `GET Person/{id}/Consent` with legal base `WITHDRAWN`
//!   (https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_RemoveConsent.html)
//! - subscriptions: `ShipmentTypes[].Selected`, unselected with JSON Patch
//!   (https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_PatchPersonEntity.html)

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, TaskContext};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::access::Consent;
use crate::client::PROCESSOR;

/// The consent purpose for e-mail marketing.
pub const EMARKETING: &str = "EMARKETING";

/// What SuperOffice holds for one consent, as evidence.
fn consent_evidence(c: &Consent) -> Value {
    json!({
        "purpose": c.info.consent_purpose_key,
        "legal_base": c.info.legal_base_key,
        "source": c.info.consent_source_key,
        "updated": c.info.updated,
        "in_force": c.info.in_force(),
    })
}

fn not_withdrawn(what: String) -> ConnectorError {
    ConnectorError::RetryLater {
        processor: PROCESSOR,
        code: "withdrawal_not_visible".into(),
        message: format!("{what}; trying again"),
        after: None,
    }
}

impl SuperOffice {
    pub async fn withdraw_marketing(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
    ) -> Result<ChangeReport, ConnectorError> {
        let mut report = ChangeReport::default();
        for person in self.own_persons(ctx, subject).await? {
            let id = person.entity.person_id;
            report.found += 1;
            let consents = self.consents(id).await?;
            let marketing = consents
                .iter()
                .any(|c| c.info.consent_purpose_key == EMARKETING && c.info.in_force());
            let subscribed: Vec<(usize, i64, Option<String>)> = person
                .entity
                .shipment_types
                .iter()
                .enumerate()
                .filter(|(_, s)| s.selected)
                .map(|(i, s)| (i, s.id, s.name.clone()))
                .collect();
            if ctx.dry_run {
                report.evidence.push(Evidence {
                    kind: "would_withdraw".into(),
                    detail: json!({
                        "person": id,
                        "emarketing_consent_in_force": marketing,
                        "subscriptions": subscribed.iter().map(|(_, id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
                    }),
                });
                continue;
            }
            if marketing {
                let path = format!("Person/{id}/Consent/{EMARKETING}");
                match self.tenant.send(&path, &[], |http, url| http.delete(url)).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            if !subscribed.is_empty() {
                let patch: Vec<Value> = subscribed
                    .iter()
                    .map(|(i, _, _)| json!({"op": "replace", "path": format!("/ShipmentTypes/{i}/Selected"), "value": false}))
                    .collect();
                self.tenant
                    .send(&format!("Person/{id}"), &[], |http, url| http.patch(url).json(&patch))
                    .await?;
            }
            // Read back: only what SuperOffice now shows counts as withdrawn.
            let after = self.consents(id).await?;
            if let Some(still) = after
                .iter()
                .find(|c| c.info.consent_purpose_key == EMARKETING && c.info.in_force())
            {
                return Err(not_withdrawn(format!(
                    "SuperOffice still shows person {id}'s EMARKETING consent in force (legal base {})",
                    still.info.legal_base_key.as_deref().unwrap_or("?")
                )));
            }
            let person_after = self.person(id).await?;
            let still_selected: Vec<i64> = person_after
                .entity
                .shipment_types
                .iter()
                .filter(|s| s.selected && subscribed.iter().any(|(_, id, _)| *id == s.id))
                .map(|s| s.id)
                .collect();
            if !still_selected.is_empty() {
                return Err(not_withdrawn(format!(
                    "SuperOffice still shows person {id} subscribed to {} mailing list(s)",
                    still_selected.len()
                )));
            }
            let mut withdrawn = Vec::new();
            if marketing {
                withdrawn.push(json!({"consent": EMARKETING}));
            }
            withdrawn.extend(
                subscribed
                    .iter()
                    .map(|(_, id, name)| json!({"subscription": name, "id": id})),
            );
            if !withdrawn.is_empty() {
                report.changed += 1;
            }
            report.evidence.push(Evidence {
                kind: "withdrawn".into(),
                detail: json!({
                    "person": id,
                    "withdrawn": withdrawn,
                    "consents_afterwards": after.iter().map(consent_evidence).collect::<Vec<_>>(),
                }),
            });
        }
        report
            .notes
            .push("Only marketing was stopped: the person and other consents (such as STORE) are kept.".into());
        Ok(report)
    }
}
