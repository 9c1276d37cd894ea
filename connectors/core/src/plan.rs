//! A change as a stored object. Before an erasure, rectification or objection changes
//! anything, the connector lists what it *would* do (`Connector::plan`): one `PlanItem` per
//! vendor call, each with the match claim that makes it the subject's, its current value
//! where that matters, and a `shared` mark where it also concerns other people. The engine
//! checks every item with the matching rule (`check_plan`), decides what the rules keep
//! (shared items, `Keep` items), stores the plan and then has the connector carry out the
//! checked items one at a time (`Connector::execute`). Verification is planning again
//! (`verify`): what still needs doing afterwards is reported, never silently redone.
//!
//! The dry-run preview is the checked plan, unexecuted: there is no second code path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{ConnectorError, FieldChange, Identities, MatchClaim, Retained, Right, TaskContext, check_claims};

/// What a change request asks of a connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Art. 17: delete (or anonymise where the vendor allows no delete).
    Erasure,
    /// Art. 16: set these fields wherever the subject's records hold them.
    Rectification { changes: Vec<FieldChange> },
    /// Art. 7(3) and 21(2): withdraw consents, stop direct marketing.
    Objection,
}

impl Change {
    pub fn right(&self) -> Right {
        match self {
            Change::Erasure => Right::Erasure,
            Change::Rectification { .. } => Right::Rectification,
            Change::Objection => Right::Objection,
        }
    }
}

/// What one plan item does at the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Delete,
    /// Overwrite the subject's details where the vendor keeps the record itself.
    Anonymise,
    /// Withdraw a consent or end a subscription.
    Unsubscribe,
    /// Set fields (rectification).
    Patch,
    /// Found and left as it is: already right, or kept by the vendor's or the company's
    /// rule (`reason` says which). Listed so the plan shows everything that was found.
    Keep,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Anonymise => "anonymise",
            Action::Unsubscribe => "unsubscribe",
            Action::Patch => "patch",
            Action::Keep => "keep",
        }
    }
}

/// One call a change will make, as the connector planned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    /// Names the item at its vendor, the same in every plan made for the same item
    /// (`contacts c-ola-9`, `messages kari@example.no/AAMk…`); never its contents.
    pub key: String,
    /// The kind of record (`contacts`, `messages`, `form_submissions`, `consents`).
    pub category: String,
    pub action: Action,
    /// What `execute` needs to make the call (vendor ids, the mailbox, a version tag):
    /// the connector's own, opaque to the engine.
    #[serde(default)]
    pub target: Value,
    /// The item as the vendor returned it, for the engine's check of `claims`. Dropped
    /// once checked (`check_plan`): the stored plan keeps what matched, not the record.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// Where in `data` the subject's identifier sits.
    pub claims: Vec<MatchClaim>,
    /// The current value where it matters: the fields before a rectification, the consent
    /// before a withdrawal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value the call sets (rectification, objection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// Set when the item also concerns other people (a message with other participants, a
    /// form someone else sent naming her, a sale with other stakeholders): who, in words
    /// that name no one ("2 other participants").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
    /// Why a `Keep` item is kept (or a note on any item), for the operator and subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A request the vendor accepts and carries out later (Google Analytics' user
    /// deletion): planning again cannot see that it was made, so verification does not count
    /// it as remaining once its call succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub request: bool,
    /// Set by the engine's check (`check_plan`): what the item was found to be, and later
    /// what its call did.
    #[serde(default)]
    pub state: ItemState,
}

impl PlanItem {
    /// An item with no values before or after, not shared, not yet checked.
    pub fn new(
        key: impl Into<String>,
        category: impl Into<String>,
        action: Action,
        target: Value,
        data: Value,
        claims: Vec<MatchClaim>,
    ) -> PlanItem {
        PlanItem {
            key: key.into(),
            category: category.into(),
            action,
            target,
            data,
            claims,
            before: None,
            after: None,
            shared: None,
            reason: None,
            request: false,
            state: ItemState::Pending,
        }
    }

    /// Marks the item as a request the vendor carries out later (see `request`).
    pub fn request(mut self) -> PlanItem {
        self.request = true;
        self
    }

    pub fn before(mut self, value: Value) -> PlanItem {
        self.before = Some(value);
        self
    }

    pub fn after(mut self, value: Value) -> PlanItem {
        self.after = Some(value);
        self
    }

