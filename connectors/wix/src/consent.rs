//! Objection to direct marketing (Art. 21(2)): every one of the subject's addresses set to
//! `UNSUBSCRIBED` in Wix's e-mail marketing.

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, TaskContext};
use serde_json::json;

use crate::Wix;
use crate::wire::SubscriptionAnswer;

impl Wix {
    pub async fn unsubscribe(&self, ctx: &TaskContext, subject: &Identities) -> Result<ChangeReport, ConnectorError> {
        let mut report = ChangeReport {
            found: subject.emails.len() as u64,
            ..Default::default()
        };
        let mut done = Vec::new();
        for email in &subject.emails {
            if ctx.dry_run {
                continue;
            }
            let body = json!({"subscription": {"email": email.as_str(), "subscriptionStatus": "UNSUBSCRIBED"}});
            let answer: SubscriptionAnswer = self.post("/email-marketing/v1/email-subscriptions", &body).await?;
            done.push(answer.subscription);
            report.changed += 1;
        }
        report.evidence.push(Evidence {
            kind: "unsubscribed".into(),
            detail: json!({"subscriptions": done}),
        });
        Ok(report)
    }
}
