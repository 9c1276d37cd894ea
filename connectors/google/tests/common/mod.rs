//! What every Google test shares: the connector pointed at the fake Google APIs in
//! `fixtures/`, the subject as each part of Google knows her, and the engine's rules.
// Each test binary uses only some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;

use dsr_connector::{
    Applied, Change, ConnectorError, Email, FieldChange, Identities, PlanRules, RectifyField, SharedPolicy, apply,
};
use dsr_fixtures::google::{GoogleFake, GoogleState, TEST_PRIVATE_KEY};
use dsr_google::{Google, GoogleConfig};
use serde_json::{Value, json};

use dsr_fixtures::testing::first_attempt as ctx;

pub fn seeded(path: &[&str]) -> String {
    GoogleState::seed_value(path)
}

/// The `[processors.google]` keys for the fake, with the key file written under `dir`.
pub fn section(fake: &GoogleFake, dir: &std::path::Path, private_key: &str, extra: &str) -> String {
    let text = fake.connector_toml(&dir.join("google-sa.json"), private_key).unwrap();
    format!("{text}{extra}")
}

pub async fn connector(fake: &GoogleFake, dir: &std::path::Path, extra: &str) -> Google {
    let config: GoogleConfig = toml::from_str(&section(fake, dir, TEST_PRIVATE_KEY, extra)).unwrap();
    Google::new(config).unwrap()
}

pub fn kari() -> Identities {
    Identities {
        emails: vec![Email::parse("Kari.Nordmann@Gmail.com").unwrap()],
        ga_client_ids: vec![seeded(&["subject", "client_id"])],
        ga_user_ids: vec![seeded(&["subject", "user_id"])],
        ..Default::default()
    }
}

pub fn rules(shared: SharedPolicy) -> PlanRules {
    PlanRules::new(shared)
}

/// The engine's default: shared items are kept.
pub fn retain() -> PlanRules {
    rules(SharedPolicy::Retain)
}

pub async fn erase(google: &Google, subject: &Identities, rules: &PlanRules) -> Result<Applied, ConnectorError> {
    apply(google, &ctx(), subject, &Change::Erasure, rules).await
}

pub fn remaining(applied: &Applied) -> Vec<String> {
    applied
        .verification
        .as_ref()
        .expect("executed, so verified")
        .remaining
        .clone()
}

pub fn family_name(value: &str) -> Change {
    Change::Rectification {
        changes: vec![FieldChange {
            field: RectifyField::FamilyName,
            value: value.into(),
        }],
    }
}
pub const KARI: &str = "kari.nordmann@example.no";
pub const KARI_PHONE: &str = "+4791234567";

/// Kari as known to Workspace: her address and her mobile number.
pub fn kari_in_workspace() -> Identities {
    Identities {
        emails: vec![Email::parse(KARI).unwrap()],
        phones: vec![dsr_connector::Phone::parse("912 34 567", "NO").unwrap()],
        ..Default::default()
    }
}

pub async fn workspace_connector(fake: &GoogleFake, dir: &std::path::Path, mode: &str) -> Google {
    let users: Vec<String> = fake.workspace_users().iter().map(|u| format!("\"{u}\"")).collect();
    let extra = format!(
        "workspace = {{ mailboxes = [{}], delete_mode = \"{mode}\" }}\n",
        users.join(", ")
    );
    connector(fake, dir, &extra).await
}

/// Everything the fake holds that a change could touch: messages with their labels,
/// contacts, other contacts and Analytics deletions.
pub fn snapshot(fake: &GoogleFake) -> String {
    fake.with(|s| {
        let mail: BTreeMap<String, Vec<String>> = s
            .gmail
            .iter()
            .map(|m| (format!("{}/{}", m.user, m.id), m.labels.clone()))
            .collect();
        let people: Vec<&Value> = s.people.iter().map(|p| &p.json).collect();
        let other: Vec<&Value> = s.other_contacts.iter().map(|c| &c.json).collect();
        json!({"mail": mail, "people": people, "other": other, "deletions": s.deletions.len()}).to_string()
    })
}

pub fn key(category: &str, mailbox: &str, id: &str) -> String {
    format!("{category} {mailbox}/{id}")
}