    pub fn shared(mut self, with: impl Into<String>) -> PlanItem {
        self.shared = Some(with.into());
        self
    }

    pub fn reason(mut self, why: impl Into<String>) -> PlanItem {
        self.reason = Some(why.into());
        self
    }

    /// Whether the engine will call the vendor for this item (checked, not kept by a rule,
    /// not done yet).
    pub fn is_due(&self) -> bool {
        self.state == ItemState::Pending && self.action != Action::Keep
    }
}

/// Where an item stands: checked, then carried out (or not, and why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ItemState {
    /// Not yet checked (straight from the connector), or checked and waiting for its call.
    #[default]
    Pending,
    /// The matching rule found it is not the subject's: never touched.
    NotHers { reason: String },
    /// Kept by rule: a `Keep` item, or a shared item under `shared = "retain"`.
    Retained { reason: String },
    /// The call succeeded; the vendor's receipt, where it gives one.
    Done {
        #[serde(default, skip_serializing_if = "Value::is_null")]
        receipt: Value,
    },
    /// The vendor no longer had it (404 on delete): gone all the same.
    AlreadyGone,
    /// The vendor refused this one item with a documented reason (Wix's 428 for a contact
    /// that is still a member): kept by the vendor until its condition is met.
    RefusedByVendor { reason: String },
}

impl ItemState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::NotHers { .. } => "not_hers",
            ItemState::Retained { .. } => "retained",
            ItemState::Done { .. } => "done",
            ItemState::AlreadyGone => "already_gone",
            ItemState::RefusedByVendor { .. } => "refused_by_vendor",
        }
    }

    /// Whether a re-delivered execution must leave the item alone.
    pub fn is_settled(&self) -> bool {
        !matches!(self, ItemState::Pending)
    }
}

/// What one `execute` call did.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    Done(Value),
    AlreadyGone,
    RefusedByVendor(String),
}

impl From<ItemOutcome> for ItemState {
    fn from(outcome: ItemOutcome) -> ItemState {
        match outcome {
            ItemOutcome::Done(receipt) => ItemState::Done { receipt },
            ItemOutcome::AlreadyGone => ItemState::AlreadyGone,
            ItemOutcome::RefusedByVendor(reason) => ItemState::RefusedByVendor { reason },
        }
    }
}

/// Everything a connector would do for one change at one processor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Plan {
    pub items: Vec<PlanItem>,
    /// Found and not changeable through the vendor's API at all (Google's other contacts):
    /// counted and explained, with no item to execute.
    pub retained: Vec<Retained>,
    /// Plain notes for the subject.
    pub notes: Vec<String>,
    /// For the operator only, as in `AccessSummary`.
    pub operator_notes: Vec<String>,
}

impl Plan {
    /// The plan's fingerprint: its items (keys, actions, states, values) and `made_at`, so
    /// that the same findings planned again at another time are another plan.
    pub fn hash(&self, made_at: &str) -> String {
        let mut digest = Sha256::new();
        digest.update(made_at.as_bytes());
        digest.update([0]);
        for item in &self.items {
            // Everything the approval stands for: which call (target), on what grounds
            // (claims), with which values.
            let line = serde_json::json!([
                item.key,
                item.category,
                item.action,
                item.target,
                item.claims,
                item.state,
                item.before,
                item.after,
                item.shared,
                item.request
            ]);
            digest.update(line.to_string().as_bytes());
            digest.update([0]);
        }
        hex::encode(digest.finalize())
    }

    /// How many items concern the subject (everything found except what the rule refused).
    pub fn found(&self) -> u64 {
        self.items
            .iter()
            .filter(|i| !matches!(i.state, ItemState::NotHers { .. }))
            .count() as u64
            + self.retained.iter().map(|r| r.count).sum::<u64>()
    }

    pub fn count(&self, state: &str) -> usize {
        self.items.iter().filter(|i| i.state.as_str() == state).count()
    }
}

/// What to do with items that also concern other people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedPolicy {
    /// Keep them (the default: an erasure cannot be undone; the company opts in to more).
    #[default]
    Retain,
    Delete,
}

/// The engine's rules for a plan: the shared-item policy of this processor and the reason
/// retained shared items are listed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanRules {
    pub shared: SharedPolicy,
    pub shared_reason: String,
}

