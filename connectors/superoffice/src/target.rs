//! What a plan item asks `execute` to call: one SuperOffice request, named by the ids the
//! plan found (stored with the plan, so it holds ids and the patch, never the record).

use dsr_connector::{ConnectorError, ItemOutcome, PlanItem};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::client::PROCESSOR;

/// One call, as `PlanItem::target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Target {
    /// `DELETE Person/{person}`.
    DeletePerson { person: i64 },
    /// `DELETE {entity}/{id}` for a record listed under a person (`Appointment`,
    /// `Document`, `Sale`, `Ticket`).
    DeleteRecord { entity: String, id: i64 },
    /// `PATCH Person/{person}` with these JSON-Patch operations.
    PatchPerson { person: i64, patch: Vec<Value> },
    /// `DELETE Person/{person}/Consent/{purpose}` (RemoveConsent).
    WithdrawConsent { person: i64, purpose: String },
    /// `PATCH Person/{person}`: `replace /ShipmentTypes/{index}/Selected false`.
    Unsubscribe {
        person: i64,
        shipment_type: i64,
        index: usize,
    },
}

impl Target {
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn read(item: &PlanItem) -> Result<Target, ConnectorError> {
        serde_json::from_value(item.target.clone()).map_err(|e| ConnectorError::Permanent {
            processor: PROCESSOR,
            code: "plan_target".into(),
            message: format!("plan item {} names no SuperOffice call dsr knows ({e})", item.key),
        })
    }
}

/// The entities a record listed under a person may be deleted as, by archive.
pub const DELETABLE: [(&str, &str); 4] = [
    ("Appointments", "Appointment"),
    ("Documents", "Document"),
    ("Sales", "Sale"),
    ("Tickets", "Ticket"),
];

impl SuperOffice {
    /// Makes the one call `item` stands for.
    pub async fn execute_item(&self, item: &PlanItem) -> Result<ItemOutcome, ConnectorError> {
        match Target::read(item)? {
            Target::DeletePerson { person } => {
                let path = format!("Person/{person}");
                match self.tenant.send(&path, &[], |http, url| http.delete(url)).await {
                    Ok(_) => Ok(ItemOutcome::Done(json!({"deleted": path}))),
                    Err(e) if e.is_not_found() => Ok(ItemOutcome::AlreadyGone),
                    Err(e) => Err(e),
                }
            }
            Target::DeleteRecord { entity, id } => {
                if !DELETABLE.iter().any(|(_, e)| *e == entity) {
                    return Err(ConnectorError::Permanent {
                        processor: PROCESSOR,
                        code: "plan_target".into(),
                        message: format!("plan item {} names an entity dsr does not delete", item.key),
                    });
                }
                let path = format!("{entity}/{id}");
                match self.tenant.send(&path, &[], |http, url| http.delete(url)).await {
                    Ok(_) => Ok(ItemOutcome::Done(json!({"deleted": path}))),
                    Err(e) if e.is_not_found() => Ok(ItemOutcome::AlreadyGone),
                    // SuperOffice keeps it (a system user without the right to delete
                    // requests): kept by the vendor, for an administrator to remove.
                    Err(ConnectorError::Permanent { message, .. }) => Ok(ItemOutcome::RefusedByVendor(format!(
                        "SuperOffice refused to delete it ({message}); an administrator must remove it by hand"
                    ))),
                    Err(e) => Err(e),
                }
            }
            Target::PatchPerson { person, patch } => self.patch_person(&item.key, person, patch).await,
            Target::WithdrawConsent { person, purpose } => {
                let path = format!("Person/{person}/Consent/{purpose}");
                match self.tenant.send(&path, &[], |http, url| http.delete(url)).await {
                    Ok(_) => Ok(ItemOutcome::Done(json!({"person": person, "withdrawn": purpose}))),
                    Err(e) if e.is_not_found() => Ok(ItemOutcome::AlreadyGone),
                    Err(e) => Err(e),
                }
            }
            Target::Unsubscribe {
                person,
                shipment_type,
                index,
            } => {
                let patch =
                    json!([{"op": "replace", "path": format!("/ShipmentTypes/{index}/Selected"), "value": false}]);
                self.tenant
                    .send(&format!("Person/{person}"), &[], |http, url| {
                        http.patch(url).json(&patch)
                    })
                    .await?;
                Ok(ItemOutcome::Done(
                    json!({"person": person, "unsubscribed": shipment_type}),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_related_archive_has_an_entity_to_delete_and_targets_read_back() {
        let archives: Vec<&str> = DELETABLE.iter().map(|(archive, _)| *archive).collect();
        assert_eq!(archives, crate::config::RELATED);
        let target = Target::DeleteRecord {
            entity: "Sale".into(),
            id: 701,
        };
        assert_eq!(
            target.json(),
            json!({"call": "delete_record", "entity": "Sale", "id": 701})
        );
        let item = PlanItem::new(
            "sales 701",
            "sales",
            dsr_connector::Action::Delete,
            target.json(),
            Value::Null,
            vec![],
        );
        assert_eq!(Target::read(&item).unwrap(), target);
        let odd = PlanItem::new(
            "x",
            "x",
            dsr_connector::Action::Delete,
            json!({"call": "drop_table"}),
            Value::Null,
            vec![],
        );
        assert_eq!(Target::read(&odd).unwrap_err().code(), "permanent:plan_target");
    }
}
