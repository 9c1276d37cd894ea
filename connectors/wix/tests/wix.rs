//! The Wix connector against the fake Wix in `fixtures/`: access, and every change as a plan
//! the engine checks and the connector carries out item by item (`dsr_connector::apply`).

use std::collections::BTreeSet;

use dsr_connector::{
    Action, Applied, Change, Connector, ConnectorError, FieldChange, Identities, ItemOutcome, MemorySink, PlanItem,
    PlanRules, RectifyField, SharedPolicy, apply, check_plan,
};
use dsr_fixtures::wix::WixFake;
use dsr_wix::{Wix, WixConfig};
use serde_json::{Value, json};

const KARI: &str = "kari.nordmann@example.no";
const LOOK_ALIKE: &str = "annkari.nordmann@example.no";
const SHARED_REASON: &str = "it also concerns other people";

async fn connector(extra: &str) -> (WixFake, tempfile::TempDir, Wix) {
    let fake = WixFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = fake.connector_toml(&dir.path().join("wix-key")).unwrap();
    let config: WixConfig = toml::from_str(&format!("{text}{extra}")).unwrap();
    (fake, dir, Wix::new(config).unwrap())
}

use dsr_fixtures::testing::subject;

fn kari() -> Identities {
    Identities {
        phones: vec![dsr_connector::Phone::parse("912 34 567", "NO").unwrap()],
        ..subject(KARI)
    }
}

use dsr_fixtures::testing::first_attempt as ctx;

use dsr_fixtures::testing::preview as dry_run;

fn rules(shared: SharedPolicy) -> PlanRules {
    PlanRules::new(shared)
}

/// Plans, checks, executes and verifies one change, as the engine does.
async fn run(wix: &Wix, subject: &Identities, change: &Change, shared: SharedPolicy) -> Applied {
    apply(wix, &ctx(), subject, change, &rules(shared)).await.unwrap()
}

/// Carries out one planned item, as the engine does (again, or from a stale plan).
async fn execute(
    wix: &Wix,
    subject: &Identities,
    change: &Change,
    item: &PlanItem,
) -> Result<ItemOutcome, ConnectorError> {
    dsr_fixtures::testing::execute(wix, subject, change, item).await
}

fn keys(applied: &Applied, category: &str, state: &str) -> Vec<String> {
    applied.keys(category, state).into_iter().map(String::from).collect()
}

fn state_of<'a>(applied: &'a Applied, key: &str) -> &'a str {
    applied
        .item(key)
        .unwrap_or_else(|| panic!("no item {key} in {:?}", applied.plan.items))
        .state
        .as_str()
}

fn strip(value: &mut Value, key: &str) {
    match value {
        Value::Object(fields) => {
            fields.remove(key);
            fields.values_mut().for_each(|v| strip(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip(v, key)),
        _ => {}
    }
}

/// Everything the fake site holds, without the `updatedDate` stamps Wix sets on any write.
fn site(fake: &WixFake) -> Value {
    let mut held = fake.with(|s| {
        json!({
            "contacts": s.contacts, "deleted_contacts": s.deleted_contacts, "trashed_contacts": s.trashed_contacts,
            "members": s.members, "deleted_members": s.deleted_members,
            "submissions": s.submissions, "trashed_submissions": s.trashed_submissions,
            "comments": s.comments, "moved_comments": s.moved_comments,
            "subscriptions": s.subscriptions,
        })
    });
    strip(&mut held, "updatedDate");
    held
}

/// The calls that change something at Wix.
fn changing_calls(fake: &WixFake) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| c.starts_with("DELETE") || c.starts_with("PATCH") || c == "POST email-subscriptions")
        .collect()
}

fn family_name(value: &str) -> FieldChange {
    FieldChange {
        field: RectifyField::FamilyName,
        value: value.into(),
    }
}

/// One change of each kind.
fn every_change() -> [Change; 3] {
    [
        Change::Erasure,
        Change::Rectification {
            changes: vec![family_name("Hansen")],
        },
        Change::Objection,
    ]
}

