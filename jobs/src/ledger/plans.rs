//! Stored change plans: made once per task (again only after `dsr retry`), each item's
//! outcome recorded as it happens, approved or rejected by an operator as a whole request.

use chrono::{DateTime, Utc};
use dsr_connector::{ItemState, Plan, PlanItem, Processor, Verification};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::rows::{parse, parse_opt_ts, parse_ts, ts};
use super::{Claim, Ledger, LedgerError, Result};
use crate::model::{RequestStatus, TaskStatus};

/// A plan as the ledger holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPlan {
    pub hash: String,
    pub processor: Processor,
    pub made_at: DateTime<Utc>,
    pub attempt: u32,
    pub plan: Plan,
    pub verification: Option<Verification>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
}

/// The hash an operator approves: over each processor's current plan hash, so a plan made
/// again at any processor makes it another request plan.
pub fn request_plan_hash(plans: &[StoredPlan]) -> String {
    let mut lines: Vec<String> = plans.iter().map(|p| format!("{}:{}", p.processor, p.hash)).collect();
    lines.sort();
    hex::encode(Sha256::digest(lines.join("\n").as_bytes()))
}

/// Whether two actors are one person for four-eyes approval: an operator's name on the
/// command line (`--by`, else the OS user) and their dashboard account (`dashboard:NAME`)
/// are one person when the names match (letter case aside); an API token (`token:NAME`) is
/// only itself.
pub fn same_person(a: &str, b: &str) -> bool {
    let person = |actor: &str| {
        let actor = actor.trim();
        actor.strip_prefix("dashboard:").unwrap_or(actor).trim().to_lowercase()
    };
    person(a) == person(b)
}

fn corrupt(e: serde_json::Error) -> LedgerError {
    LedgerError::Corrupt(format!("a stored plan: {e}"))
}

/// The plan without its items, as stored in `plans.body`.
fn body(plan: &Plan) -> Value {
    json!({"retained": plan.retained, "notes": plan.notes, "operator_notes": plan.operator_notes})
}

