//! What a plan item asks `execute` to call: one SuperOffice request, named by the ids the
//! plan found (stored with the plan, so it holds ids and the patch, never the record).
//!
//! A plan may wait days for approval, so a call that depends on the person as the plan read
//! it reads the person again first: a newsletter is found by its ShipmentType id (never by
//! its place in the list), and a correction is sent only while the fields it sets still
//! hold what the plan showed (`rectify::SuperOffice::patch_person`).

use dsr_connector::http::path_segment;
use dsr_connector::{Change, ConnectorError, ItemCall, ItemOutcome, PlanItem};
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
    /// `PATCH Person/{person}`: `test /ShipmentTypes/{i}/Id`, then `replace
    /// /ShipmentTypes/{i}/Selected false`, where `i` is where the ShipmentType `shipment_type`
    /// is in the list when the call is made.
    Unsubscribe {
        person: i64,
        shipment_type: i64,
        /// Its place in the list when the plan was read. Plans made before the list was
        /// read again at execution carry it; it is never used (the list may be reordered).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<usize>,
    },
}

/// The error SuperOffice gives a delete its sentry refuses for that one record ("deletes are
/// subject to the usual sentry restrictions"; `error_403.json`: 403 `SoSecurityException`,
/// "The user does not have the right to delete requests."). The only failure of a delete that
/// is taken as the vendor keeping the item.
pub const SENTRY_REFUSAL: &str = "SoSecurityException";

/// SuperOffice's refusal to delete this one record, if `error` is that refusal (a 403
/// `SoSecurityException`); any other failure (a config error, an untrusted tenant address, a
/// 400, a 412) is not a refusal and stays an error.
pub fn refusal(error: &ConnectorError) -> Option<String> {
    match error {
        // dsr's words, not SuperOffice's: the reason is stored and shown to the subject.
        ConnectorError::Permanent {
            status: Some(403),
            code,
            ..
        } if code == SENTRY_REFUSAL => Some(
            "SuperOffice's access rules (its sentry) do not let dsr's system user delete it; an administrator \
             must remove it by hand"
                .to_string(),
        ),
        _ => None,
    }
}

/// The record no longer holds what the plan showed: the stored plan is not carried out, and
/// the operator plans again.
pub fn changed_since_plan(call: ItemCall<'_>, what: &str) -> ConnectorError {
    ConnectorError::changed_since_plan(PROCESSOR, call, &format!("{what} in SuperOffice"))
}

/// A plan item that names no call dsr makes for it.
pub(crate) fn odd_target(item: &PlanItem, why: String) -> ConnectorError {
    ConnectorError::foreign_item(PROCESSOR, item, &why)
}