#[tokio::test]
async fn access_finds_contact_member_submissions_and_comments_and_nothing_of_the_look_alike() {
    let (_fake, _dir, wix) = connector("").await;
    let mut sink = MemorySink::checked(kari());
    let summary = wix.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert_eq!(sink.ids("contacts"), BTreeSet::from(["ct-kari".to_string()]));
    assert_eq!(sink.ids("members"), BTreeSet::from(["mb-kari".to_string()]));
    assert_eq!(
        sink.ids("form_submissions"),
        BTreeSet::from(["sub-1", "sub-2", "sub-5", "sub-6"].map(String::from)),
        "her own submissions in two namespaces (Forms, Bookings), and Per's in Forms and Pricing Plans \
         that name her address as a whole value"
    );
    assert_eq!(
        sink.ids("comments"),
        BTreeSet::from(["cm-1".to_string(), "cm-3".to_string()]),
        "her comments in the Blog and the Forum"
    );
    // Comments are queried per commenting app: every call names one.
    let comment_queries: Vec<String> = _fake
        .calls()
        .into_iter()
        .filter(|c| c.contains("comments/query"))
        .collect();
    assert!(!comment_queries.is_empty());
    let own = sink.records.iter().find(|r| r.id.as_deref() == Some("sub-1")).unwrap();
    let pers = sink.records.iter().find(|r| r.id.as_deref() == Some("sub-2")).unwrap();
    assert!(own.provided_by_subject && !pers.provided_by_subject);
    let text = serde_json::to_string(&sink.records).unwrap();
    assert!(!text.contains(LOOK_ALIKE), "the look-alike's data was exported");
    assert!(summary.notes[0].contains("guest"), "{:?}", summary.notes);
    let status = sink
        .records
        .iter()
        .find(|r| r.category == "email_subscriptions")
        .unwrap();
    assert_eq!(status.data["subscriptionStatus"], "SUBSCRIBED");
}

#[tokio::test]
async fn erasure_deletes_comments_then_the_member_then_the_contact_permanently() {
    let (fake, _dir, wix) = connector("").await;
    let applied = run(&wix, &kari(), &Change::Erasure, SharedPolicy::Retain).await;
    assert_eq!(
        fake.holdings_of(KARI),
        (0, 0, 2, 0),
        "only the two forms Per sent that name her are left: they are his too"
    );
    assert_eq!(
        keys(&applied, "form_submissions", "done"),
        ["form_submissions sub-1", "form_submissions sub-5"]
    );
    assert_eq!(keys(&applied, "comments", "done"), ["comments cm-1", "comments cm-3"]);
    assert_eq!(keys(&applied, "members", "done"), ["members mb-kari"]);
    assert_eq!(keys(&applied, "contacts", "done"), ["contacts ct-kari"]);
    assert_eq!(applied.changed(), 6);
    assert_eq!(applied.plan.items.len(), 8, "{:?}", applied.plan.items);
    let shared = keys(&applied, "form_submissions", "retained");
    assert_eq!(shared, ["form_submissions sub-2", "form_submissions sub-6"]);
    for key in &shared {
        let item = applied.item(key).unwrap();
        assert_eq!(item.shared.as_deref(), Some("sent by another person"));
        assert!(
            item.reason
                .as_deref()
                .is_some_and(|r| r.contains("Forms & Submissions")),
            "the company is told where to redact her details: {:?}",
            item.reason
        );
    }
    // The plan is in the order Wix requires, and the engine executes it in plan order.
    let mut order: Vec<&str> = applied.plan.items.iter().map(|i| i.category.as_str()).collect();
    order.dedup();
    assert_eq!(order, ["form_submissions", "comments", "members", "contacts"]);
    assert!(applied.plan.items.iter().all(|i| i.action == Action::Delete));
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{verification:?}");
    let deleted: Vec<String> = fake.calls().into_iter().filter(|c| c.starts_with("DELETE")).collect();
    assert!(
        !deleted.iter().any(|c| c.contains("sub-2") || c.contains("sub-6")),
        "{deleted:?}"
    );
    assert_eq!(
        fake.holdings_of(LOOK_ALIKE),
        (1, 1, 1, 1),
        "the look-alike is untouched"
    );
    let calls = fake.calls();
    let at = |call: &str| {
        calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("no {call}: {calls:?}"))
    };
    let submission = at("DELETE submissions/sub-1");
    let comment = at("DELETE comments/cm-1");
    let member = at("DELETE members/mb-kari");
    let contact = at("DELETE contacts/ct-kari");
    assert!(
        submission < comment && comment < member && member < contact,
        "comments before the member (whose content Wix hands to the owner), the member before its contact"
    );
    assert!(
        fake.with(|s| s.moved_comments.is_empty()),
        "nothing of hers was handed to the site owner"
    );
    assert!(
        fake.with(|s| s.trashed_contacts.is_empty() && s.trashed_submissions.is_empty()),
        "Contacts v4 deletes permanently, submissions are deleted with permanent=true"
    );
    let notes = &applied.plan.notes;
    assert!(!notes.iter().any(|n| n.contains("90 days")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("permanently")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("guest")), "{notes:?}");
    let again = run(&wix, &kari(), &Change::Erasure, SharedPolicy::Retain).await;
    assert_eq!(
        (again.plan.found(), again.changed()),
        (2, 0),
        "a re-run changes nothing: deleted comments stay listed as DELETED, Per's forms are retained again"
    );
    assert_eq!(keys(&again, "form_submissions", "retained"), shared);
}