impl PlanRules {
    /// Rules with `shared` and a plain reason (the engine sets the company's own text).
    pub fn new(shared: SharedPolicy) -> PlanRules {
        PlanRules {
            shared,
            shared_reason: "it also concerns other people".into(),
        }
    }
}

/// The engine's check of a fresh plan: each item is the subject's by its claims or is
/// marked `NotHers`; `Keep` items and, under `retain`, shared ones are `Retained`; the
/// vendor's record is then dropped (what matched stays in `claims`' place).
pub fn check_plan(subject: &Identities, plan: &mut Plan, rules: &PlanRules) {
    for item in &mut plan.items {
        item.state = match check_claims(subject, &item.data, &item.claims) {
            Err(refusal) => {
                tracing::warn!(item = %item.key, reason = %refusal, "refused to plan a change to an item that is not the subject's");
                // Someone else's values are neither kept nor shown: only the item's name and
                // why it was refused.
                item.before = None;
                item.after = None;
                item.reason = None;
                item.target = Value::Null;
                ItemState::NotHers {
                    reason: format!("not the subject's: {refusal}"),
                }
            }
            Ok(claim) => {
                let claim = claim.clone();
                item.claims = vec![claim];
                if item.action == Action::Keep {
                    ItemState::Retained {
                        reason: item.reason.clone().unwrap_or_else(|| "kept as it is".into()),
                    }
                } else if item.shared.is_some() && rules.shared == SharedPolicy::Retain {
                    ItemState::Retained {
                        reason: rules.shared_reason.clone(),
                    }
                } else {
                    ItemState::Pending
                }
            }
        };
        item.data = Value::Null;
    }
}

/// What planning again after execution found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Items the new plan would still change (keys): reported, not changed again.
    pub remaining: Vec<String>,
    /// Each executed item's value as the vendor now returns it (absent when gone).
    pub after: BTreeMap<String, Value>,
}

/// Verification is planning again: checks the new plan with the same rules, and compares.
pub async fn verify(
    connector: &dyn crate::Connector,
    ctx: &TaskContext,
    subject: &Identities,
    change: &Change,
    executed: &Plan,
    rules: &PlanRules,
) -> Result<Verification, ConnectorError> {
    let mut again = connector.plan(ctx, subject, change).await?;
    check_plan(subject, &mut again, rules);
    let mut verification = Verification::default();
    for item in &again.items {
        let was = executed.items.iter().find(|i| i.key == item.key);
        if let (Some(_), Some(now)) = (was, &item.before) {
            verification.after.insert(item.key.clone(), now.clone());
        }
        let refused_before = matches!(was.map(|w| &w.state), Some(ItemState::RefusedByVendor { .. }));
        let requested = item.request && matches!(was.map(|w| &w.state), Some(ItemState::Done { .. }));
        if item.is_due() && !refused_before && !requested {
            verification.remaining.push(item.key.clone());
        }
    }
    Ok(verification)
}

/// Carries out the due items one at a time, in plan order, calling `record` after each so
/// a re-delivered execution finds it done. Stops at the first error (the task retries; the
/// items done so far stay done).
pub async fn execute_plan<F, Fut, E>(
    connector: &dyn crate::Connector,
    ctx: &TaskContext,
    subject: &Identities,
    change: &Change,
    plan: &mut Plan,
    mut record: F,
) -> Result<(), ExecuteError<E>>
where
    F: FnMut(usize, ItemState) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    for seq in 0..plan.items.len() {
        if !plan.items[seq].is_due() {
            continue;
        }
        let call = crate::ItemCall {
            ctx,
            subject,
            change,
            item: &plan.items[seq],
        };
        let outcome = connector.execute(call).await.map_err(ExecuteError::Vendor)?;
        let state = ItemState::from(outcome);
        record(seq, state.clone()).await.map_err(ExecuteError::Record)?;
        plan.items[seq].state = state;
    }
    Ok(())
}

/// Why an execution stopped: the vendor, or recording the outcome.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E> {
    #[error(transparent)]
    Vendor(ConnectorError),
    #[error("could not record an item's outcome")]
    Record(E),
}

