//! What the Microsoft 365 connector's tests share: the fake Graph with a connector pointed at
//! it, Kari's requests carried out the engine's way, and views of what the fake holds.
#![allow(dead_code)] // each test file uses its own part

use std::collections::BTreeSet;

use dsr_connector::{
    AccessSummary, Applied, Change, Connector, ConnectorError, FieldChange, ItemCall, ItemOutcome, MemorySink, Plan,
    PlanItem, PlanRules, RectifyField, SharedPolicy, TaskContext, apply,
};
use dsr_fixtures::graph::GraphFake;
pub use dsr_fixtures::testing::subject;
use dsr_microsoft365::{Microsoft365, Microsoft365Config};
use serde_json::{Value, json};

pub const KARI: &str = "kari.nordmann@example.no";
pub const LOOK_ALIKE: &str = "annkari.nordmann@example.no";

pub struct Setup {
    pub fake: GraphFake,
    _dir: tempfile::TempDir,
    pub connector: Microsoft365,
}

pub fn config_text(fake: &GraphFake, dir: &std::path::Path, extra: &str) -> String {
    let text = fake.connector_toml(&dir.join("graph-secret")).unwrap();
    format!("{text}page_size = 4\n{extra}")
}

pub async fn setup(extra: &str) -> Setup {
    let fake = GraphFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config: Microsoft365Config = toml::from_str(&config_text(&fake, dir.path(), extra)).unwrap();
    let connector = Microsoft365::new(config).unwrap();
    Setup {
        fake,
        _dir: dir,
        connector,
    }
}

pub fn ctx(dry_run: bool) -> TaskContext {
    TaskContext::new("test", 1, dry_run)
}

/// An access request for `email`: what reached the sink (checked as the engine checks it)
/// and the summary.
pub async fn access_of(connector: &Microsoft365, email: &str) -> Result<(MemorySink, AccessSummary), ConnectorError> {
    let mut sink = MemorySink::checked(subject(email));
    let summary = connector.access(&ctx(false), &subject(email), &mut sink).await?;
    Ok((sink, summary))
}

pub fn kari_messages() -> BTreeSet<String> {
    let mut expected: BTreeSet<String> = ["m-ola-1", "m-ola-2", "m-ola-4", "m-post-1", "m-post-2", "m-salg-1"]
        .into_iter()
        .map(String::from)
        .collect();
    expected.extend((0..23).map(|i| format!("m-bulk-{i}")));
    expected
}

pub fn rules(shared: SharedPolicy) -> PlanRules {
    PlanRules::new(shared)
}

/// Plans `change` for Kari, checks the plan and, unless a dry run, carries it out: the engine's way.
pub async fn apply_for_kari(
    s: &Setup,
    change: &Change,
    shared: SharedPolicy,
    dry_run: bool,
) -> Result<Applied, ConnectorError> {
    apply(&s.connector, &ctx(dry_run), &subject(KARI), change, &rules(shared)).await
}

pub async fn erase(s: &Setup, shared: SharedPolicy, dry_run: bool) -> Result<Applied, ConnectorError> {
    apply_for_kari(s, &Change::Erasure, shared, dry_run).await
}

/// A rectification for Kari, carried out (shared items retained, as by default).
pub async fn correct(s: &Setup, change: &Change) -> Result<Applied, ConnectorError> {
    apply_for_kari(s, change, SharedPolicy::Retain, false).await
}

/// Carries out one checked item of Kari's plan, as the engine does.
pub async fn execute_for_kari(s: &Setup, change: &Change, item: &PlanItem) -> Result<ItemOutcome, ConnectorError> {
    let (ctx, kari) = (ctx(false), subject(KARI));
    let call = ItemCall {
        ctx: &ctx,
        subject: &kari,
        change,
        item,
    };
    s.connector.execute(call).await
}

pub fn rectification(changes: &[(RectifyField, &str)]) -> Change {
    Change::Rectification {
        changes: changes
            .iter()
            .map(|(field, value)| FieldChange {
                field: *field,
                value: value.to_string(),
            })
            .collect(),
    }
}

pub fn surname_and_title() -> Change {
    rectification(&[
        (RectifyField::FamilyName, "Hansen"),
        (RectifyField::JobTitle, "Styreleder"),
    ])
}

/// Everything the fake holds, mail and contacts, as Graph would return it.
pub fn holdings(fake: &GraphFake) -> Value {
    fake.with(|s| {
        json!({
            "messages": s.messages.iter().map(|m| json!([m.mailbox, m.json])).collect::<Vec<_>>(),
            "contacts": s.contacts.iter().map(|c| json!([c.mailbox, c.json])).collect::<Vec<_>>(),
        })
    })
}

/// The calls that change something at Graph (PATCH, DELETE, permanentDelete).
pub fn writes(fake: &GraphFake) -> Vec<String> {
    let changes = |c: &String| c.starts_with("DELETE ") || c.starts_with("PATCH ") || c.ends_with("/permanentDelete");
    fake.calls().into_iter().filter(changes).collect()
}

pub fn keys(plan: &Plan) -> Vec<&str> {
    plan.items.iter().map(|i| i.key.as_str()).collect()
}

pub fn message_ids(fake: &GraphFake) -> BTreeSet<String> {
    fake.with(|s| {
        s.messages
            .iter()
            .filter_map(|m| m.json["id"].as_str().map(String::from))
            .collect()
    })
}

pub fn contact(fake: &GraphFake, id: &str) -> Option<Value> {
    fake.with(|s| s.contacts.iter().find(|c| c.json["id"] == id).map(|c| c.json.clone()))
}

pub fn set(keys: Vec<&str>) -> BTreeSet<&str> {
    keys.into_iter().collect()
}

pub const SHARED: [&str; 3] = [
    "messages ola.hansen@racom.no/m-ola-2",
    "messages ola.hansen@racom.no/m-ola-4",
    "messages salg@racom.no/m-salg-1",
];
