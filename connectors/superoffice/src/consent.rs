//! Objection to direct marketing and withdrawal of consent (Art. 7(3), 21(2)): the
//! EMARKETING consent withdrawn and every newsletter subscription unselected, the person
//! otherwise left as it is.

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, TaskContext};
use serde_json::{Value, json};

use crate::SuperOffice;

impl SuperOffice {
    pub async fn withdraw_marketing(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
    ) -> Result<ChangeReport, ConnectorError> {
        let mut report = ChangeReport::default();
        for id in self.find_persons(subject).await? {
            report.found += 1;
            let consents = self.consents(id).await?;
            let marketing = consents.iter().any(|c| c["ConsentPurpose"]["Key"] == "EMARKETING");
            let person = self.person(id).await?;
            let shipments: Vec<Value> = person["ShipmentTypes"].as_array().cloned().unwrap_or_default();
            let subscribed: Vec<&Value> = shipments.iter().filter(|s| s["Selected"] == json!(true)).collect();
            let mut withdrawn = Vec::new();
            if ctx.dry_run {
                report.evidence.push(Evidence {
                    kind: "would_withdraw".into(),
                    detail: json!({"person": id, "emarketing_consent": marketing, "subscriptions": subscribed}),
                });
                continue;
            }
            if marketing {
                match self
                    .tenant
                    .send(&format!("Person/{id}/Consent/EMARKETING"), &[], |http, url| {
                        http.delete(url)
                    })
                    .await
                {
                    Ok(_) => withdrawn.push(json!({"consent": "EMARKETING"})),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            if !subscribed.is_empty() {
                let unselected: Vec<Value> = shipments
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        s["Selected"] = json!(false);
                        s
                    })
                    .collect();
                let patch = json!([{"op": "replace", "path": "/ShipmentTypes", "value": unselected}]);
                self.tenant
                    .send(&format!("Person/{id}"), &[], |http, url| http.patch(url).json(&patch))
                    .await?;
                withdrawn.extend(subscribed.iter().map(|s| json!({"subscription": s["Name"]})));
            }
            if !withdrawn.is_empty() {
                report.changed += 1;
            }
            report.evidence.push(Evidence {
                kind: "withdrawn".into(),
                detail: json!({"person": id, "withdrawn": withdrawn}),
            });
        }
        report
            .notes
            .push("Only marketing was stopped: the person and other consents (such as STORE) are kept.".into());
        Ok(report)
    }
}
