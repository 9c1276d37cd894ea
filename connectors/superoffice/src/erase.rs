//! Erasing the subject's persons and the related records the company may delete (Art. 17);
//! what it keeps, or SuperOffice will not delete, is reported as retained — never as erased.

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, Retained, TaskContext};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::config::RELATED;
use crate::wire::ArchiveRow;

/// The delete path of a related record: its archive's primary key under the entity.
fn item_path(kind: &str, row: &ArchiveRow) -> Option<String> {
    let singular = match kind {
        "Appointments" => "Appointment",
        "Documents" => "Document",
        "Sales" => "Sale",
        "Tickets" => "Ticket",
        _ => return None,
    };
    row.id().map(|id| format!("{singular}/{id}"))
}

/// Whether a row of `Person/{person}/Sales` is, beyond doubt, the person's own sale and not
/// one she is only a stakeholder in (SaleFilteredWithStakeholder: `isStakeholderSale`, and
/// `personId` is the sale's own person). A row missing either column is not deleted.
pub fn owned_sale(row: &ArchiveRow, person: i64) -> bool {
    row.flag("isStakeholderSale") == Some(false) && row.number("personId") == Some(person)
}

/// Whether a related row (listed under `Person/{person}/…`, which the reference restricts to
/// `personId eq {person}`) names another person as its own: then it is not hers.
fn names_other_person(row: &ArchiveRow, person: i64) -> bool {
    row.number("personId").is_some_and(|owner| owner != person)
}

impl SuperOffice {
    pub async fn erase_subject(&self, ctx: &TaskContext, subject: &Identities) -> Result<ChangeReport, ConnectorError> {
        let persons = self.own_persons(ctx, subject).await?;
        let mut report = ChangeReport::default();
        let mut deleted: Vec<Value> = Vec::new();
        let mut stakeholder_in = 0u64;
        for person in &persons {
            let id = &person.entity.person_id;
            let claims = person.claims(subject);
            report.found += 1;
            for kind in RELATED {
                let mut items = self.related(*id, kind).await?;
                items.retain(|row| !names_other_person(row, *id) || kind == "Sales");
                if kind == "Sales" {
                    let before = items.len();
                    items.retain(|row| owned_sale(row, *id));
                    stakeholder_in += (before - items.len()) as u64;
                }
                if items.is_empty() {
                    continue;
                }
                report.found += items.len() as u64;
                if let Some(rule) = self.config.retain.iter().find(|r| r.category == kind) {
                    report.retained.push(Retained {
                        category: kind.to_lowercase(),
                        count: items.len() as u64,
                        reason: rule.reason.clone(),
                        legal_basis: rule.legal_basis.clone(),
                    });
                    continue;
                }
                let mut refused = 0;
                let mut why = String::new();
                let mut unaddressable = 0u64;
                for item in &items {
                    let Some(path) = item_path(kind, item) else {
                        unaddressable += 1;
                        continue;
                    };
                    // Found under her person: the person's claim is the item's.
                    if ctx.dry_run || !ctx.permit(subject, &path, &person.raw, &claims) {
                        continue;
                    }
                    match self.tenant.send(&path, &[], |http, url| http.delete(url)).await {
                        Ok(_) => {
                            report.changed += 1;
                            deleted.push(json!({"record": path}));
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(ConnectorError::Permanent { message, .. }) => {
                            refused += 1;
                            why = message;
                        }
                        Err(e) => return Err(e),
                    }
                }
                if unaddressable > 0 {
                    report.retained.push(Retained {
                        category: kind.to_lowercase(),
                        count: unaddressable,
                        reason: "SuperOffice listed them without a usable id, so dsr cannot delete them; an administrator must remove them by hand".into(),
                        legal_basis: "not retained by choice: awaiting manual deletion".into(),
                    });
                }
                if refused > 0 {
                    report.retained.push(Retained {
                        category: kind.to_lowercase(),
                        count: refused,
                        reason: format!(
                            "SuperOffice refused to delete them ({why}); an administrator must remove them by hand"
                        ),
                        legal_basis: "not retained by choice: awaiting manual deletion".into(),
                    });
                }
            }
            if ctx.dry_run {
                continue;
            }
            match self
                .tenant
                .send(&format!("Person/{id}"), &[], |http, url| http.delete(url))
                .await
            {
                Ok(_) => {
                    report.changed += 1;
                    deleted.push(json!({"person": id}));
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        if stakeholder_in > 0 {
            report.retained.push(Retained {
                category: "sales (as stakeholder)".into(),
                count: stakeholder_in,
                reason: "Sales she is only a stakeholder in, or whose own person SuperOffice did not confirm as hers: \
                         they are not hers to delete. Remove her as a stakeholder in SuperOffice (the sale's \
                         Stakeholders tab)."
                    .into(),
                legal_basis: "other persons' records: only the link to the subject is hers".into(),
            });
        }
        report.evidence.push(Evidence {
            kind: "superoffice_deletions".into(),
            detail: json!({"deleted": deleted}),
        });
        if !ctx.dry_run {
            let remaining = self.count_own_persons(subject).await?;
            report.evidence.push(Evidence {
                kind: "verification_search".into(),
                detail: json!({"persons_remaining": remaining}),
            });
            if remaining > 0 {
                return Err(ConnectorError::RetryLater {
                    processor: crate::client::PROCESSOR,
                    code: "verification".into(),
                    message: format!("{remaining} person(s) still found after erasure; erasing again"),
                    after: None,
                });
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: serde_json::Value) -> ArchiveRow {
        dsr_connector::decode(v).unwrap()
    }

    #[test]
    fn a_sale_is_deleted_only_when_both_columns_say_it_is_hers() {
        let own = row(json!({"PrimaryKey": 701, "EntityName": "sale", "personId": 101, "isStakeholderSale": false}));
        assert!(owned_sale(&own, 101));
        let stakeholder =
            row(json!({"PrimaryKey": 702, "EntityName": "sale", "personId": 103, "isStakeholderSale": true}));
        assert!(!owned_sale(&stakeholder, 101));
        for unsure in [
            json!({"PrimaryKey": 703, "EntityName": "sale", "isStakeholderSale": false}),
            json!({"PrimaryKey": 704, "EntityName": "sale", "personId": 101}),
            json!({"PrimaryKey": 705, "EntityName": "sale", "personId": null, "isStakeholderSale": false}),
            json!({"PrimaryKey": 706, "EntityName": "sale", "personId": 101, "isStakeholderSale": ""}),
            json!({"PrimaryKey": 707, "EntityName": "sale", "personId": "Per Olsen", "isStakeholderSale": "False"}),
        ] {
            assert!(!owned_sale(&row(unsure.clone()), 101), "{unsure}");
        }
        let display =
            row(json!({"PrimaryKey": "701", "EntityName": "sale", "personId": "101", "isStakeholderSale": "False"}));
        assert!(owned_sale(&display, 101), "display values are read too");
    }
}
