//! An erasure, rectification or objection at one processor: the connector plans, the
//! matching rule checks every item, the ledger stores the plan (its hash in the audit chain),
//! an operator approves it when the company requires that, and the checked items are
//! executed one call at a time, each outcome stored as it happens. Planning again is the
//! verification. A dry run stops after the plan: the preview is the plan.

use std::collections::{BTreeMap, BTreeSet};

use dsr_connector::plan::{ExecuteError, execute_plan, verify};
use dsr_connector::{
    Change, Connector, ConnectorError, ItemState, Plan, PlanRules, Processor, Retained, SharedPolicy, TaskContext,
    Verification, check_plan,
};
use serde_json::{Value, json};

use crate::engine::{Engine, EngineError};
use crate::ledger::{Claim, StoredPlan, TaskError, TaskResult};
use crate::model::{Lang, Outcome, Request, RequestKind};

/// The company's rules for changes: which kinds wait for approval, and what happens to
/// items that also concern other people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRules {
    /// Kinds whose plans wait for `dsr approve` (`[erasure] approval = "required"` …).
    pub approval: BTreeSet<RequestKind>,
    /// `[erasure] shared`: the default for every processor.
    pub shared: SharedPolicy,
    /// `[processors.X] shared`, where set.
    pub shared_by_processor: BTreeMap<Processor, SharedPolicy>,
    /// `[erasure] shared_reason`, in bokmål and English.
    pub shared_reason_nb: String,
    pub shared_reason_en: String,
}

pub const SHARED_REASON_NB: &str = "Gjelder også andre personer (f.eks. en e-post med flere deltakere eller et skjema en annen har sendt): \
     beholdt fordi sletting også ville fjerne deres opplysninger. Dine opplysninger i dem kan rettes eller fjernes manuelt på forespørsel.";
pub const SHARED_REASON_EN: &str = "Also concerns other people (e.g. a message with other participants, or a form someone else sent): \
     kept because deleting it would remove their data too. Your details in it can be corrected or removed by hand on request.";

impl Default for ChangeRules {
    fn default() -> Self {
        ChangeRules {
            approval: BTreeSet::new(),
            shared: SharedPolicy::Retain,
            shared_by_processor: BTreeMap::new(),
            shared_reason_nb: SHARED_REASON_NB.into(),
            shared_reason_en: SHARED_REASON_EN.into(),
        }
    }
}

impl ChangeRules {
    /// The rules one plan is checked with.
    pub fn plan_rules(&self, processor: Processor, lang: Lang) -> PlanRules {
        PlanRules {
            shared: self.shared_by_processor.get(&processor).copied().unwrap_or(self.shared),
            shared_reason: match lang {
                Lang::Nb => self.shared_reason_nb.clone(),
                Lang::En => self.shared_reason_en.clone(),
            },
        }
    }

    pub fn needs_approval(&self, kind: RequestKind) -> bool {
        self.approval.contains(&kind)
    }
}

/// What the request asks of the connector.
pub fn change_of(request: &Request) -> Option<Change> {
    match request.kind {
        RequestKind::Erasure => Some(Change::Erasure),
        RequestKind::Rectification => Some(Change::Rectification {
            changes: request.changes.clone(),
        }),
        RequestKind::Objection => Some(Change::Objection),
        RequestKind::Access | RequestKind::Portability => None,
    }
}

/// How a change task ended this attempt: a result to record, a vendor error to classify,
/// or a verification to repeat later (the vendor has not caught up with what was done).
pub enum Step {
    Result(TaskResult),
    Vendor(ConnectorError),
    Lagging(TaskError),
}

/// Why an execution stopped recording.
enum Stop {
    /// The task was cancelled or taken over by another worker.
    Lost,
    Ledger(crate::LedgerError),
}

fn join(keys: &[&String]) -> String {
    keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
}

