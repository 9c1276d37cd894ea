//! Erasing the subject's persons and the related records the company may delete (Art. 17);
//! what it keeps, or SuperOffice will not delete, is reported as retained — never as erased.
//!
//! The plan lists, per person the search returned, every record under it
//! (`Person/{id}/{Appointments,Documents,Sales,Tickets}`, deleted as `DELETE {Entity}/{id}`)
//! and then the person (`DELETE Person/{id}`):
//! https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_DeletePersonEntity.html,
//! https://docs.superoffice.com/en/api/reference/restful/rest/Person/v1PersonEntity_Sales.html

use dsr_connector::{Action, ConnectorError, Identities, Plan, PlanItem, Retained};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::SuperOffice;
use crate::access::{PERSONS_IN_FLIGHT, found_under, found_via_claims};
use crate::config::{RELATED, RetainRule};
use crate::target::{DELETABLE, Target};
use crate::wire::ArchiveRow;

/// What a sale she is only a stakeholder in shares with others, naming no one.
pub const STAKEHOLDER_SALE: &str = "another person's sale, with her as a stakeholder";

const STAKEHOLDER_NOTE: &str = "She is a stakeholder in a sale that is another person's: removing her from the sale's \
                                Stakeholders tab in SuperOffice unlinks her without deleting the sale.";

const UNCONFIRMED_SALE: &str = "SuperOffice did not say whose sale it is (its own person or stakeholder mark is \
                                missing), so it is not deleted: check it in SuperOffice.";

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

fn rule_reason(rule: &RetainRule) -> String {
    format!("{} (legal basis: {})", rule.reason, rule.legal_basis)
}

/// Counts a record that cannot be planned (no id to address it by) under its reason.
fn tally(retained: &mut Vec<Retained>, category: &str, reason: &str, legal_basis: &str) {
    match retained
        .iter_mut()
        .find(|r| r.category == category && r.reason == reason)
    {
        Some(r) => r.count += 1,
        None => retained.push(Retained {
            category: category.into(),
            count: 1,
            reason: reason.into(),
            legal_basis: legal_basis.into(),
        }),
    }
}

/// Adds `item` unless the same record is already planned (a sale listed under two of her
/// persons): the plan that deletes it as hers outright wins over a shared or kept one.
fn push_unique(items: &mut Vec<PlanItem>, item: PlanItem) {
    let outright = |i: &PlanItem| i.action == Action::Delete && i.shared.is_none();
    match items.iter_mut().find(|i| i.key == item.key) {
        Some(planned) if outright(&item) && !outright(planned) => *planned = item,
        Some(_) => {}
        None => items.push(item),
    }
}

impl SuperOffice {
    /// One item per record under each of her persons, then the person; a person the search
    /// returned that holds none of her addresses is listed alone (the engine refuses it).
    pub async fn plan_erasure(&self, subject: &Identities) -> Result<Plan, ConnectorError> {
        let mut plan = Plan::default();
        // The related archives of up to PERSONS_IN_FLIGHT persons are read at once, all four
        // of a person together; the plan is built in the search's order from what they hold.
        let persons = self.found_persons(subject).await?;
        let mut reads = futures::stream::iter(persons.into_iter().map(|person| async move {
            let related = match person.found_via(subject) {
                Some(email) => Some((email, self.related_all(person.entity.person_id).await?)),
                None => None,
            };
            Ok::<_, ConnectorError>((person, related))
        }))
        .buffered(PERSONS_IN_FLIGHT);
        while let Some((person, related)) = reads.try_next().await? {
            let id = person.entity.person_id;
            if let Some((email, archives)) = related {
                // The archives come in RELATED's order; each kind's entity is looked up by
                // name, so reordering either list can never delete one kind's ids as another's.
                for (kind, rows) in RELATED.iter().zip(archives) {
                    // Every archive read has its entity (a test in target.rs holds the two lists
                    // together).
                    let Some((kind, entity)) = DELETABLE.iter().find(|(k, _)| k == kind) else {
                        continue;
                    };
                    self.plan_related(&mut plan, id, &email, kind, entity, rows);
                }
            }
            let claims = person.claims(subject);
            plan.items.push(PlanItem::new(
                format!("persons {id}"),
                "persons",
                Action::Delete,
                Target::DeletePerson { person: id }.json(),
                person.raw,
                claims,
            ));
        }
        Ok(plan)
    }

    /// The items for the rows of one related archive of her person (`rows`, as listed).
    fn plan_related(&self, plan: &mut Plan, person: i64, email: &str, kind: &str, entity: &str, rows: Vec<ArchiveRow>) {
        let category = kind.to_lowercase();
        let rule = self.config.retain.iter().find(|r| r.category == kind);
        for row in rows {
            // Listed under her person but naming another as its own: not hers (a sale she
            // is a stakeholder in is judged below).
            if kind != "Sales" && names_other_person(&row, person) {
                continue;
            }
            let own = kind != "Sales" || owned_sale(&row, person);
            let stakeholder = !own && row.flag("isStakeholderSale") == Some(true);
            let Some(record) = row.id() else {
                match (rule, own) {
                    (Some(rule), _) => tally(&mut plan.retained, &category, &rule.reason, &rule.legal_basis),
                    (None, true) => tally(
                        &mut plan.retained,
                        &category,
                        "SuperOffice listed them without a usable id, so dsr cannot delete them; an administrator must remove them by hand",
                        "not retained by choice: awaiting manual deletion",
                    ),
                    (None, false) => tally(
                        &mut plan.retained,
                        "sales (as stakeholder)",
                        "Sales she is only a stakeholder in, or whose own person SuperOffice did not confirm as hers, listed without a usable id",
                        "other persons' records: only the link to the subject is hers",
                    ),
                }
                continue;
            };
            let item = PlanItem::new(
                format!("{category} {record}"),
                category.clone(),
                Action::Delete,
                Target::DeleteRecord {
                    entity: entity.into(),
                    id: record,
                }
                .json(),
                found_under(person, Some(email), "record", json!(row)),
                found_via_claims(),
            );
            let item = if let Some(rule) = rule {
                keep(item, rule_reason(rule))
            } else if stakeholder {
                item.shared(STAKEHOLDER_SALE).reason(STAKEHOLDER_NOTE)
            } else if !own {
                keep(item, UNCONFIRMED_SALE.into())
            } else {
                item
            };
            push_unique(&mut plan.items, item);
        }
    }
}

fn keep(mut item: PlanItem, reason: String) -> PlanItem {
    item.action = Action::Keep;
    item.target = serde_json::Value::Null;
    item.reason(reason)
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

    #[test]
    fn a_sale_under_two_of_her_persons_is_planned_once_as_hers() {
        let item = |shared: bool| {
            let i = PlanItem::new("sales 702", "sales", Action::Delete, json!({}), json!({}), vec![]);
            if shared { i.shared(STAKEHOLDER_SALE) } else { i }
        };
        let mut items = Vec::new();
        push_unique(&mut items, item(true));
        push_unique(&mut items, item(false));
        push_unique(&mut items, item(true));
        assert_eq!(items.len(), 1);
        assert!(items[0].shared.is_none());
    }
}
