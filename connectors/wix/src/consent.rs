//! Objection to direct marketing (Art. 21(2)): every one of the subject's addresses set to
//! `UNSUBSCRIBED` in Wix's e-mail marketing.
//!
//! The plan has one item per address: `Unsubscribe` with its current status (`before`, null
//! where Wix holds no subscription for it yet: the upsert records one as unsubscribed) and
//! `UNSUBSCRIBED` (`after`), or `Keep` when it is unsubscribed already. What the query
//! returned for other addresses is listed with its claim, for the engine to refuse.
//! - https://dev.wix.com/docs/rest/crm/communication/email-subscriptions/query-email-subscriptions

use dsr_connector::{Action, ConnectorError, Identities, ItemCall, ItemOutcome, MatchClaim, Plan, PlanItem};
use serde_json::{Value, json};

use crate::Wix;
use crate::erase::foreign_item;
use crate::wire::SubscriptionAnswer;

const UNSUBSCRIBED: &str = "UNSUBSCRIBED";

fn subscription_item(key: String, target: Value, data: Value) -> PlanItem {
    let status = data["subscriptionStatus"].clone();
    let item = PlanItem::new(
        key,
        "email_subscriptions",
        Action::Unsubscribe,
        target,
        data,
        vec![MatchClaim::email("/email")],
    )
    .before(json!({"subscriptionStatus": status}));
    if status == UNSUBSCRIBED {
        let mut item = item.reason("already unsubscribed");
        item.action = Action::Keep;
        item
    } else {
        item.after(json!({"subscriptionStatus": UNSUBSCRIBED}))
    }
}

impl Wix {
    pub async fn plan_objection(&self, subject: &Identities) -> Result<Plan, ConnectorError> {
        let mut found = self.subscriptions(subject).await?;
        let mut plan = Plan::default();
        for email in &subject.emails {
            let key = format!("email_subscriptions {}", email.as_str().to_lowercase());
            let held = found
                .iter()
                .position(|s| s["email"].as_str().is_some_and(|e| email.matches(e)));
            let data = match held {
                Some(at) => found.remove(at),
                // No subscription yet: the upsert records her address as unsubscribed.
                None => json!({"email": email.as_str(), "subscriptionStatus": null}),
            };
            plan.items
                .push(subscription_item(key, json!({"email": email.as_str()}), data));
        }
        // What the query returned for addresses that are not hers (a filter Wix ignored):
        // named by Wix's id, never by the address.
        for (n, other) in found.into_iter().enumerate() {
            let id = other["id"].as_str().map_or_else(|| format!("#{n}"), String::from);
            let key = format!("email_subscriptions {id}");
            plan.items
                .push(subscription_item(key, json!({"subscription": id}), other));
        }
        Ok(plan)
    }

    /// Upserts the address as `UNSUBSCRIBED`.
    pub async fn unsubscribe_item(&self, ItemCall { item, .. }: ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
        let (Some(email), Action::Unsubscribe) = (item.target["email"].as_str(), item.action) else {
            return Err(foreign_item(item));
        };
        let body = json!({"subscription": {"email": email, "subscriptionStatus": UNSUBSCRIBED}});
        let answer: SubscriptionAnswer = self.api.post("/email-marketing/v1/email-subscriptions", &body).await?;
        Ok(ItemOutcome::Done(answer.subscription))
    }
}