impl Target {
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn read(item: &PlanItem) -> Result<Target, ConnectorError> {
        serde_json::from_value(item.target.clone())
            .map_err(|e| odd_target(item, format!("names no SuperOffice call dsr knows ({e})")))
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
    /// Makes the one call the plan item stands for.
    pub async fn execute_item(&self, call: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
        match Target::read(call.item)? {
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
                    return Err(odd_target(call.item, "names an entity dsr does not delete".into()));
                }
                let path = format!("{entity}/{id}");
                match self.tenant.send(&path, &[], |http, url| http.delete(url)).await {
                    Ok(_) => Ok(ItemOutcome::Done(json!({"deleted": path}))),
                    Err(e) if e.is_not_found() => Ok(ItemOutcome::AlreadyGone),
                    // SuperOffice's sentry keeps this record (the system user may not delete
                    // it): kept by the vendor, for an administrator to remove.
                    Err(e) => match refusal(&e) {
                        Some(reason) => Ok(ItemOutcome::RefusedByVendor(reason)),
                        None => Err(e),
                    },
                }
            }
            Target::PatchPerson { person, patch } => {
                let Change::Rectification { changes } = call.change else {
                    let why = "patches a person, which only a rectification does";
                    return Err(odd_target(call.item, why.into()));
                };
                self.patch_person(call, changes, person, patch).await
            }
            Target::WithdrawConsent { person, purpose } => {
                // The purpose key is SuperOffice's data: one encoded path segment.
                let path = format!("Person/{person}/Consent/{}", path_segment(PROCESSOR, &purpose)?);
                match self.tenant.send(&path, &[], |http, url| http.delete(url)).await {
                    Ok(_) => Ok(ItemOutcome::Done(json!({"person": person, "withdrawn": purpose}))),
                    Err(e) if e.is_not_found() => Ok(ItemOutcome::AlreadyGone),
                    Err(e) => Err(e),
                }
            }
            Target::Unsubscribe {
                person, shipment_type, ..
            } => self.unsubscribe(person, shipment_type).await,
        }
    }

    /// Unselects the ShipmentType `shipment_type` of `person`, found by its id in the list as
    /// SuperOffice holds it now. The PATCH also tests that the place it patches still holds
    /// that id (JSON Patch `test`; SuperOffice answers 409 when a test fails), so a list
    /// reordered between the read and the PATCH is read once more rather than patched at the
    /// wrong place.
    async fn unsubscribe(&self, person: i64, shipment_type: i64) -> Result<ItemOutcome, ConnectorError> {
        let path = format!("Person/{person}");
        let receipt = |already: bool| {
            let mut receipt = json!({"person": person, "unsubscribed": shipment_type});
            if already {
                receipt["already_unsubscribed"] = json!(true);
            }
            ItemOutcome::Done(receipt)
        };
        for _ in 0..2 {
            let now = match self.person(person).await {
                Ok(now) => now,
                Err(e) if e.is_not_found() => return Ok(ItemOutcome::AlreadyGone),
                Err(e) => return Err(e),
            };
            let types = now.entity.shipment_types();
            let Some(index) = types.iter().position(|s| s.id == shipment_type) else {
                // The newsletter is no longer on her list: nothing to unsubscribe from.
                return Ok(ItemOutcome::AlreadyGone);
            };
            if !types[index].selected {
                return Ok(receipt(true));
            }
            let patch = json!([
                {"op": "test", "path": format!("/ShipmentTypes/{index}/Id"), "value": shipment_type},
                {"op": "replace", "path": format!("/ShipmentTypes/{index}/Selected"), "value": false},
            ]);
            match self
                .tenant
                .send(&path, &[], |http, url| http.patch(url).json(&patch))
                .await
            {
                Ok(_) => return Ok(receipt(false)),
                Err(e) if e.is_not_found() => return Ok(ItemOutcome::AlreadyGone),
                // The test failed: the list changed between the read and the PATCH.
                Err(ConnectorError::Permanent { status: Some(409), .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ConnectorError::retry_later(
            PROCESSOR,
            "shipment_types_changing",
            format!("the newsletter list of person {person} changed during each of two attempts"),
        ))
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
        assert_eq!(Target::read(&odd).unwrap_err().code(), "permanent:plan_item");
        // A plan stored before newsletters were found by id still reads (its index unused).
        let older = json!({"call": "unsubscribe", "person": 101, "shipment_type": 2, "index": 1});
        let item = PlanItem::new("n", "n", dsr_connector::Action::Unsubscribe, older, Value::Null, vec![]);
        assert!(matches!(
            Target::read(&item).unwrap(),
            Target::Unsubscribe { shipment_type: 2, .. }
        ));
        let planned = Target::Unsubscribe {
            person: 101,
            shipment_type: 2,
            index: None,
        };
        assert_eq!(
            planned.json(),
            json!({"call": "unsubscribe", "person": 101, "shipment_type": 2})
        );
    }

    #[test]
    fn only_the_sentrys_refusal_of_the_record_is_a_refusal() {
        let permanent = |status: Option<u16>, code: &str| ConnectorError::Permanent {
            processor: PROCESSOR,
            status,
            code: code.into(),
            message: String::new(),
            said: Some("The user does not have the right to delete requests.".into()),
        };
        let sentry = permanent(Some(403), "SoSecurityException");
        assert!(refusal(&sentry).is_some_and(|r| r.contains("sentry") && !r.contains("right to delete")));
        for (status, other) in [
            (Some(400), "ArgumentException"),
            (Some(403), ""),
            (Some(412), "PreconditionFailedException"),
            (None, "SoSecurityException"),
            (None, "tenant_state:untrusted"),
            (None, "unexpected_response"),
        ] {
            assert_eq!(refusal(&permanent(status, other)), None, "{status:?} {other}");
        }
        let later = ConnectorError::RetryLater {
            processor: PROCESSOR,
            status: Some(503),
            code: "SoSecurityException".into(),
            message: String::new(),
            after: None,
            said: None,
        };
        assert_eq!(refusal(&later), None);
        let config: ConnectorError = dsr_connector::ConfigError::new(PROCESSOR, "environment_url", "x").into();
        assert_eq!(refusal(&config), None);
    }
}