#[tokio::test]
async fn a_contact_wix_will_not_delete_is_refused_with_its_reason_after_the_member_is_erased() {
    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| s.billing_subscription_contact_ids.push("ct-kari".into()));
    let applied = apply(&wix, &ctx(), &kari(), &Change::Erasure, &rules(SharedPolicy::Retain))
        .await
        .expect("not a failure: the member is gone already");
    assert_eq!(fake.holdings_of(KARI).1, 0, "the member is erased");
    assert_eq!(fake.holdings_of(KARI).0, 1, "Wix kept the contact");
    assert_eq!(keys(&applied, "members", "done"), ["members mb-kari"]);
    assert_eq!(keys(&applied, "contacts", "refused_by_vendor"), ["contacts ct-kari"]);
    assert_eq!(keys(&applied, "form_submissions", "retained").len(), 2);
    let contact = applied.item("contacts ct-kari").unwrap();
    let reason = match &contact.state {
        dsr_connector::ItemState::RefusedByVendor { reason } => reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        reason.contains("CANNOT_DELETE_CONTACT_WITH_BILLING_SUBSCRIPTION"),
        "{reason}"
    );
    let verification = applied.verification.as_ref().unwrap();
    assert!(
        verification.remaining.is_empty(),
        "what Wix refused is not reported as still due: {verification:?}"
    );
}

#[tokio::test]
async fn the_site_owner_is_refused_by_wix_member_and_contact_alike() {
    let (fake, _dir, wix) = connector("").await;
    let owner = subject("ingrid@sensorfirma.example");
    let applied = run(&wix, &owner, &Change::Erasure, SharedPolicy::Retain).await;
    assert_eq!(keys(&applied, "members", "refused_by_vendor"), ["members mb-owner"]);
    assert_eq!(keys(&applied, "contacts", "refused_by_vendor"), ["contacts ct-owner"]);
    let reason = |key: &str| format!("{:?}", applied.item(key).unwrap().state);
    assert!(
        reason("members mb-owner").contains("OWNER_OR_CONTRIBUTOR_MEMBER_DELETE_FORBIDDEN"),
        "{}",
        reason("members mb-owner")
    );
    assert!(
        reason("contacts ct-owner").contains("428"),
        "{}",
        reason("contacts ct-owner")
    );
    assert_eq!(fake.holdings_of("ingrid@sensorfirma.example").0, 1);
    assert!(applied.verification.unwrap().remaining.is_empty());
}

#[tokio::test]
async fn comments_cannot_be_queried_without_an_app_id() {
    let (fake, _dir, _wix) = connector("").await;
    let http = reqwest::Client::new();
    let key = fake.with(|s| s.api_key.clone());
    let site = fake.with(|s| s.site_id.clone());
    let status = http
        .post(format!("{}/comments/v1/comments/query-cursor", fake.api_url()))
        .header("authorization", key)
        .header("wix-site-id", site)
        .json(&json!({"query": {"filter": {"author.memberId": {"$eq": "mb-kari"}}}}))
        .send()
        .await
        .map(|answer| answer.status());
    let rule = "the fake holds the connector to Wix's rule";
    assert_eq!(status.ok(), Some(reqwest::StatusCode::BAD_REQUEST), "{rule}");
}