/// Runs one change task attempt: plan (unless a plan is stored), stop for approval or
/// preview, execute what is due, verify.
pub async fn run(
    engine: &Engine,
    request: &Request,
    processor: Processor,
    connector: &dyn Connector,
    claim: Claim,
    ctx: &TaskContext,
) -> Result<Step, EngineError> {
    let Some(change) = change_of(request) else {
        return Err(EngineError::NotAChange(request.kind));
    };
    let ledger = engine.ledger();
    let rules = engine.settings().changes.plan_rules(processor, request.lang);
    let subject = &request.identities;
    let stored = match ledger.current_plan(&request.id, processor).await? {
        Some(stored) => stored,
        None => {
            let mut plan = match connector.plan(ctx, subject, &change).await {
                Ok(plan) => plan,
                Err(e) => return Ok(Step::Vendor(e)),
            };
            check_plan(subject, &mut plan, &rules);
            let owner = engine.worker_name();
            match ledger
                .store_plan(&request.id, processor, owner, claim, &plan, engine.now())
                .await?
            {
                Some(stored) => {
                    tracing::info!(request = %request.id, %processor, plan = %stored.hash, items = plan.items.len(), "plan made");
                    stored
                }
                // Another worker took the task over; it plans for itself.
                None => return Ok(Step::Result(lost(engine))),
            }
        }
    };
    if request.dry_run {
        return Ok(Step::Result(succeeded(&stored, None, change == Change::Erasure)));
    }
    let needs_approval = engine.settings().changes.needs_approval(request.kind) || request.approval_required;
    if needs_approval && stored.approved_at.is_none() {
        return Ok(Step::Result(TaskResult::Planned {
            found: stored.plan.found(),
        }));
    }
    let mut stored = stored;
    let hash = stored.hash.clone();
    let owner = engine.worker_name().to_string();
    let executed = execute_plan(connector, ctx, subject, &change, &mut stored.plan, |seq, state| {
        let (ledger, hash, owner) = (ledger.clone(), hash.clone(), owner.clone());
        async move {
            match ledger.record_item(&hash, seq, &state, &owner, claim).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Stop::Lost),
                Err(e) => Err(Stop::Ledger(e)),
            }
        }
    })
    .await;
    match executed {
        Ok(()) => {}
        Err(ExecuteError::Vendor(e)) => return Ok(Step::Vendor(e)),
        Err(ExecuteError::Record(Stop::Lost)) => {
            tracing::warn!(request = %request.id, %processor, "the task was cancelled or taken over; stopped executing its plan");
            return Ok(Step::Result(lost(engine)));
        }
        Err(ExecuteError::Record(Stop::Ledger(e))) => return Err(e.into()),
    }
    let verification = match verify(connector, ctx, subject, &change, &stored.plan, &rules).await {
        Ok(v) => v,
        Err(e) => return Ok(Step::Vendor(e)),
    };
    ledger.record_verification(&hash, &verification).await?;
    if !verification.remaining.is_empty() {
        tracing::warn!(request = %request.id, %processor, remaining = verification.remaining.len(), "items still due after execution");
        return Ok(still_due(&stored.plan, &verification.remaining, &request.id, processor));
    }
    Ok(Step::Result(succeeded(
        &stored,
        Some(&verification),
        change == Change::Erasure,
    )))
}

/// What items still due after execution make of the task: each was done, yet the vendor's
/// search still shows it (Graph's search index and Google's contact lists lag behind
/// deletes), so look again later without executing anything again; or the search finds
/// items the plan did not hold, which were not changed, so the task fails for the operator.
fn still_due(plan: &Plan, remaining: &[String], id: &str, processor: Processor) -> Step {
    let executed = |key: &String| {
        plan.items
            .iter()
            .any(|i| &i.key == key && matches!(i.state, ItemState::Done { .. } | ItemState::AlreadyGone))
    };
    let (lagging, new): (Vec<&String>, Vec<&String>) = remaining.iter().partition(|k| executed(k));
    if new.is_empty() {
        return Step::Lagging(TaskError::new(
            "retry_later:verification_lagging",
            format!(
                "verification: {} item(s) done but still found by the vendor's search ({}); looking again later",
                lagging.len(),
                join(&lagging)
            ),
        ));
    }
    Step::Result(TaskResult::Failed {
        error: TaskError::new(
            "permanent:verification_found_more",
            format!(
                "verification: planning again after execution finds {} item(s) the plan did not hold ({}){}; they were \
                 not changed. `dsr plan {id}` shows the plan; `dsr retry {id} --processor {processor}` plans anew",
                new.len(),
                join(&new),
                if lagging.is_empty() {
                    String::new()
                } else {
                    format!(" and {} done item(s) still found ({})", lagging.len(), join(&lagging))
                },
            ),
        ),
    })
}

/// A result that `finish_task` will not record (the claim is gone).
fn lost(engine: &Engine) -> TaskResult {
    TaskResult::Retrying {
        error: TaskError::new("lost_claim", "another worker took this task over"),
        next_retry_at: engine.now(),
    }
}

/// The task's result from its plan (executed, or a preview) and verification.
pub fn succeeded(stored: &StoredPlan, verification: Option<&Verification>, erasure: bool) -> TaskResult {
    let plan = &stored.plan;
    let retained = retained(plan, erasure);
    let changed = (plan.count("done") + plan.count("already_gone")) as u64;
    let found = plan.found();
    let outcome = if !retained.is_empty() {
        Outcome::PartlyRetained
    } else if found == 0 {
        Outcome::NothingFound
    } else {
        Outcome::Done
    };
    let refused: Vec<Value> = plan
        .items
        .iter()
        .filter_map(|i| match &i.state {
            ItemState::NotHers { reason } => Some(json!({"item": i.key, "reason": reason})),
            _ => None,
        })
        .collect();
    let mut evidence = vec![json!({"kind": "plan", "detail": plan_view(stored)})];
    if let Some(v) = verification {
        evidence.push(json!({"kind": "verification_search", "detail": {"remaining": v.remaining.len()}}));
    }
    TaskResult::Succeeded {
        outcome,
        found,
        changed,
        reason: None,
        evidence: json!({
            "plan": stored.hash,
            "evidence": evidence,
            "items": items_view(stored, verification),
            "retained": retained,
            "notes": plan.notes,
            "operator_notes": plan.operator_notes,
            "refused": refused,
        }),
        spool: None,
    }
}

