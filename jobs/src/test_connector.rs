//! A scripted connector for the test suite, behind the `test-connector` feature that release
//! builds never enable. It stands in for any processor with behaviour read from config:
//! records to find, failures to raise on the first attempts, a delay (to kill a worker
//! mid-task), and a log of every side effect, so tests can prove nothing happens twice.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use dsr_connector::{
    AccessSummary, Action, Capabilities, Change, CheckReport, Connector, ConnectorError, Identities, ItemOutcome,
    MatchClaim, Plan, PlanItem, Processor, Record, RecordSink, Support, TaskContext,
};
use serde::Deserialize;

/// How the scripted connector behaves for one processor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Records found per e-mail address of the subject.
    #[serde(default = "one")]
    pub records_per_email: u64,
    /// Attempts that fail before one succeeds.
    #[serde(default)]
    pub fail_attempts: u32,
    /// How the failing attempts fail: "retry" (default), "reauth", "permanent".
    #[serde(default)]
    pub failure: Option<String>,
    /// Retry-After the failing attempts ask for, in milliseconds.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// Time each call takes, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Rights this processor cannot serve (access, erasure, rectification, objection).
    #[serde(default)]
    pub not_applicable: Vec<String>,
    /// How many of the records (per e-mail address, from the first) also concern other
    /// people (`shared` plan items).
    #[serde(default)]
    pub shared: u64,
    /// A file that gets one line per side effect (`erase request-id processor item`).
    #[serde(default)]
    pub effects_log: Option<PathBuf>,
}

fn one() -> u64 {
    1
}

pub struct ScriptedConnector {
    processor: Processor,
    script: Script,
    /// What this process changed, for a script without an effects log.
    done: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl ScriptedConnector {
    pub fn new(processor: Processor, script: Script) -> Self {
        ScriptedConnector {
            processor,
            script,
            done: Default::default(),
        }
    }

    async fn perform(&self, ctx: &TaskContext) -> Result<(), ConnectorError> {
        if self.script.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.script.delay_ms)).await;
        }
        if ctx.attempt <= self.script.fail_attempts {
            let processor = self.processor.as_str();
            let code = "scripted".to_string();
            let message = format!("scripted failure on attempt {}", ctx.attempt);
            return Err(match self.script.failure.as_deref() {
                Some("permanent") => ConnectorError::Permanent {
                    processor,
                    code,
                    message,
                },
                Some("reauth") => ConnectorError::Reauthenticate {
                    processor,
                    code,
                    message,
                },
                _ => ConnectorError::RetryLater {
                    processor,
                    code,
                    message,
                    after: self.script.retry_after_ms.map(Duration::from_millis),
                },
            });
        }
        Ok(())
    }

    fn log_effect(&self, line: &str) -> Result<(), ConnectorError> {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(line.to_string());
        let Some(path) = &self.script.effects_log else {
            return Ok(());
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| self.log_error(e))?;
        // One write per line: several worker processes append to the same file.
        file.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| self.log_error(e))
    }

    fn log_error(&self, e: std::io::Error) -> ConnectorError {
        ConnectorError::Permanent {
            processor: self.processor.as_str(),
            code: "effects_log".into(),
            message: e.to_string(),
        }
    }

    /// Like a vendor, remembers what was already changed: a repeated call (a worker died
    /// after the vendor acted but before the ledger recorded it) finds it gone.
    fn already_done(&self, line: &str) -> bool {
        if self.done.lock().unwrap_or_else(|p| p.into_inner()).contains(line) {
            return true;
        }
        let Some(path) = &self.script.effects_log else {
            return false;
        };
        std::fs::read_to_string(path)
            .map(|text| text.lines().any(|l| l == line))
            .unwrap_or(false)
    }

    fn effect(action: &str, ctx: &TaskContext, processor: Processor, key: &str) -> String {
        format!("{action} {} {processor} {key}", ctx.request_id)
    }

    fn action(change: &Change) -> (&'static str, Action) {
        match change {
            Change::Erasure => ("erase", Action::Delete),
            Change::Rectification { .. } => ("rectify", Action::Patch),
            Change::Objection => ("withdraw", Action::Unsubscribe),
        }
    }

    fn support(&self, right: &str) -> Support {
        if self.script.not_applicable.iter().any(|r| r == right) {
            Support::NotApplicable(format!("{} has no {right} in this script", self.processor))
        } else {
            Support::Supported
        }
    }
}

#[async_trait::async_trait]
impl Connector for ScriptedConnector {
    fn processor(&self) -> Processor {
        self.processor
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            access: self.support("access"),
            erasure: self.support("erasure"),
            rectification: self.support("rectification"),
            objection: self.support("objection"),
        }
    }

    async fn check(&self) -> Result<CheckReport, ConnectorError> {
        Ok(CheckReport {
            ok: true,
            details: vec!["scripted connector: nothing to check".into()],
        })
    }

    async fn access(
        &self,
        ctx: &TaskContext,
        subject: &Identities,
        sink: &mut dyn RecordSink,
    ) -> Result<AccessSummary, ConnectorError> {
        self.perform(ctx).await?;
        let mut found = 0;
        for email in &subject.emails {
            for i in 0..self.script.records_per_email {
                sink.accept(Record {
                    category: "contacts".into(),
                    id: Some(format!("{}-{i}", self.processor)),
                    provided_by_subject: i % 2 == 0,
                    data: serde_json::json!({"email": email.as_str(), "n": i}),
                    claims: vec![dsr_connector::MatchClaim::email("/email")],
                })
                .await?;
                found += 1;
            }
        }
        Ok(AccessSummary {
            found,
            ..Default::default()
        })
    }

    async fn plan(&self, ctx: &TaskContext, subject: &Identities, change: &Change) -> Result<Plan, ConnectorError> {
        self.perform(ctx).await?;
        let (name, action) = Self::action(change);
        let mut plan = Plan::default();
        for email in &subject.emails {
            for i in 0..self.script.records_per_email {
                let key = format!("{}-{i}", self.processor);
                if self.already_done(&Self::effect(name, ctx, self.processor, &key)) {
                    continue;
                }
                let item = PlanItem::new(
                    key.clone(),
                    "contacts",
                    action,
                    serde_json::json!({"id": key}),
                    serde_json::json!({"email": email.as_str(), "n": i}),
                    vec![MatchClaim::email("/email")],
                );
                // A rectification shows each record's values before and after, as vendors'
                // plans do: personal data that pseudonymisation must reach.
                let item = match change {
                    Change::Rectification { changes } => item
                        .before(serde_json::json!({"email": email.as_str(), "record": key}))
                        .after(serde_json::json!(changes)),
                    _ => item,
                };
                plan.items.push(if i < self.script.shared {
                    item.shared("1 other participant")
                } else {
                    item
                });
            }
        }
        Ok(plan)
    }

    async fn execute(
        &self,
        ctx: &TaskContext,
        _subject: &Identities,
        change: &Change,
        item: &PlanItem,
    ) -> Result<ItemOutcome, ConnectorError> {
        if self.script.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.script.delay_ms)).await;
        }
        let line = Self::effect(Self::action(change).0, ctx, self.processor, &item.key);
        if self.already_done(&line) {
            return Ok(ItemOutcome::AlreadyGone);
        }
        self.log_effect(&line)?;
        Ok(ItemOutcome::Done(serde_json::json!({"attempt": ctx.attempt})))
    }
}
