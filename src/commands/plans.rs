//! `dsr plan`, `dsr approve`, `dsr reject`: an operator looking at what a change will do at
//! each processor, and letting exactly that happen, or not.

use std::process::ExitCode;

use dsr_jobs::ledger::{StoredPlan, request_plan_hash, ts};
use dsr_jobs::model::RequestStatus;
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::CliError;
use crate::output::print_status;

/// Who approves or rejects when `--by` is not given: the OS user.
pub fn default_operator() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// With `[erasure] four_eyes`, whoever enters or approves on the command line is named by a
/// dashboard account (`dsr user add`) that is enabled and has at least `role`: four-eyes
/// compares people, and an account is a person where `$USER` may be a shared login.
/// `given` says whether the name came from `--by` (else it is the OS user's).
pub async fn four_eyes_account(
    config: &Config,
    ledger: &dsr_jobs::Ledger,
    name: &str,
    given: bool,
    role: dsr_jobs::model::Role,
) -> Result<(), CliError> {
    if !config.erasure.four_eyes {
        return Ok(());
    }
    let explain = "with [erasure] four_eyes = true, --by names a dashboard account, spelt as `dsr user list` shows it (dsr user add makes one)";
    let whose = if given {
        ""
    } else {
        " (the OS user: --by was not given)"
    };
    match ledger.operator(name).await? {
        None => Err(crate::error::bad_input(format!(
            "`{name}`{whose} is no account: {explain}"
        ))),
        Some(account) if account.disabled_at.is_some() => Err(crate::error::bad_input(format!(
            "the account `{name}` is disabled: {explain}"
        ))),
        Some(account) if account.role < role => Err(crate::error::bad_input(format!(
            "the account `{name}` is a {}; this takes an {role} account ({explain})",
            account.role
        ))),
        Some(_) => Ok(()),
    }
}

fn plan_json(p: &StoredPlan) -> Value {
    json!({
        "processor": p.processor.as_str(),
        "hash": p.hash,
        "made_at": ts(p.made_at),
        "approved_at": p.approved_at.map(ts),
        "approved_by": p.approved_by,
        "items": p.plan.items.iter().map(|i| json!({
            "key": i.key,
            "category": i.category,
            "action": i.action,
            "state": i.state,
            "claims": i.claims,
            "before": i.before,
            "after": i.after,
            "shared": i.shared,
            "reason": i.reason,
        })).collect::<Vec<_>>(),
        "retained": p.plan.retained,
        "notes": p.plan.notes,
        "operator_notes": p.plan.operator_notes,
        "verification": p.verification,
    })
}

fn short(v: &Option<Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The plans as text: every item, or (`brief`) the pending items counted by action and
/// category and only the rest listed (what is kept, refused or shared).
pub fn plan_text(request_id: &str, status: RequestStatus, hash: &str, plans: &[StoredPlan], brief: bool) -> String {
    let mut out = format!("request {request_id}: {status}\n");
    if plans.is_empty() {
        out.push_str("  no plan yet: plans are made when an erasure, rectification or objection runs\n");
        return out;
    }
    if status == RequestStatus::AwaitingApproval {
        out.push_str(&format!(
            "  plan {hash}\n  approve with `dsr approve {request_id} --plan {hash}`, or `dsr reject {request_id} --reason …`\n"
        ));
    }
    for p in plans {
        let approved = match (&p.approved_by, p.approved_at) {
            (Some(by), Some(at)) => format!(", approved by {by} at {}", ts(at)),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n{} — plan {} made {}{approved}\n",
            p.processor.display_name(),
            &p.hash,
            ts(p.made_at)
        ));
        if p.plan.items.is_empty() {
            out.push_str("  nothing found\n");
        }
        let mut counted: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
        for i in &p.plan.items {
            if brief && i.is_due() && i.shared.is_none() {
                *counted.entry((i.action.as_str(), i.category.as_str())).or_default() += 1;
                continue;
            }
            let mut line = format!(
                "  {:<11} {:<17} {:<18} {}",
                i.action.as_str(),
                i.state.as_str(),
                i.category,
                i.key
            );
            if i.before.is_some() || i.after.is_some() {
                line.push_str(&format!("  [{} → {}]", short(&i.before), short(&i.after)));
            }
            if let Some(s) = &i.shared {
                line.push_str(&format!("  (shared: {s})"));
            }
            match &i.state {
                dsr_connector::ItemState::NotHers { reason }
                | dsr_connector::ItemState::Retained { reason }
                | dsr_connector::ItemState::RefusedByVendor { reason } => line.push_str(&format!("  — {reason}")),
                _ => {}
            }
            out.push_str(&line);
            out.push('\n');
        }
        for ((action, category), n) in counted {
            out.push_str(&format!(
                "  {action:<11} {:<17} {category:<18} {n} item(s)\n",
                "pending"
            ));
        }
        for r in &p.plan.retained {
            out.push_str(&format!("  retained    {} × {}: {}\n", r.count, r.category, r.reason));
        }
        for n in &p.plan.operator_notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        if let Some(v) = &p.verification {
            out.push_str(&format!(
                "  verification: planning again found {} item(s) still to change{}\n",
                v.remaining.len(),
                if v.remaining.is_empty() {
                    String::new()
                } else {
                    format!(": {}", v.remaining.join(", "))
                }
            ));
        }
    }
    out
}