#[tokio::test]
async fn rectification_survives_a_concurrent_edit_once() {
    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| s.concurrent_edit_next = 1);
    let change = Change::Rectification {
        changes: vec![
            family_name("Hansen"),
            FieldChange {
                field: RectifyField::Email,
                value: "kari.hansen@example.no".into(),
            },
        ],
    };
    let applied = run(&wix, &kari(), &change, SharedPolicy::Retain).await;
    assert_eq!((applied.plan.found(), applied.changed()), (1, 1));
    let item = applied.item("contacts ct-kari").unwrap();
    assert_eq!((item.action, item.state.as_str()), (Action::Patch, "done"));
    assert_eq!(
        item.before,
        Some(json!({"family_name": "Nordmann", "email": [KARI]})),
        "the values before, as evidence"
    );
    assert_eq!(
        item.after,
        Some(json!({"family_name": "Hansen", "email": ["kari.hansen@example.no"]}))
    );
    let contact = fake.with(|s| s.contacts.iter().find(|c| c["id"] == "ct-kari").cloned().unwrap());
    assert_eq!(contact["info"]["name"], json!({"first": "Kari", "last": "Hansen"}));
    assert_eq!(contact["info"]["emails"]["items"][0]["email"], "kari.hansen@example.no");
    assert_eq!(
        contact["info"]["company"], "Nordmann Consulting",
        "only the named fields changed"
    );
    assert!(
        applied.plan.notes.iter().any(|n| n.contains("login e-mail")),
        "a member's login cannot be changed: {:?}",
        applied.plan.notes
    );
    let patches = || {
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("PATCH contacts/ct-kari"))
            .count()
    };
    assert_eq!(patches(), 2, "a 409, a re-read, and one retry");
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{verification:?}");
    assert_eq!(
        verification.after.get("contacts ct-kari"),
        Some(&json!({"family_name": "Hansen", "email": ["kari.hansen@example.no"]})),
        "the values after, as Wix now returns them"
    );

    let again = run(&wix, &kari(), &change, SharedPolicy::Retain).await;
    let item = again.item("contacts ct-kari").unwrap();
    assert_eq!((item.action, item.state.as_str()), (Action::Keep, "retained"));
    assert_eq!(item.reason.as_deref(), Some("already as requested"));
    assert_eq!(patches(), 2, "nothing is patched again");
}

#[tokio::test]
async fn objection_unsubscribes_every_address() {
    let (fake, _dir, wix) = connector("").await;
    let subject = Identities {
        emails: vec![
            dsr_connector::Email::parse(KARI).unwrap(),
            dsr_connector::Email::parse("kari@privat.example").unwrap(),
        ],
        ..Default::default()
    };
    let applied = run(&wix, &subject, &Change::Objection, SharedPolicy::Retain).await;
    assert_eq!(applied.changed(), 2);
    let item = applied.item(&format!("email_subscriptions {KARI}")).unwrap();
    assert_eq!((item.action, item.state.as_str()), (Action::Unsubscribe, "done"));
    assert_eq!(item.before, Some(json!({"subscriptionStatus": "SUBSCRIBED"})));
    assert_eq!(item.after, Some(json!({"subscriptionStatus": "UNSUBSCRIBED"})));
    let private = applied.item("email_subscriptions kari@privat.example").unwrap();
    assert_eq!(
        (private.state.as_str(), &private.before),
        ("done", &Some(json!({"subscriptionStatus": null}))),
        "an address Wix held no subscription for is recorded as unsubscribed"
    );
    let subscriptions = fake.with(|s| s.subscriptions.clone());
    for email in [KARI, "kari@privat.example"] {
        let entry = subscriptions.iter().find(|s| s["email"] == email).unwrap();
        assert_eq!(entry["subscriptionStatus"], "UNSUBSCRIBED", "{email}");
    }
    let other = subscriptions.iter().find(|s| s["email"] == LOOK_ALIKE).unwrap();
    assert_eq!(other["subscriptionStatus"], "SUBSCRIBED");
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{verification:?}");
    assert_eq!(verification.after.len(), 2);
    assert!(
        verification
            .after
            .values()
            .all(|v| v == &json!({"subscriptionStatus": "UNSUBSCRIBED"}))
    );

    let upserts = || changing_calls(&fake).len();
    let before = upserts();
    let again = run(&wix, &subject, &Change::Objection, SharedPolicy::Retain).await;
    assert_eq!(again.plan.count("retained"), 2);
    assert!(
        again
            .plan
            .items
            .iter()
            .all(|i| i.action == Action::Keep && i.reason.as_deref() == Some("already unsubscribed"))
    );
    assert_eq!(upserts(), before, "nothing is unsubscribed twice");
}

