//! Erasing the subject's traces on the website (Art. 17), in the order Wix requires:
//! submissions, then comments (deleting a member hands its content to the site owner), then
//! the member, then the contact (Wix refuses, 428, to delete a contact that is still a
//! member). Contacts v4 deletes permanently: there is no trash to wait for (the 90-day trash
//! belongs to Contacts v5, a developer preview dsr does not use).
//!
//! What Wix refuses to delete (a contact with a billing subscription, the site owner or a
//! contributor) is reported per item as retained with Wix's reason, never as failed after the
//! rest was already deleted.
//! - https://dev.wix.com/docs/rest/crm/members-contacts/contacts/contacts/contact-v4/delete-contact
//! - https://dev.wix.com/docs/api-reference/crm/members-contacts/members/member-management/members/delete-member

use dsr_connector::{ChangeReport, ConnectorError, Evidence, Identities, MatchClaim, Retained, TaskContext};
use serde_json::{Value, json};

use crate::Wix;
use crate::access::{COMMENT_CLAIM, Found, contact_claims, member_claims, submission_claims, submitted_by_subject};

/// One kind of item to delete: its category, its ids and its delete path.
type Step<'a> = (&'static str, &'a Vec<String>, fn(&str) -> String);

fn ids<T>(items: &[Found<T>], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| id(&i.view).to_string()).collect()
}

/// Wix's documented refusal of one item (a 428 precondition, or the owner/contributor and
/// active-subscription rules on deleting a member): its code and words. Any other error is
/// an error, not a retention.
fn refusal(error: &ConnectorError) -> Option<String> {
    match error {
        ConnectorError::Permanent { code, message, .. }
            if code.starts_with("428") || (code.starts_with("400") && message.contains("MEMBER_DELETE_FORBIDDEN")) =>
        {
            Some(format!("{message} ({code})"))
        }
        _ => None,
    }
}

impl Wix {
    pub async fn erase_subject(&self, ctx: &TaskContext, subject: &Identities) -> Result<ChangeReport, ConnectorError> {
        let held = self.holdings(subject).await?;
        // A form someone else sent that names her is theirs too: not deleted whole here, but
        // reported for the company to redact.
        let (contact_ids, member_ids) = held.sender_ids();
        let (own, shared): (Vec<_>, Vec<_>) = held
            .submissions
            .iter()
            .partition(|s| submitted_by_subject(s, subject, &contact_ids, &member_ids));
        let submissions: Vec<String> = own.iter().map(|s| s.view.id.clone()).collect();
        let comments = ids(&held.comments, |c| &c.id);
        let members = ids(&held.members, |m| &m.id);
        let contacts = ids(&held.contacts, |c| &c.id);
        let mut report = ChangeReport {
            found: (held.submissions.len() + members.len() + comments.len() + contacts.len()) as u64,
            ..Default::default()
        };
        if !shared.is_empty() {
            report.retained.push(Retained {
                category: "form_submissions".into(),
                count: shared.len() as u64,
                reason: format!(
                    "Sent by other people and naming the subject ({}): deleting them would erase the senders' data too. \
                     The company removes her details from them in the Wix dashboard (Forms & Submissions).",
                    shared.iter().map(|s| s.view.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
                legal_basis: "other people's records: only her details in them are hers".into(),
            });
        }
        if ctx.dry_run {
            report.evidence.push(Evidence {
                kind: "would_delete".into(),
                detail: json!({"form_submissions": submissions, "comments": comments, "members": members, "contacts": contacts}),
            });
            return Ok(report);
        }
        // The engine's guard, item by item: each item as Wix returned it, and its claim.
        let mut guard: std::collections::HashMap<String, (Value, Vec<MatchClaim>)> = std::collections::HashMap::new();
        for s in &held.submissions {
            guard.insert(s.view.id.clone(), (s.raw.clone(), submission_claims(s, subject)));
        }
        for c in &held.comments {
            guard.insert(
                c.view.id.clone(),
                (c.raw.clone(), vec![MatchClaim::email(COMMENT_CLAIM)]),
            );
        }
        for m in &held.members {
            guard.insert(m.view.id.clone(), (m.raw.clone(), member_claims(m, subject)));
        }
        for c in &held.contacts {
            guard.insert(c.view.id.clone(), (c.raw.clone(), contact_claims(c, subject)));
        }
        for (category, id, raw) in &held.others {
            ctx.permit(subject, &format!("{category} {id}"), raw, &[]);
        }
        let mut deleted: Vec<Value> = Vec::new();
        let mut kept: Vec<(&str, String, String)> = Vec::new();
        let steps: [Step; 4] = [
            ("form_submissions", &submissions, |id| {
                format!("/form-submission-service/v4/submissions/{id}?permanent=true")
            }),
            ("comments", &comments, |id| format!("/comments/v1/comments/{id}")),
            ("members", &members, |id| format!("/members/v1/members/{id}")),
            ("contacts", &contacts, |id| format!("/contacts/v4/contacts/{id}")),
        ];
        for (category, items, path) in steps {
            for id in items {
                let (data, claims) = guard.get(id).cloned().unwrap_or_default();
                if !ctx.permit(subject, &format!("{category} {id}"), &data, &claims) {
                    continue;
                }
                let path = path(&urlencoding::encode(id));
                match self.remove(&path).await {
                    Ok(_) => {
                        report.changed += 1;
                        deleted.push(json!({"category": category, "id": id}));
                    }
                    Err(e) => match refusal(&e) {
                        Some(why) => kept.push((category, id.clone(), why)),
                        None => return Err(e),
                    },
                }
            }
        }
        for (category, id, why) in &kept {
            report.retained.push(Retained {
                category: (*category).into(),
                count: 1,
                reason: format!("Wix refused to delete {category} {id}: {why}"),
                legal_basis: "kept by Wix until its condition is met (cancel the subscription, or remove the role, then erase again)".into(),
            });
        }
        report.evidence.push(Evidence {
            kind: "wix_deletions".into(),
            detail: json!({"deleted": deleted, "refused": kept.iter().map(|(c, id, why)| json!({"category": c, "id": id, "reason": why})).collect::<Vec<_>>()}),
        });
        let again = self.holdings(subject).await?;
        let refused = |id: &str| kept.iter().any(|(_, k, _)| k == id) || shared.iter().any(|s| s.view.id == id);
        let left = again.submissions.iter().filter(|s| !refused(&s.view.id)).count()
            + again.comments.iter().filter(|c| !refused(&c.view.id)).count()
            + again.members.iter().filter(|m| !refused(&m.view.id)).count()
            + again.contacts.iter().filter(|c| !refused(&c.view.id)).count();
        report.evidence.push(Evidence {
            kind: "verification_search".into(),
            detail: json!({"remaining": left, "retained": kept.len()}),
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
            report
                .notes
                .push("Wix deletes contacts permanently (Contacts API v4): nothing waits in a trash.".into());
        }
        Ok(report)
    }
}
