//! The Wix connector against the fake Wix in `fixtures/`.

mod util;

use std::collections::BTreeSet;

use dsr_connector::{Connector, FieldChange, Identities, MemorySink, RectifyField, TaskContext};
use dsr_fixtures::wix::WixFake;
use dsr_wix::{Wix, WixConfig};
use serde_json::json;

const KARI: &str = "kari.nordmann@example.no";
const LOOK_ALIKE: &str = "annkari.nordmann@example.no";

async fn connector(extra: &str) -> (WixFake, tempfile::TempDir, Wix) {
    let fake = WixFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = fake.connector_toml(&dir.path().join("wix-key")).unwrap();
    let config: WixConfig = toml::from_str(&format!("{text}{extra}")).unwrap();
    (fake, dir, Wix::new(config).unwrap())
}

fn kari() -> Identities {
    Identities {
        phones: vec![dsr_connector::Phone::parse("912 34 567", "NO").unwrap()],
        ..util::subject(KARI)
    }
}

fn ctx() -> TaskContext {
    util::first_attempt()
}

fn ids(sink: &MemorySink, category: &str) -> BTreeSet<String> {
    sink.records
        .iter()
        .filter(|r| r.category == category)
        .filter_map(|r| r.id.clone())
        .collect()
}

#[tokio::test]
async fn access_finds_contact_member_submissions_and_comments_and_nothing_of_the_look_alike() {
    let (_fake, _dir, wix) = connector("").await;
    let mut sink = MemorySink::checked(kari());
    let summary = wix.access(&ctx(), &kari(), &mut sink).await.unwrap();
    assert_eq!(ids(&sink, "contacts"), BTreeSet::from(["ct-kari".to_string()]));
    assert_eq!(ids(&sink, "members"), BTreeSet::from(["mb-kari".to_string()]));
    assert_eq!(
        ids(&sink, "form_submissions"),
        BTreeSet::from(["sub-1", "sub-2", "sub-5", "sub-6"].map(String::from)),
        "her own submissions in two namespaces (Forms, Bookings), and Per's in Forms and Pricing Plans \
         that name her address as a whole value"
    );
    assert_eq!(
        ids(&sink, "comments"),
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
    let report = wix.erase(&ctx(), &kari()).await.unwrap();
    assert_eq!(
        fake.holdings_of(KARI),
        (0, 0, 2, 0),
        "only the two forms Per sent that name her are left: they are his too"
    );
    let shared = report
        .retained
        .iter()
        .find(|r| r.category == "form_submissions")
        .expect("reported as retained");
    assert_eq!(shared.count, 2);
    assert!(
        shared.reason.contains("sub-2") && shared.reason.contains("sub-6"),
        "{}",
        shared.reason
    );
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
    let comment = at("DELETE comments/cm-1");
    let member = at("DELETE members/mb-kari");
    let contact = at("DELETE contacts/ct-kari");
    assert!(
        comment < member && member < contact,
        "comments before the member (whose content Wix hands to the owner), the member before its contact"
    );
    assert!(
        fake.with(|s| s.moved_comments.is_empty()),
        "nothing of hers was handed to the site owner"
    );
    assert!(
        fake.with(|s| s.trashed_contacts.is_empty()),
        "Contacts v4 deletes permanently"
    );
    assert!(
        !report.notes.iter().any(|n| n.contains("90 days")),
        "{:?}",
        report.notes
    );
    assert!(
        report.notes.iter().any(|n| n.contains("permanently")),
        "{:?}",
        report.notes
    );
    let again = wix.erase(&ctx(), &kari()).await.unwrap();
    assert_eq!(
        (again.found, again.changed),
        (2, 0),
        "a re-run changes nothing: deleted comments stay listed as DELETED, Per's forms are retained again"
    );
}

#[tokio::test]
async fn a_contact_wix_will_not_delete_is_retained_with_its_reason_after_the_member_is_erased() {
    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| s.billing_subscription_contact_ids.push("ct-kari".into()));
    let report = wix
        .erase(&ctx(), &kari())
        .await
        .expect("not a failure: the member is gone already");
    assert_eq!(fake.holdings_of(KARI).1, 0, "the member is erased");
    let retained: Vec<(&str, u64)> = report.retained.iter().map(|r| (r.category.as_str(), r.count)).collect();
    assert_eq!(retained, [("form_submissions", 2), ("contacts", 1)]);
    assert!(
        report.retained[1]
            .reason
            .contains("CANNOT_DELETE_CONTACT_WITH_BILLING_SUBSCRIPTION"),
        "{}",
        report.retained[1].reason
    );
    let deleted = &report
        .evidence
        .iter()
        .find(|e| e.kind == "wix_deletions")
        .unwrap()
        .detail;
    assert!(
        deleted["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "mb-kari"),
        "{deleted}"
    );
}

#[tokio::test]
async fn comments_cannot_be_queried_without_an_app_id() {
    let (fake, _dir, _wix) = connector("").await;
    let http = reqwest::Client::new();
    let key = fake.with(|s| s.api_key.clone());
    let site = fake.with(|s| s.site_id.clone());
    let answer = http
        .post(format!("{}/comments/v1/comments/query-cursor", fake.api_url()))
        .header("authorization", key)
        .header("wix-site-id", site)
        .json(&json!({"query": {"filter": {"author.memberId": {"$eq": "mb-kari"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status().as_u16(),
        400,
        "the fake holds the connector to Wix's rule"
    );
}

#[tokio::test]
async fn rectification_survives_a_concurrent_edit_once() {
    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| s.concurrent_edit_next = 1);
    let changes = vec![
        FieldChange {
            field: RectifyField::FamilyName,
            value: "Hansen".into(),
        },
        FieldChange {
            field: RectifyField::Email,
            value: "kari.hansen@example.no".into(),
        },
    ];
    let report = wix.rectify(&ctx(), &kari(), &changes).await.unwrap();
    assert_eq!((report.found, report.changed), (1, 1));
    let contact = fake.with(|s| s.contacts.iter().find(|c| c["id"] == "ct-kari").cloned().unwrap());
    assert_eq!(contact["info"]["name"], json!({"first": "Kari", "last": "Hansen"}));
    assert_eq!(contact["info"]["emails"]["items"][0]["email"], "kari.hansen@example.no");
    assert_eq!(
        contact["info"]["company"], "Nordmann Consulting",
        "only the named fields changed"
    );
    assert!(
        report.notes.iter().any(|n| n.contains("login e-mail")),
        "a member's login cannot be changed: {:?}",
        report.notes
    );
    let patches = fake
        .calls()
        .iter()
        .filter(|c| c.starts_with("PATCH contacts/ct-kari"))
        .count();
    assert_eq!(patches, 2, "a 409, a re-read, and one retry");
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
    let report = wix.withdraw_consent(&ctx(), &subject).await.unwrap();
    assert_eq!(report.changed, 2);
    let subscriptions = fake.with(|s| s.subscriptions.clone());
    for email in [KARI, "kari@privat.example"] {
        let entry = subscriptions.iter().find(|s| s["email"] == email).unwrap();
        assert_eq!(entry["subscriptionStatus"], "UNSUBSCRIBED", "{email}");
    }
    let other = subscriptions.iter().find(|s| s["email"] == LOOK_ALIKE).unwrap();
    assert_eq!(other["subscriptionStatus"], "SUBSCRIBED");
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
async fn rectification_replaces_her_number_and_keeps_the_contacts_other_numbers() {
    let (fake, _dir, wix) = connector("").await;
    fake.with(|s| {
        let contact = s.contacts.iter_mut().find(|c| c["id"] == "ct-kari").unwrap();
        contact["info"]["phones"]["items"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "ph-kari-2", "tag": "WORK", "phone": "22 00 00 00", "e164Phone": "+4722000000"}));
    });
    let changes = vec![FieldChange {
        field: RectifyField::Phone,
        value: "+47 987 65 432".into(),
    }];
    wix.rectify(&ctx(), &kari(), &changes).await.unwrap();
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
}