#[tokio::test]
async fn app_oauth_credentials_work_and_an_outage_is_retried() {
    let fake = WixFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (site, id, secret, instance) = fake.with(|s| {
        (
            s.site_id.clone(),
            s.client_id.clone(),
            s.client_secret.clone(),
            s.instance_id.clone(),
        )
    });
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, secret).unwrap();
    let text = format!(
        "enabled = true\napi_url = \"{}\"\nsite_id = \"{site}\"\nclient_id = \"{id}\"\nclient_secret = \"file:{}\"\ninstance_id = \"{instance}\"\n",
        fake.api_url(),
        secret_file.display()
    );
    let wix = Wix::new(toml::from_str(&text).unwrap()).unwrap();
    fake.with(|s| s.faults.unavailable_next = 2);
    let mut sink = MemorySink::checked(kari());
    wix.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert!(!sink.records.is_empty());
    fake.expire_tokens();
    let mut sink = MemorySink::checked(kari());
    wix.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert_eq!(fake.with(|s| s.issued), 2, "the expired token was replaced once");
}

#[tokio::test]
async fn refused_app_credentials_ask_for_new_ones_and_a_section_without_credentials_is_named() {
    let fake = WixFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (site, id, instance) = fake.with(|s| (s.site_id.clone(), s.client_id.clone(), s.instance_id.clone()));
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "not-the-secret").unwrap();
    let section = format!(
        "api_url = \"{}\"\nsite_id = \"{site}\"\nclient_id = \"{id}\"\nclient_secret = \"file:{}\"\n",
        fake.api_url(),
        secret_file.display()
    );
    let wix = Wix::new(toml::from_str(&format!("{section}instance_id = \"{instance}\"\n")).unwrap()).unwrap();
    let err = wix
        .access(&ctx(), &kari(), &mut MemorySink::checked(kari()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "reauthenticate:401:invalid_client", "{err}");
    let text = err.to_string();
    assert!(text.contains("Wix refused the app credentials for instance"), "{text}");
    assert!(
        !text.contains("not-the-secret"),
        "the secret must not appear in errors: {text}"
    );
    let err = toml::from_str::<WixConfig>(&section).unwrap_err().to_string();
    assert!(
        err.contains(
            "processors.wix.instance_id: client_id, client_secret are set but instance_id is missing: \
             give either api_key or client_id, client_secret and instance_id"
        ),
        "a section without instance_id is refused when the file is read: {err}"
    );
}

#[tokio::test]
async fn rectification_replaces_her_number_and_keeps_the_contacts_other_numbers() {
    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| {
        let contact = s.contacts.iter_mut().find(|c| c["id"] == "ct-kari").unwrap();
        contact["info"]["phones"]["items"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "ph-kari-2", "tag": "WORK", "phone": "22 00 00 00", "e164Phone": "+4722000000"}));
    });
    let change = Change::Rectification {
        changes: vec![FieldChange {
            field: RectifyField::Phone,
            value: "+47 987 65 432".into(),
        }],
    };
    let applied = run(&wix, &kari(), &change, SharedPolicy::Retain).await;
    let contact = fake.with(|s| s.contacts.iter().find(|c| c["id"] == "ct-kari").cloned().unwrap());
    let phones: Vec<&str> = contact["info"]["phones"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["phone"].as_str())
        .collect();
    assert_eq!(
        phones,
        ["+47 987 65 432", "22 00 00 00"],
        "hers replaced, the office number kept"
    );
    let item = applied.item("contacts ct-kari").unwrap();
    assert_eq!(item.before, Some(json!({"phone": ["912 34 567"]})));
    assert_eq!(item.after, Some(json!({"phone": ["+47 987 65 432"]})));
    let verification = applied.verification.unwrap();
    assert!(verification.remaining.is_empty(), "{verification:?}");
    assert_eq!(
        verification.after.get("contacts ct-kari"),
        Some(&json!({"phone": ["+47 987 65 432"]}))
    );
}

#[tokio::test]
async fn planning_changes_nothing_and_the_dry_run_lists_what_the_run_does() {
    for change in every_change() {
        let (fake, _dir, wix) = connector("").await;
        let untouched = site(&fake);
        let preview = apply(&wix, &dry_run(), &kari(), &change, &rules(SharedPolicy::Retain)).await;
        let preview = preview.unwrap();
        assert!(preview.verification.is_none());
        assert_eq!(site(&fake), untouched, "{change:?}: planning changed the site");
        assert_eq!(changing_calls(&fake), Vec::<String>::new(), "{change:?}");
        // Due: checked as hers, not kept by a rule, and not already as asked (a `Keep`).
        let due: Vec<&PlanItem> = preview.plan.items.iter().filter(|i| i.is_due()).collect();
        assert!(!due.is_empty(), "{change:?}: {:?}", preview.plan);

        let applied = run(&wix, &kari(), &change, SharedPolicy::Retain).await;
        let listed = |a: &Applied| a.plan.items.iter().map(|i| i.key.clone()).collect::<Vec<_>>();
        assert_eq!(
            listed(&preview),
            listed(&applied),
            "{change:?}: the preview is the plan"
        );
        for item in due {
            let state = state_of(&applied, &item.key);
            assert!(
                ["done", "already_gone"].contains(&state),
                "{change:?}: {} was due, is {state}",
                item.key
            );
        }
        assert_ne!(site(&fake), untouched, "{change:?}: the run changed the site");
    }
}