/// The plan, checked, executed and verified without a ledger: for tests and for tools that
/// drive one connector directly. The engine runs the same steps with each one stored.
pub async fn apply(
    connector: &dyn crate::Connector,
    ctx: &TaskContext,
    subject: &Identities,
    change: &Change,
    rules: &PlanRules,
) -> Result<Applied, ConnectorError> {
    let mut plan = connector.plan(ctx, subject, change).await?;
    check_plan(subject, &mut plan, rules);
    if ctx.dry_run {
        return Ok(Applied {
            plan,
            verification: None,
        });
    }
    execute_plan(connector, ctx, subject, change, &mut plan, |_, _| async {
        Ok::<(), std::convert::Infallible>(())
    })
    .await
    .map_err(|e| match e {
        ExecuteError::Vendor(e) => e,
        ExecuteError::Record(never) => match never {},
    })?;
    let verification = verify(connector, ctx, subject, change, &plan, rules).await?;
    Ok(Applied {
        plan,
        verification: Some(verification),
    })
}

/// A plan and, unless it was a dry run, its verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub plan: Plan,
    pub verification: Option<Verification>,
}

impl Applied {
    /// Items whose call succeeded (or found them already gone).
    pub fn changed(&self) -> usize {
        self.plan.count("done") + self.plan.count("already_gone")
    }

    /// The items of one category in one state, by key.
    pub fn keys(&self, category: &str, state: &str) -> Vec<&str> {
        self.plan
            .items
            .iter()
            .filter(|i| i.category == category && i.state.as_str() == state)
            .map(|i| i.key.as_str())
            .collect()
    }

