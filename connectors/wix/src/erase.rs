//! Erasing the subject's traces on the website (Art. 17), in the order Wix requires:
//! submissions, then comments (deleting a member hands its content to the site owner), then
//! the member, then the contact (Wix refuses, 428, to delete a contact that is still a
//! member). The plan lists the items in that order and the engine executes them in plan
//! order. Contacts v4 deletes permanently: there is no trash to wait for (the 90-day trash
//! belongs to Contacts v5, a developer preview dsr does not use).
//!
//! What Wix refuses to delete (a contact with a billing subscription, the site owner or a
//! contributor) is that item's `RefusedByVendor` with Wix's reason, never a failure after the
//! rest was already deleted.
//! - https://dev.wix.com/docs/rest/crm/members-contacts/contacts/contacts/contact-v4/delete-contact
//! - https://dev.wix.com/docs/api-reference/crm/members-contacts/members/member-management/members/delete-member

use dsr_connector::http::path_segment;
use dsr_connector::{Action, ConnectorError, Identities, ItemCall, ItemOutcome, MatchClaim, Plan, PlanItem};
use serde_json::{Value, json};

use crate::Wix;
use crate::access::{COMMENT_CLAIM, contact_claims, member_claims, submission_claims, submitted_by_subject};
use crate::client::PROCESSOR;

/// How a form someone else sent that names her is marked (naming no one).
pub const SENT_BY_ANOTHER: &str = "sent by another person";

const SHARED_FORM: &str = "A form another person sent that names the subject: deleting it would erase the sender's data too. \
     Where it is kept, the company removes her details from it in the Wix dashboard (Forms & Submissions).";

const PERMANENT: &str = "Wix deletes contacts permanently (Contacts API v4): nothing waits in a trash.";

/// Wix's documented refusal of one item (a 428 precondition on deleting a contact, or 400
/// `OWNER_OR_CONTRIBUTOR_MEMBER_DELETE_FORBIDDEN` on deleting a member): its words, status
/// and code. Any other error is an error, not a refusal.
fn refusal(error: &ConnectorError) -> Option<String> {
    let ConnectorError::Permanent {
        status: Some(status),
        code,
        message,
        ..
    } = error
    else {
        return None;
    };
    let documented = *status == 428 || (*status == 400 && code.ends_with("MEMBER_DELETE_FORBIDDEN"));
    documented.then(|| format!("{message} ({status} {code})"))
}

/// The delete call for one item of a category (`None`: not a category dsr deletes), the id
/// one encoded path segment.
fn delete_path(category: &str, id: &str) -> Result<Option<String>, ConnectorError> {
    let id = path_segment(PROCESSOR, id)?;
    Ok(Some(match category {
        "form_submissions" => format!("/form-submission-service/v4/submissions/{id}?permanent=true"),
        "comments" => format!("/comments/v1/comments/{id}"),
        "members" => format!("/members/v1/members/{id}"),
        "contacts" => format!("/contacts/v4/contacts/{id}"),
        _ => return Ok(None),
    }))
}

fn delete_item(category: &'static str, id: &str, raw: &Value, claims: Vec<MatchClaim>) -> PlanItem {
    PlanItem::new(
        format!("{category} {id}"),
        category,
        Action::Delete,
        json!({"id": id}),
        raw.clone(),
        claims,
    )
}

/// A plan item that `execute` cannot carry out: the plan is not one this connector made.
pub(crate) fn foreign_item(item: &PlanItem) -> ConnectorError {
    let why = format!("({}) is not one Wix's connector plans", item.action.as_str());
    ConnectorError::foreign_item(PROCESSOR, item, &why)
}

impl Wix {
    /// One Delete item per submission, comment, member and contact found, in the order Wix
    /// requires; what the searches returned that is not hers is listed in its category with
    /// what it claims, for the engine to refuse.
    pub async fn plan_erasure(&self, subject: &Identities) -> Result<Plan, ConnectorError> {
        let held = self.holdings(subject).await?;
        let (contact_ids, member_ids) = held.sender_ids();
        let mut plan = Plan::default();
        for s in &held.submissions {
            let item = delete_item("form_submissions", &s.view.id, &s.raw, submission_claims(s, subject));
            // A form someone else sent that names her is theirs too: deleted only where the
            // company chose to (`shared = "delete"`).
            plan.items
                .push(if submitted_by_subject(s, subject, &contact_ids, &member_ids) {
                    item
                } else {
                    item.shared(SENT_BY_ANOTHER).reason(SHARED_FORM)
                });
        }
        let others = |plan: &mut Plan, category: &str| {
            for other in held.others.iter().filter(|o| o.category == category) {
                plan.items
                    .push(delete_item(other.category, &other.id, &other.raw, other.claims.clone()));
            }
        };
        for c in &held.comments {
            plan.items.push(delete_item(
                "comments",
                &c.view.id,
                &c.raw,
                vec![MatchClaim::email(COMMENT_CLAIM)],
            ));
        }
        others(&mut plan, "comments");
        for m in &held.members {
            plan.items
                .push(delete_item("members", &m.view.id, &m.raw, member_claims(m, subject)));
        }
        others(&mut plan, "members");
        for c in &held.contacts {
            plan.items
                .push(delete_item("contacts", &c.view.id, &c.raw, contact_claims(c, subject)));
        }
        others(&mut plan, "contacts");
        if !held.contacts.is_empty() {
            plan.notes.push(PERMANENT.into());
        }
        Ok(plan)
    }

    /// Deletes the one item: a 404 is gone already, Wix's documented refusal is the item's.
    pub async fn erase_item(&self, ItemCall { item, .. }: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
        let id = item.target["id"].as_str().filter(|_| item.action == Action::Delete);
        let Some(id) = id else {
            return Err(foreign_item(item));
        };
        let Some(path) = delete_path(&item.category, id)? else {
            return Err(foreign_item(item));
        };
        match self.api.remove(&path).await {
            Ok(true) => Ok(ItemOutcome::Done(json!({"deleted": id}))),
            Ok(false) => Ok(ItemOutcome::AlreadyGone),
            Err(e) => match refusal(&e) {
                Some(why) => Ok(ItemOutcome::RefusedByVendor(format!(
                    "Wix refused to delete {} {id}: {why}. Kept by Wix until its condition is met \
                     (cancel the subscription, or remove the role, then erase again).",
                    item.category
                ))),
                None => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, code: &str) -> ConnectorError {
        ConnectorError::Permanent {
            processor: PROCESSOR,
            status: Some(status),
            code: code.into(),
            message: "Wix's words".into(),
            said: None,
        }
    }

    #[test]
    fn only_wixs_documented_refusals_are_the_items_own() {
        let why = refusal(&answered(428, "CANNOT_DELETE_CONTACT_WITH_BILLING_SUBSCRIPTION"));
        assert_eq!(
            why.as_deref(),
            Some("Wix's words (428 CANNOT_DELETE_CONTACT_WITH_BILLING_SUBSCRIPTION)")
        );
        assert!(refusal(&answered(400, "OWNER_OR_CONTRIBUTOR_MEMBER_DELETE_FORBIDDEN")).is_some());
        assert!(
            refusal(&answered(400, "VALIDATION")).is_none(),
            "another bad request is an error"
        );
        assert!(refusal(&answered(403, "MEMBER_DELETE_FORBIDDEN")).is_none());
        let unanswered = ConnectorError::permanent(PROCESSOR, "MEMBER_DELETE_FORBIDDEN", "no status");
        assert!(refusal(&unanswered).is_none(), "only Wix's answer can refuse");
    }
}