#[tokio::test]
async fn forms_others_sent_are_kept_unless_the_company_deletes_shared_items() {
    let (fake, _dir, wix) = connector("").await;
    let kept = run(&wix, &kari(), &Change::Erasure, SharedPolicy::Retain).await;
    assert_eq!(
        keys(&kept, "form_submissions", "retained"),
        ["form_submissions sub-2", "form_submissions sub-6"]
    );
    assert_eq!(
        kept.item("form_submissions sub-2").unwrap().state,
        dsr_connector::ItemState::Retained {
            reason: SHARED_REASON.into()
        }
    );
    let left: Vec<String> = fake.with(|s| {
        s.submissions
            .iter()
            .filter_map(|x| x["id"].as_str().map(String::from))
            .collect()
    });
    assert!(
        left.contains(&"sub-2".into()) && left.contains(&"sub-6".into()),
        "{left:?}"
    );

    let (fake, _dir, wix) = connector("").await;
    let deleted = run(&wix, &kari(), &Change::Erasure, SharedPolicy::Delete).await;
    assert_eq!(
        keys(&deleted, "form_submissions", "done"),
        [
            "form_submissions sub-1",
            "form_submissions sub-2",
            "form_submissions sub-5",
            "form_submissions sub-6"
        ]
    );
    assert_eq!(fake.holdings_of(KARI), (0, 0, 0, 0));
    let calls = fake.calls();
    assert!(calls.contains(&"DELETE submissions/sub-2".into()) && calls.contains(&"DELETE submissions/sub-6".into()));
    assert!(
        fake.with(|s| s.contacts.iter().any(|c| c["id"] == "ct-per")),
        "Per's own contact stays"
    );
    assert!(deleted.verification.unwrap().remaining.is_empty());
}

#[tokio::test]
async fn executing_a_plan_again_makes_no_second_change() {
    for change in every_change() {
        let (fake, _dir, wix) = connector("").await;
        let applied = run(&wix, &kari(), &change, SharedPolicy::Retain).await;
        let after = site(&fake);
        let executed: Vec<_> = applied
            .plan
            .items
            .iter()
            .filter(|i| ["done", "already_gone"].contains(&i.state.as_str()))
            .collect();
        assert!(!executed.is_empty(), "{change:?}");
        for item in executed {
            let outcome = execute(&wix, &kari(), &change, item).await.unwrap();
            match (&change, item.category.as_str()) {
                // Wix keeps a deleted comment listed as DELETED: deleting it again is a no-op.
                (Change::Erasure, "comments") => assert!(matches!(outcome, ItemOutcome::Done(_))),
                (Change::Erasure, _) => assert_eq!(outcome, ItemOutcome::AlreadyGone, "{}", item.key),
                (Change::Rectification { .. }, _) => match outcome {
                    ItemOutcome::Done(receipt) => assert_eq!(receipt["already_as_requested"], true, "{receipt}"),
                    other => panic!("{other:?}"),
                },
                (Change::Objection, _) => assert!(matches!(outcome, ItemOutcome::Done(_))),
            }
        }
        assert_eq!(
            site(&fake),
            after,
            "{change:?}: a re-delivered execution changed the site"
        );
    }
}