    pub fn item(&self, key: &str) -> Option<&PlanItem> {
        self.plan.items.iter().find(|i| i.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Email, IdentityKind};
    use serde_json::json;

    fn kari() -> Identities {
        Identities {
            emails: vec![Email::parse("kari@example.no").unwrap()],
            ..Default::default()
        }
    }

    fn item(key: &str, email: &str) -> PlanItem {
        PlanItem::new(
            key,
            "contacts",
            Action::Delete,
            json!({"id": key}),
            json!({"email": email, "notes": "long record"}),
            vec![MatchClaim::email("/email")],
        )
    }

    #[test]
    fn the_check_refuses_others_retains_shared_and_drops_the_record() {
        let mut plan = Plan {
            items: vec![
                item("c-1", "kari@example.no"),
                item("c-2", "ola@example.no"),
                item("c-3", "KARI@example.no").shared("1 other participant"),
                item("c-4", "kari@example.no").reason("already right"),
            ],
            ..Default::default()
        };
        plan.items[3].action = Action::Keep;
        let rules = PlanRules {
            shared: SharedPolicy::Retain,
            shared_reason: "others' data too".into(),
        };
        check_plan(&kari(), &mut plan, &rules);
        let states: Vec<_> = plan.items.iter().map(|i| i.state.as_str()).collect();
        assert_eq!(states, ["pending", "not_hers", "retained", "retained"]);
        assert_eq!(
            plan.items[2].state,
            ItemState::Retained {
                reason: "others' data too".into()
            }
        );
        assert!(
            plan.items.iter().all(|i| i.data.is_null()),
            "vendor records are not stored"
        );
        assert_eq!(plan.items[1].target, Value::Null, "nothing of someone else's is kept");
        assert_eq!(
            plan.items[0].claims,
            vec![MatchClaim::new(IdentityKind::Email, "/email")]
        );
        assert_eq!(plan.found(), 3);

        let mut deleting = Plan {
            items: vec![item("c-3", "kari@example.no").shared("1 other participant")],
            ..Default::default()
        };
        check_plan(
            &kari(),
            &mut deleting,
            &PlanRules {
                shared: SharedPolicy::Delete,
                ..Default::default()
            },
        );
        assert!(deleting.items[0].is_due());
    }

    #[test]
    fn a_plan_made_again_later_has_another_hash() {
        let plan = Plan {
            items: vec![item("c-1", "kari@example.no")],
            ..Default::default()
        };
        assert_eq!(plan.hash("2026-12-02T10:00:00Z"), plan.hash("2026-12-02T10:00:00Z"));
        assert_ne!(plan.hash("2026-12-02T10:00:00Z"), plan.hash("2026-12-02T10:00:01Z"));
        let mut other = plan.clone();
        other.items[0].key = "c-2".into();
        assert_ne!(plan.hash("t"), other.hash("t"));
        let mut elsewhere = plan.clone();
        elsewhere.items[0].target = json!({"id": "c-9"});
        assert_ne!(
            plan.hash("t"),
            elsewhere.hash("t"),
            "the approved hash binds the call made"
        );
    }

    /// A vendor holding contacts by id; counts the calls that changed something.
    struct Vendor {
        held: std::sync::Mutex<Vec<(String, String)>>,
        deletes: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl crate::Connector for Vendor {
        fn processor(&self) -> crate::Processor {
            crate::Processor::Wix
        }
        fn capabilities(&self) -> crate::Capabilities {
            crate::Capabilities::all()
        }
        async fn check(&self) -> Result<crate::CheckReport, ConnectorError> {
            Ok(Default::default())
        }
        async fn access(
            &self,
            _: &TaskContext,
            _: &Identities,
            _: &mut dyn crate::RecordSink,
        ) -> Result<crate::AccessSummary, ConnectorError> {
            Ok(Default::default())
        }
        async fn plan(&self, _: &TaskContext, _: &Identities, _: &Change) -> Result<Plan, ConnectorError> {
            let held = self.held.lock().unwrap().clone();
            Ok(Plan {
                items: held.iter().map(|(id, email)| item(id, email)).collect(),
                ..Default::default()
            })
        }
        async fn execute(&self, call: crate::ItemCall<'_>) -> Result<ItemOutcome, ConnectorError> {
            let id = call.item.target["id"].as_str().unwrap_or_default().to_string();
            let mut held = self.held.lock().unwrap();
            let before = held.len();
            held.retain(|(i, _)| *i != id);
            if held.len() == before {
                return Ok(ItemOutcome::AlreadyGone);
            }
            self.deletes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(ItemOutcome::Done(json!({"deleted": id})))
        }
    }

    fn vendor() -> Vendor {
        Vendor {
            held: std::sync::Mutex::new(vec![
                ("c-1".into(), "kari@example.no".into()),
                ("c-2".into(), "ola@example.no".into()),
                ("c-3".into(), "kari@example.no".into()),
            ]),
            deletes: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_preview_is_the_plan_and_execution_verifies_by_planning_again() {
        let vendor = vendor();
        let rules = PlanRules::default();
        let preview = apply(
            &vendor,
            &TaskContext::new("r", 1, true),
            &kari(),
            &Change::Erasure,
            &rules,
        )
        .await
        .unwrap();
        assert_eq!(vendor.held.lock().unwrap().len(), 3, "a preview changes nothing");
        assert_eq!(preview.verification, None);
        let done = apply(
            &vendor,
            &TaskContext::new("r", 1, false),
            &kari(),
            &Change::Erasure,
            &rules,
        )
        .await
        .unwrap();
        let keys = |a: &Applied| a.plan.items.iter().map(|i| i.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&preview), keys(&done), "the preview lists what is executed");
        assert_eq!(done.keys("contacts", "done"), ["c-1", "c-3"]);
        assert_eq!(done.keys("contacts", "not_hers"), ["c-2"]);
        assert_eq!(done.changed(), 2);
        assert_eq!(done.verification.as_ref().unwrap().remaining, Vec::<String>::new());
        assert_eq!(
            *vendor.held.lock().unwrap(),
            vec![("c-2".to_string(), "ola@example.no".to_string())]
        );
    }

    #[tokio::test]
    async fn a_re_delivered_execution_skips_what_is_recorded_done() {
        let vendor = vendor();
        let ctx = TaskContext::new("r", 1, false);
        let mut plan = crate::Connector::plan(&vendor, &ctx, &kari(), &Change::Erasure)
            .await
            .unwrap();
        check_plan(&kari(), &mut plan, &PlanRules::default());
        let mut recorded = Vec::new();
        execute_plan(&vendor, &ctx, &kari(), &Change::Erasure, &mut plan, |seq, state| {
            recorded.push((seq, state));
            async { Ok::<(), ()>(()) }
        })
        .await
        .unwrap();
        assert_eq!(recorded.len(), 2);
        assert_eq!(vendor.deletes.load(std::sync::atomic::Ordering::SeqCst), 2);
        // The same stored plan delivered again: nothing is due, nothing is called.
        let mut calls = 0;
        execute_plan(&vendor, &ctx, &kari(), &Change::Erasure, &mut plan, |_, _| {
            calls += 1;
            async { Ok::<(), ()>(()) }
        })
        .await
        .unwrap();
        assert_eq!(calls, 0);
        assert_eq!(vendor.deletes.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