impl Ledger {
    /// Stores a checked plan for a task this worker holds (`claim`), superseding any earlier
    /// plan of the task, with its hash in the audit chain. None when the claim was lost.
    pub async fn store_plan(
        &self,
        id: &str,
        processor: Processor,
        owner: &str,
        claim: Claim,
        plan: &Plan,
        made_at: DateTime<Utc>,
    ) -> Result<Option<StoredPlan>> {
        let made = ts(made_at);
        // As stored (to the microsecond), so what this returns equals what is read back.
        let made_at = parse_ts(&made)?;
        let hash = plan.hash(&format!("{id}:{processor}:{made}"));
        let mut tx = self.pool.begin().await?;
        // A write first: SQLite cannot turn a read transaction into a write one while another
        // process writes, so the claim check is the transaction's first statement.
        let holds = sqlx::query(
            "UPDATE tasks SET updated_at = $5 WHERE request_id = $1 AND processor = $2 AND status = 'running' \
             AND lease_owner = $3 AND attempts = $4",
        )
        .bind(id)
        .bind(processor.as_str())
        .bind(owner)
        .bind(claim.attempt as i64)
        .bind(&made)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !holds {
            return Ok(None);
        }
        sqlx::query("UPDATE plans SET is_current = 0 WHERE request_id = $1 AND processor = $2")
            .bind(id)
            .bind(processor.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO plans (hash, request_id, processor, made_at, attempt, is_current, body) \
             VALUES ($1, $2, $3, $4, $5, 1, $6)",
        )
        .bind(&hash)
        .bind(id)
        .bind(processor.as_str())
        .bind(&made)
        .bind(claim.attempt as i64)
        .bind(body(plan).to_string())
        .execute(&mut *tx)
        .await?;
        for (seq, item) in plan.items.iter().enumerate() {
            sqlx::query("INSERT INTO plan_items (plan_hash, seq, item, state, updated_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&hash)
                .bind(seq as i64)
                .bind(serde_json::to_string(item).map_err(corrupt)?)
                .bind(serde_json::to_string(&item.state).map_err(corrupt)?)
                .bind(&made)
                .execute(&mut *tx)
                .await?;
        }
        let count = |state: &str| plan.count(state);
        self.insert_audit(
            &mut tx,
            Some(id),
            Some(processor),
            "plan.made",
            json!({"plan": hash, "attempt": claim.attempt, "items": plan.items.len(),
                   "due": plan.items.iter().filter(|i| i.is_due()).count(),
                   "retained": count("retained"), "not_hers": count("not_hers")}),
            Some(&format!("plan:{hash}")),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(StoredPlan {
            hash,
            processor,
            made_at,
            attempt: claim.attempt,
            plan: plan.clone(),
            verification: None,
            approved_at: None,
            approved_by: None,
        }))
    }

    /// A task's current plan, with each item's recorded state.
    pub async fn current_plan(&self, id: &str, processor: Processor) -> Result<Option<StoredPlan>> {
        let row = sqlx::query(
            "SELECT hash, processor, made_at, attempt, body, verification, approved_at, approved_by \
             FROM plans WHERE request_id = $1 AND processor = $2 AND is_current = 1",
        )
        .bind(id)
        .bind(processor.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.plan_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    /// Every current plan of a request, by processor.
    pub async fn plans(&self, id: &str) -> Result<Vec<StoredPlan>> {
        let rows = sqlx::query(
            "SELECT hash, processor, made_at, attempt, body, verification, approved_at, approved_by \
             FROM plans WHERE request_id = $1 AND is_current = 1 ORDER BY processor",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut plans = Vec::new();
        for row in &rows {
            plans.push(self.plan_from_row(row).await?);
        }
        Ok(plans)
    }

    async fn plan_from_row(&self, row: &sqlx::any::AnyRow) -> Result<StoredPlan> {
        let hash: String = row.try_get(0)?;
        let body: Value = serde_json::from_str(&row.try_get::<String, _>(4)?).map_err(corrupt)?;
        let mut plan: Plan = serde_json::from_value(body).map_err(corrupt)?;
        let items = sqlx::query("SELECT item, state FROM plan_items WHERE plan_hash = $1 ORDER BY seq")
            .bind(&hash)
            .fetch_all(&self.pool)
            .await?;
        for r in &items {
            let mut item: PlanItem = serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt)?;
            item.state = serde_json::from_str(&r.try_get::<String, _>(1)?).map_err(corrupt)?;
            plan.items.push(item);
        }
        let verification: Option<String> = row.try_get(5)?;
        Ok(StoredPlan {
            hash,
            processor: parse(&row.try_get::<String, _>(1)?)?,
            made_at: parse_ts(&row.try_get::<String, _>(2)?)?,
            attempt: row.try_get::<i64, _>(3)? as u32,
            plan,
            verification: verification
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(corrupt)?,
            approved_at: parse_opt_ts(row.try_get(6)?)?,
            approved_by: row.try_get(7)?,
        })
    }

    /// Records what one item's call did, for the worker holding the task (`owner`, `claim`).
    /// Only a pending item changes, so a re-delivered execution cannot overwrite an outcome;
    /// false when the item was settled already or the worker no longer holds the task (it
    /// was cancelled, or its lease expired and another worker took it over): the caller
    /// stops executing.
    pub async fn record_item(
        &self,
        hash: &str,
        seq: usize,
        state: &ItemState,
        owner: &str,
        claim: Claim,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE plan_items SET state = $3, updated_at = $4 WHERE plan_hash = $1 AND seq = $2 \
             AND state LIKE '{\"state\":\"pending\"%' AND EXISTS (SELECT 1 FROM plans p JOIN tasks t \
                ON t.request_id = p.request_id AND t.processor = p.processor \
                WHERE p.hash = $1 AND p.is_current = 1 AND t.status = 'running' AND t.lease_owner = $5 \
                AND t.attempts = $6)",
        )
        .bind(hash)
        .bind(seq as i64)
        .bind(serde_json::to_string(state).map_err(corrupt)?)
        .bind(ts(self.now()))
        .bind(owner)
        .bind(claim.attempt as i64)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Records what planning again after execution found.
    pub async fn record_verification(&self, hash: &str, verification: &Verification) -> Result<()> {
        sqlx::query("UPDATE plans SET verification = $2 WHERE hash = $1")
            .bind(hash)
            .bind(serde_json::to_string(verification).map_err(corrupt)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// in_progress → awaiting_approval once every task has its plan (or has ended) and at
    /// least one plan waits. Returns the request's plan hash when this call made the move.
    pub async fn await_approval(&self, id: &str) -> Result<Option<String>> {
        let tasks = self.tasks(id).await?;
        let planned = tasks.iter().filter(|t| t.status == TaskStatus::Planned).count();
        if planned == 0
            || tasks
                .iter()
                .any(|t| !t.status.is_terminal() && t.status != TaskStatus::Planned)
        {
            return Ok(None);
        }
        let hash = request_plan_hash(&self.plans_awaiting(id).await?);
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE requests SET status = 'awaiting_approval', updated_at = $2 WHERE id = $1 AND status = 'in_progress'",
        )
        .bind(id)
        .bind(ts(self.now()))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if moved {
            self.insert_audit(
                &mut tx,
                Some(id),
                None,
                "request.awaiting_approval",
                json!({"plan": hash, "processors": planned}),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(moved.then_some(hash))
    }

    /// The current plans of the tasks that wait for approval.
    pub async fn plans_awaiting(&self, id: &str) -> Result<Vec<StoredPlan>> {
        let planned: Vec<Processor> = self
            .tasks(id)
            .await?
            .into_iter()
            .filter(|t| t.status == TaskStatus::Planned)
            .map(|t| t.processor)
            .collect();
        Ok(self
            .plans(id)
            .await?
            .into_iter()
            .filter(|p| planned.contains(&p.processor))
            .collect())
    }

    /// Who entered request `id` (its `request.received` event's `by`: an operator's name, a
    /// dashboard account as `dashboard:NAME`, an API token as `token:NAME`), if recorded.
    pub async fn entered_by(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .audit_events(id)
            .await?
            .iter()
            .find(|e| e.event == "request.received")
            .and_then(|e| e.detail.get("by").and_then(|b| b.as_str()).map(String::from)))
    }

    /// Approves exactly the plans whose request hash is `hash`: their tasks go back to
    /// pending (to be executed, not planned again) and the request to in_progress. Refused
    /// when the request is not awaiting approval or its plans were made again since, and,
    /// with `four_eyes`, when `by` is who entered the request ([`same_person`]).
    pub async fn approve(&self, id: &str, hash: &str, by: &str, four_eyes: bool) -> Result<Vec<Processor>> {
        let request = self.get_request(id).await?;
        if request.status != RequestStatus::AwaitingApproval {
            return Err(LedgerError::Refused(format!(
                "request {id} is {}, not awaiting approval; nothing to approve",
                request.status
            )));
        }
        if four_eyes
            && let Some(entered) = self.entered_by(id).await?
            && same_person(&entered, by)
        {
            // Refused, and on record: who tried to approve their own request.
            let detail = json!({"by": by, "action": "approve", "why": "four_eyes"});
            self.audit(Some(id), None, "operator.refused", detail).await?;
            return Err(LedgerError::Refused(format!(
                "{by} entered request {id}, and with [erasure] four_eyes nobody approves a request \
                 they entered: another approver must approve it"
            )));
        }
        let plans = self.plans_awaiting(id).await?;
        let current = request_plan_hash(&plans);
        if current != hash.trim() {
            let earlier = self
                .audit_events(id)
                .await?
                .iter()
                .any(|e| e.event == "request.awaiting_approval" && e.detail["plan"] == hash.trim());
            let why = if earlier {
                "it was made again since"
            } else {
                "no plan of this request had that hash (a typing mistake?)"
            };
            return Err(LedgerError::Refused(format!(
                "plan {hash} is not the plan of request {id} now ({current}): {why}; \
                 run `dsr plan {id}` and approve the hash it shows"
            )));
        }
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE requests SET status = 'in_progress', updated_at = $2 WHERE id = $1 AND status = 'awaiting_approval'",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            return Err(LedgerError::Refused(format!(
                "request {id} changed while approving; run `dsr plan {id}` again"
            )));
        }
        for plan in &plans {
            // Still the current plan inside this transaction: a retry in between made another.
            let current =
                sqlx::query("UPDATE plans SET approved_at = $2, approved_by = $3 WHERE hash = $1 AND is_current = 1")
                    .bind(&plan.hash)
                    .bind(&now)
                    .bind(by)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
            if !current {
                tx.rollback().await?;
                return Err(LedgerError::Refused(format!(
                    "the plans of request {id} were made again while approving; run `dsr plan {id}` again"
                )));
            }
            sqlx::query(
                "UPDATE tasks SET status = 'pending', updated_at = $3 WHERE request_id = $1 AND processor = $2 \
                 AND status = 'planned'",
            )
            .bind(id)
            .bind(plan.processor.as_str())
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        self.insert_audit(
            &mut tx,
            Some(id),
            None,
            "request.approved",
            json!({"plan": current, "by": by, "plans": plans.iter().map(|p| json!({"processor": p.processor, "plan": p.hash})).collect::<Vec<_>>()}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(plans.iter().map(|p| p.processor).collect())
    }

    /// Ends a request awaiting approval as rejected: nothing is executed.
    pub async fn reject(&self, id: &str, reason: &str, by: &str) -> Result<()> {
        if reason.trim().is_empty() {
            return Err(LedgerError::Refused("a rejection needs a reason (--reason)".into()));
        }
        let request = self.get_request(id).await?;
        if request.status != RequestStatus::AwaitingApproval {
            return Err(LedgerError::Refused(format!(
                "request {id} is {}, not awaiting approval; only a plan waiting for approval can be rejected",
                request.status
            )));
        }
        let plan = request_plan_hash(&self.plans_awaiting(id).await?);
        let now = ts(self.now());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', reason = $2, updated_at = $3 WHERE request_id = $1 AND status = 'planned'",
        )
        .bind(id)
        .bind(format!("plan rejected: {reason}"))
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "UPDATE requests SET status = 'rejected', finished_at = $2, updated_at = $2 WHERE id = $1 \
             AND status = 'awaiting_approval'",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !moved {
            return Err(LedgerError::Refused(format!(
                "request {id} changed while rejecting; look again"
            )));
        }
        self.insert_audit(
            &mut tx,
            Some(id),
            None,
            "request.rejected",
            json!({"plan": plan, "by": by, "note": reason}),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored items and states of every plan of a request (current or superseded), for
    /// pseudonymisation.
    pub async fn plan_texts(&self, id: &str) -> Result<Vec<PlanText>> {
        let rows = sqlx::query(
            "SELECT p.hash, i.seq, i.item, i.state, p.body, p.verification FROM plans p \
             LEFT JOIN plan_items i ON i.plan_hash = p.hash WHERE p.request_id = $1 ORDER BY p.hash, i.seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let text = |i: usize| -> Result<Value> {
                    let raw: Option<String> = r.try_get(i)?;
                    raw.map(|s| serde_json::from_str(&s).map_err(corrupt))
                        .transpose()
                        .map(Option::unwrap_or_default)
                };
                Ok(PlanText {
                    hash: r.try_get(0)?,
                    seq: r.try_get(1)?,
                    item: text(2)?,
                    state: text(3)?,
                    body: text(4)?,
                    verification: text(5)?,
                })
            })
            .collect()
    }
}

/// One stored plan item's texts (and its plan's), as pseudonymisation rewrites them.
#[derive(Debug, Clone)]
pub struct PlanText {
    pub hash: String,
    /// None for a plan without items (its body and verification are still rewritten).
    pub seq: Option<i64>,
    pub item: Value,
    pub state: Value,
    pub body: Value,
    pub verification: Value,
}

/// Writes pseudonymised plan texts back, inside the pseudonymisation's transaction.
pub(super) async fn rewrite_plans(conn: &mut sqlx::AnyConnection, plans: &[PlanText]) -> Result<()> {
    for p in plans {
        if let Some(seq) = p.seq {
            sqlx::query("UPDATE plan_items SET item = $3, state = $4 WHERE plan_hash = $1 AND seq = $2")
                .bind(&p.hash)
                .bind(seq)
                .bind(p.item.to_string())
                .bind(p.state.to_string())
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("UPDATE plans SET body = $2, verification = $3 WHERE hash = $1")
            .bind(&p.hash)
            .bind(p.body.to_string())
            .bind((!p.verification.is_null()).then(|| p.verification.to_string()))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod four_eyes_tests {
    use super::same_person;

    #[test]
    fn an_operator_is_one_person_on_the_command_line_and_the_dashboard_and_a_token_is_itself() {
        assert!(same_person("kari", "dashboard:kari"));
        assert!(same_person("dashboard:Kari", " kari "));
        assert!(!same_person("kari", "dashboard:ola"));
        assert!(
            !same_person("token:kari", "dashboard:kari"),
            "a token is not its namesake"
        );
        assert!(same_person("token:crm", "token:crm"));
    }
}