#[tokio::test]
async fn records_the_search_returns_that_are_not_hers_are_refused_and_untouched() {
    let not_hers = |applied: &Applied| -> BTreeSet<String> {
        let items = applied.plan.items.iter();
        items
            .filter(|i| i.state.as_str() == "not_hers")
            .map(|i| i.key.clone())
            .collect()
    };

    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| s.faults.ignore_search_filter = true);
    let erased = run(&wix, &kari(), &Change::Erasure, SharedPolicy::Retain).await;
    assert_eq!(
        not_hers(&erased),
        BTreeSet::from(
            [
                "comments cm-2",
                "comments cm-4",
                "members mb-annkari",
                "members mb-owner",
                "contacts ct-annkari",
                "contacts ct-per",
                "contacts ct-ole",
                "contacts ct-owner"
            ]
            .map(String::from)
        )
    );
    assert_eq!(
        fake.holdings_of(LOOK_ALIKE),
        (1, 1, 1, 1),
        "the look-alike is untouched"
    );
    assert_eq!(fake.holdings_of(KARI), (0, 0, 2, 0), "hers is erased all the same");
    let deletes: BTreeSet<String> = changing_calls(&fake).into_iter().collect();
    assert_eq!(
        deletes,
        BTreeSet::from(
            [
                "DELETE submissions/sub-1",
                "DELETE submissions/sub-5",
                "DELETE comments/cm-1",
                "DELETE comments/cm-3",
                "DELETE members/mb-kari",
                "DELETE contacts/ct-kari"
            ]
            .map(String::from)
        )
    );
    assert!(erased.verification.unwrap().remaining.is_empty());

    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| s.faults.ignore_search_filter = true);
    let change = Change::Rectification {
        changes: vec![family_name("Hansen")],
    };
    let rectified = run(&wix, &kari(), &change, SharedPolicy::Retain).await;
    assert_eq!(
        not_hers(&rectified),
        BTreeSet::from(
            [
                "contacts ct-annkari",
                "contacts ct-per",
                "contacts ct-ole",
                "contacts ct-owner"
            ]
            .map(String::from)
        )
    );
    assert_eq!(changing_calls(&fake), ["PATCH contacts/ct-kari"]);
    let look_alike = fake.with(|s| s.contacts.iter().find(|c| c["id"] == "ct-annkari").cloned().unwrap());
    assert_eq!(look_alike["info"]["name"]["last"], "Nordmann");

    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| s.faults.ignore_search_filter = true);
    let objected = run(&wix, &kari(), &Change::Objection, SharedPolicy::Retain).await;
    assert_eq!(
        not_hers(&objected),
        BTreeSet::from(["email_subscriptions es-annkari".to_string()]),
        "named by Wix's id, not by the other person's address"
    );
    assert_eq!(changing_calls(&fake), ["POST email-subscriptions"]);
    let other = fake.with(|s| {
        s.subscriptions
            .iter()
            .find(|s| s["email"] == LOOK_ALIKE)
            .cloned()
            .unwrap()
    });
    assert_eq!(other["subscriptionStatus"], "SUBSCRIBED");
}