/// A request's plans as `dsr plan --json` prints them, with the hash to approve.
pub async fn plan_doc(ledger: &dsr_jobs::Ledger, id: &str) -> Result<Value, CliError> {
    let request = ledger.get_request(id).await?;
    let plans = if request.status == RequestStatus::AwaitingApproval {
        ledger.plans_awaiting(id).await?
    } else {
        ledger.plans(id).await?
    };
    let hash = request_plan_hash(&plans);
    Ok(json!({
        "request_id": id,
        "kind": request.kind.as_str(),
        "status": request.status.as_str(),
        "dry_run": request.dry_run,
        "plan": if plans.is_empty() { Value::Null } else { json!(hash) },
        "awaiting_approval": request.status == RequestStatus::AwaitingApproval,
        "processors": plans.iter().map(plan_json).collect::<Vec<_>>(),
    }))
}

pub async fn show(config: &Config, id: &str, as_json: bool) -> Result<ExitCode, CliError> {
    let ledger = crate::wiring::ledger(config).await?;
    if as_json {
        println!("{}", plan_doc(&ledger, id).await?);
        return Ok(ExitCode::SUCCESS);
    }
    let request = ledger.get_request(id).await?;
    let plans = if request.status == RequestStatus::AwaitingApproval {
        ledger.plans_awaiting(id).await?
    } else {
        ledger.plans(id).await?
    };
    let hash = request_plan_hash(&plans);
    {
        print!("{}", plan_text(id, request.status, &hash, &plans, false));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn approve(
    config: &Config,
    id: &str,
    plan: &str,
    by: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, CliError> {
    let given = by.is_some();
    let by = by.map(str::to_string).unwrap_or_else(default_operator);
    let engine = crate::wiring::engine(config).await?;
    four_eyes_account(config, engine.ledger(), &by, given, dsr_jobs::model::Role::Approver).await?;
    let approved = engine.ledger().approve(id, plan, &by, config.erasure.four_eyes).await?;
    if !engine.queue_tasks_or_sweep(id, &approved).await {
        eprintln!("warning: the queue did not answer: the approval stands and the recovery sweep queues the work");
    }
    if !as_json {
        let names: Vec<_> = approved.iter().map(|p| p.as_str()).collect();
        eprintln!(
            "approved by {by}; executing at {}: a running worker carries it out",
            names.join(", ")
        );
    }
    print_status(engine.ledger(), id, as_json).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn reject(
    config: &Config,
    id: &str,
    reason: &str,
    by: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, CliError> {
    let given = by.is_some();
    let by = by.map(str::to_string).unwrap_or_else(default_operator);
    let ledger = crate::wiring::ledger(config).await?;
    four_eyes_account(config, &ledger, &by, given, dsr_jobs::model::Role::Approver).await?;
    ledger.reject(id, reason, &by).await?;
    if !as_json {
        eprintln!("rejected by {by}: the plans waiting for approval will not be executed");
    }
    print_status(&ledger, id, as_json).await?;
    Ok(ExitCode::SUCCESS)
}