/// What was kept: categories the vendor cannot change, and items kept by rule (shared,
/// or refused by the vendor), grouped by category and reason.
fn retained(plan: &Plan, erasure: bool) -> Vec<Retained> {
    let mut out = plan.retained.clone();
    let mut groups: BTreeMap<(String, String, &'static str), u64> = BTreeMap::new();
    for item in &plan.items {
        let (reason, basis) = match &item.state {
            ItemState::Retained { reason } if item.shared.is_some() => (
                reason.clone(),
                "other people's data: kept by the company's rule for shared items",
            ),
            ItemState::RefusedByVendor { reason } => (
                reason.clone(),
                if erasure {
                    "kept by the processor until its condition is met; erase again once it is"
                } else {
                    "refused by the processor; the request can be made again once its condition is met"
                },
            ),
            _ => continue,
        };
        *groups.entry((item.category.clone(), reason, basis)).or_default() += 1;
    }
    for ((category, reason, basis), count) in groups {
        out.push(Retained {
            category,
            count,
            reason,
            legal_basis: basis.into(),
        });
    }
    out
}

/// Each item as the operator and the subject see it: what it is, what was planned, what
/// happened; values before and after where the change has them.
fn items_view(stored: &StoredPlan, verification: Option<&Verification>) -> Vec<Value> {
    stored
        .plan
        .items
        .iter()
        .map(|i| {
            let mut v = json!({
                "key": i.key,
                "category": i.category,
                "action": i.action,
                "state": i.state.as_str(),
            });
            if let Some(b) = &i.before {
                v["before"] = b.clone();
            }
            if let Some(a) = verification.and_then(|v| v.after.get(&i.key)).or(i.after.as_ref()) {
                v["after"] = a.clone();
            }
            if let Some(s) = &i.shared {
                v["shared"] = json!(s);
            }
            match &i.state {
                ItemState::NotHers { reason }
                | ItemState::Retained { reason }
                | ItemState::RefusedByVendor { reason } => v["reason"] = json!(reason),
                _ => {
                    if let Some(r) = &i.reason {
                        v["reason"] = json!(r)
                    }
                }
            }
            v
        })
        .collect()
}

/// The plan's summary for the evidence list.
fn plan_view(stored: &StoredPlan) -> Value {
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &stored.plan.items {
        *by_state.entry(item.state.as_str()).or_default() += 1;
    }
    json!({
        "hash": stored.hash,
        "made_at": crate::ledger::ts(stored.made_at),
        "items": stored.plan.items.len(),
        "by_state": by_state,
        "approved_by": stored.approved_by,
        "approved_at": stored.approved_at.map(crate::ledger::ts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_processor_setting_overrides_the_default_and_the_reason_follows_the_language() {
        let mut rules = ChangeRules::default();
        rules.shared_by_processor.insert(Processor::Wix, SharedPolicy::Delete);
        assert_eq!(rules.plan_rules(Processor::Wix, Lang::En).shared, SharedPolicy::Delete);
        assert_eq!(
            rules.plan_rules(Processor::Google, Lang::En).shared,
            SharedPolicy::Retain
        );
        assert!(
            rules
                .plan_rules(Processor::Google, Lang::Nb)
                .shared_reason
                .starts_with("Gjelder")
        );
        assert!(!rules.needs_approval(RequestKind::Erasure));
    }

    #[test]
    fn items_still_found_after_execution_wait_when_done_and_fail_when_new() {
        let mut plan = Plan::default();
        for key in ["contacts/1", "contacts/2"] {
            let mut item = dsr_connector::PlanItem::new(
                key,
                "contacts",
                dsr_connector::Action::Delete,
                json!({"id": key}),
                json!({}),
                vec![],
            );
            item.state = ItemState::Done { receipt: Value::Null };
            plan.items.push(item);
        }
        let lagging = still_due(&plan, &["contacts/2".into()], "r1", Processor::Wix);
        match lagging {
            Step::Lagging(error) => {
                assert_eq!(error.code, "retry_later:verification_lagging");
                assert!(error.text.contains("1 item(s) done but still found"), "{error}");
            }
            _ => panic!("a done item still found waits for the vendor's search"),
        }
        let new = still_due(&plan, &["contacts/2".into(), "contacts/9".into()], "r1", Processor::Wix);
        match new {
            Step::Result(TaskResult::Failed { error }) => {
                assert_eq!(error.code, "permanent:verification_found_more");
                assert!(
                    error
                        .text
                        .contains("1 item(s) the plan did not hold (contacts/9) and 1 done item(s) still found")
                        && error.text.contains("dsr retry r1 --processor wix"),
                    "{error}"
                );
            }
            _ => panic!("an item the plan did not hold fails the task"),
        }
    }
}