#[tokio::test]
async fn after_a_409_only_the_planned_change_is_sent_and_only_to_a_contact_as_the_plan_read_it() {
    let (fake, _dir, wix) = connector("").await;
    let change = Change::Rectification {
        changes: vec![
            family_name("Hansen"),
            FieldChange {
                field: RectifyField::Email,
                value: "kari.hansen@example.no".into(),
            },
        ],
    };
    let mut plan = wix.plan(&ctx(), &kari(), &change).await.unwrap();
    check_plan(&kari(), &mut plan, &rules(SharedPolicy::Retain));
    let item = plan.items.iter().find(|i| i.key == "contacts ct-kari").unwrap().clone();
    assert_eq!(item.action, Action::Patch);
    // An edit at Wix while the plan waits: a new revision, so the planned PATCH meets a 409.
    let edit = |f: &dyn Fn(&mut Value)| {
        fake.with(|s| {
            let contact = s.contacts.iter_mut().find(|c| c["id"] == "ct-kari").unwrap();
            f(contact);
            contact["revision"] = json!(contact["revision"].as_u64().unwrap() + 1);
        })
    };
    let contact = || fake.with(|s| s.contacts.iter().find(|c| c["id"] == "ct-kari").cloned().unwrap());
    let patched = || {
        fake.with(|s| {
            s.calls
                .iter()
                .filter(|c| c.starts_with("PATCH contacts/ct-kari"))
                .count()
        })
    };

    // Someone adds a second address: the planned list would drop it.
    edit(&|c| {
        c["info"]["emails"]["items"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "em-kari-2", "tag": "WORK", "email": "kari@jobb.example"}))
    });
    let err = execute(&wix, &kari(), &change, &item).await.unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert!(err.to_string().contains("dsr retry test --processor wix"), "{err}");
    assert_eq!(patched(), 1, "the one refused PATCH, no second");
    assert_eq!(contact()["info"]["emails"]["items"].as_array().unwrap().len(), 2);
    assert_eq!(contact()["info"]["name"]["last"], "Nordmann");

    // Someone corrects the family name to something else: not the plan's `before` either.
    edit(&|c| {
        c["info"]["emails"]["items"].as_array_mut().unwrap().pop();
        c["info"]["name"]["last"] = json!("Nordmann-Berg");
    });
    let err = execute(&wix, &kari(), &change, &item).await.unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert_eq!(contact()["info"]["name"]["last"], "Nordmann-Berg");

    // No longer hers: not a vendor refusal, the plan is stale.
    edit(&|c| {
        c["info"]["name"]["last"] = json!("Nordmann");
        c["info"]["emails"]["items"][0]["email"] = json!("someone@else.example");
        c["info"]["phones"]["items"] = json!([]);
    });
    let err = execute(&wix, &kari(), &change, &item).await.unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert_eq!(patched(), 3);

    // Someone made exactly the correction asked for: done, nothing more sent.
    edit(&|c| {
        c["info"]["emails"]["items"][0]["email"] = json!("kari.hansen@example.no");
        c["info"]["name"]["last"] = json!("Hansen");
    });
    let outcome = execute(&wix, &kari(), &change, &item).await.unwrap();
    assert!(
        matches!(&outcome, ItemOutcome::Done(r) if r["already_as_requested"] == true),
        "{outcome:?}"
    );
    assert_eq!(patched(), 4, "only the refused PATCH");

    // Back as the plan read it, at a new revision: the planned body, with the fresh revision.
    edit(&|c| {
        c["info"]["emails"]["items"][0]["email"] = json!(KARI);
        c["info"]["name"]["last"] = json!("Nordmann");
        c["info"]["phones"]["items"] = json!([{"id": "ph-kari-1", "tag": "MOBILE", "countryCode": "NO",
            "phone": "912 34 567", "e164Phone": "+4791234567", "primary": true}]);
    });
    let outcome = execute(&wix, &kari(), &change, &item).await.unwrap();
    assert!(matches!(outcome, ItemOutcome::Done(_)), "{outcome:?}");
    assert_eq!(patched(), 6, "a 409, a re-read, and the planned body once more");
    let now = contact();
    assert_eq!(now["info"]["name"], json!({"first": "Kari", "last": "Hansen"}));
    assert_eq!(now["info"]["emails"]["items"][0]["email"], "kari.hansen@example.no");
    assert_eq!(
        now["info"]["emails"]["items"].as_array().unwrap().len(),
        1,
        "{}",
        now["info"]["emails"]
    );
}

#[tokio::test]
async fn a_cursor_that_names_its_own_page_again_fails_the_task_at_once() {
    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| s.faults.repeat_page_token = true);
    let err = wix
        .access(&ctx(), &kari(), &mut MemorySink::checked(kari()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permanent:paging_stuck", "{err}");
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .contains("/form-submission-service/v4/submissions/namespace/query"),
        "names the cursor query that is stuck: {err}"
    );
    let queries = fake
        .calls()
        .iter()
        .filter(|c| c.contains("submissions/namespace/query"))
        .count();
    // The queries of every namespace (all of it, her contact's, her member's) run at once:
    // each one stops at its first repeated cursor, two pages at most.
    let namespaces = fake.with(|s| s.form_namespaces.len());
    assert!(
        queries <= 2 * 3 * namespaces,
        "stopped at the first repeated cursor: {:?}",
        fake.calls()
    );
}

/// An id is Wix's data: whatever it holds (`/`, `..`, `?`, `#`), the DELETE goes to that one
/// submission, its `?permanent=true` intact, and nowhere else on the host.
#[tokio::test]
async fn a_hostile_id_stays_one_path_segment() {
    let (fake, _dir, wix) = connector("").await;
    let hostile = "x/../../admin?permanent=false#";
    let item = PlanItem::new(
        format!("form_submissions {hostile}"),
        "form_submissions",
        Action::Delete,
        json!({"id": hostile}),
        Value::Null,
        vec![],
    );
    let before = fake.calls().len();
    let outcome = dsr_fixtures::testing::execute(&wix, &kari(), &Change::Erasure, &item)
        .await
        .unwrap();
    assert_eq!(outcome, ItemOutcome::AlreadyGone, "the fake has no such submission");
    let calls: Vec<String> = fake.calls()[before..]
        .iter()
        .filter(|c| !c.contains("oauth2/token"))
        .cloned()
        .collect();
    assert_eq!(
        calls,
        [format!("DELETE submissions/{hostile}")],
        "one call, to the id named, whole"
    );
}
