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

/// Whether a row of `Person/{person}/Sales` is the person's own sale, not one she is only
/// a stakeholder in (SaleFilteredWithStakeholder: `isStakeholderSale`, and `personId` is the
/// sale's own person).
pub fn owned_sale(row: &ArchiveRow, person: i64) -> bool {
    !row.flag("isStakeholderSale").unwrap_or(false) && row.number("personId").is_none_or(|owner| owner == person)
}

impl SuperOffice {
    pub async fn erase_subject(&self, ctx: &TaskContext, subject: &Identities) -> Result<ChangeReport, ConnectorError> {
        let persons: Vec<i64> = self
            .own_persons(ctx, subject)
            .await?
            .iter()
            .map(|p| p.entity.person_id)
            .collect();
        let mut report = ChangeReport::default();
        let mut deleted: Vec<Value> = Vec::new();
        let mut stakeholder_in = 0u64;
        for id in &persons {
            report.found += 1;
            for kind in RELATED {
                let mut items = self.related(*id, kind).await?;
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
                for item in &items {
                    let Some(path) = item_path(kind, item) else { continue };
                    if ctx.dry_run {
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
                reason: "The subject is a stakeholder in these sales, which belong to other persons: they are not \
                         hers to delete. Remove her as a stakeholder in SuperOffice (the sale's Stakeholders tab)."
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
