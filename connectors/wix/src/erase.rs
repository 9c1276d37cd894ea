//! Erasing the subject's traces on the website (Art. 17), in the order Wix requires:
//! submissions and comments, then the member, then the contact (Wix refuses, 428, to delete a
//! contact that is still a member). Deleted contacts sit in Wix's trash for 90 days.

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, TaskContext};
use serde_json::{Value, json};

use crate::Wix;

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect()
}

impl Wix {
    pub async fn erase_subject(&self, ctx: &TaskContext, subject: &Identities) -> Result<ChangeReport, ConnectorError> {
        let submissions = ids(&self.find_submissions(subject).await?);
        let members = ids(&self.find_members(subject).await?);
        let comments = ids(&self.find_comments(&members).await?);
        let contacts = ids(&self.find_contacts(subject).await?);
        let mut report = ChangeReport {
            found: (submissions.len() + members.len() + comments.len() + contacts.len()) as u64,
            ..Default::default()
        };
        if ctx.dry_run {
            report.evidence.push(Evidence {
                kind: "would_delete".into(),
                detail: json!({"form_submissions": submissions, "comments": comments, "members": members, "contacts": contacts}),
            });
            return Ok(report);
        }
        for id in &submissions {
            self.remove(&format!("/form-submission-service/v4/submissions/{id}?permanent=true"))
                .await?;
        }
        for id in &comments {
            self.remove(&format!("/comments/v1/comments/{id}")).await?;
        }
        for id in &members {
            self.remove(&format!("/members/v1/members/{id}")).await?;
        }
        for id in &contacts {
            self.remove(&format!("/contacts/v4/contacts/{id}")).await?;
        }
        report.changed = report.found;
        report.evidence.push(Evidence {
            kind: "wix_deletions".into(),
            detail: json!({"form_submissions": submissions, "comments": comments, "members": members, "contacts": contacts}),
        });
        let left = self.find_submissions(subject).await?.len()
            + self.find_members(subject).await?.len()
            + self.find_contacts(subject).await?.len();
        report.evidence.push(Evidence {
            kind: "verification_search".into(),
            detail: json!({"remaining": left}),
        });
        if left > 0 {
            return Err(ConnectorError::RetryLater {
                processor: crate::client::PROCESSOR,
                code: "verification".into(),
                message: format!("{left} item(s) still found after erasure; erasing again"),
                after: None,
            });
        }
        if !contacts.is_empty() {
            let purge = chrono::Utc::now() + chrono::Duration::days(90);
            report.notes.push(format!(
                "Wix keeps deleted contacts in its trash for 90 days: {} contact(s) will be purged on {}.",
                contacts.len(),
                purge.format("%Y-%m-%d")
            ));
        }
        Ok(report)
    }
}
