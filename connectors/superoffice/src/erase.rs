//! Erasing the subject's persons and the related records the company may delete (Art. 17);
//! what it keeps, or SuperOffice will not delete, is reported as retained — never as erased.

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, Retained, TaskContext};
use serde_json::{Value, json};

use crate::SuperOffice;
use crate::config::RELATED;

/// The id field and delete path of each related kind.
fn item_path(kind: &str, item: &Value) -> Option<String> {
    let (singular, key) = match kind {
        "Appointments" => ("Appointment", "AppointmentId"),
        "Documents" => ("Document", "DocumentId"),
        "Sales" => ("Sale", "SaleId"),
        "Tickets" => ("Ticket", "TicketId"),
        _ => return None,
    };
    item[key].as_i64().map(|id| format!("{singular}/{id}"))
}

impl SuperOffice {
    pub async fn erase_subject(&self, ctx: &TaskContext, subject: &Identities) -> Result<ChangeReport, ConnectorError> {
        let persons = self.find_persons(subject).await?;
        let mut report = ChangeReport::default();
        let mut deleted: Vec<Value> = Vec::new();
        for id in &persons {
            report.found += 1;
            for kind in RELATED {
                let items = self.related(*id, kind).await?;
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
        report.evidence.push(Evidence {
            kind: "superoffice_deletions".into(),
            detail: json!({"deleted": deleted}),
        });
        if !ctx.dry_run {
            let remaining = self.find_persons(subject).await?.len();
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
