//! Rectification of Google Workspace contacts against the fake People API: only the named
//! fields change, her entries are replaced in place, and a stale etag is answered by reading
//! the contact again and sending the planned change only to a contact as the plan read it.

mod common;

use common::*;
use dsr_connector::{
    Action, Change, Connector, Email, FieldChange, Identities, ItemOutcome, ItemState, RectifyField, apply, check_plan,
};
use dsr_fixtures::google::GoogleFake;
use dsr_fixtures::testing::first_attempt as ctx;
use serde_json::{Value, json};

#[tokio::test]
async fn rectification_survives_a_stale_etag_once() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    fake.with(|s| s.stale_etag_next = 1);
    let applied = apply(&google, &ctx(), &kari_in_workspace(), &family_name("Hansen"), &retain())
        .await
        .unwrap();
    assert_eq!((applied.plan.found(), applied.changed()), (2, 2));
    let people = fake.with(|s| s.people.clone());
    let c1 = people.iter().find(|p| p.json["resourceName"] == "people/c1").unwrap();
    assert_eq!(c1.json["names"][0]["familyName"], "Hansen");
    assert_eq!(c1.json["names"][0]["givenName"], "Kari", "only the named field changed");
    let c2 = people.iter().find(|p| p.json["resourceName"] == "people/c2").unwrap();
    assert_eq!(
        c2.json["names"][0]["familyName"], "Nordmann",
        "the look-alike was corrected"
    );
    let patches = fake.calls().iter().filter(|c| c.contains(":updateContact")).count();
    assert_eq!(
        patches, 3,
        "one stale attempt, then a re-read and a retry, then the second contact"
    );
    let c1_key = key("contacts", "ola.hansen@racom.no", "people/c1");
    let item = applied.item(&c1_key).unwrap();
    assert_eq!(item.action, Action::Patch);
    assert_eq!(item.before.as_ref().unwrap()["names"][0]["familyName"], "Nordmann");
    assert_eq!(item.after.as_ref().unwrap()["names"][0]["familyName"], "Hansen");
    let ItemState::Done { receipt } = &item.state else {
        panic!("{item:?}")
    };
    assert_eq!(receipt["fields"]["names"][0]["familyName"], "Hansen");
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{verification:?}");
    assert_eq!(
        verification.after[&c1_key]["names"][0]["familyName"], "Hansen",
        "planning again reads the value as it now is"
    );
    assert!(applied.plan.notes.iter().any(|n| n.contains("pseudonymous ids")));

    // Asked again: every contact is already as requested, and nothing is sent.
    let again = apply(&google, &ctx(), &kari_in_workspace(), &family_name("Hansen"), &retain())
        .await
        .unwrap();
    assert_eq!(again.changed(), 0);
    assert!(
        again
            .plan
            .items
            .iter()
            .all(|i| i.action == Action::Keep && i.reason.as_deref() == Some("already as requested")),
        "{:?}",
        again.plan.items
    );
    assert_eq!(fake.calls().iter().filter(|c| c.contains(":updateContact")).count(), 3);
}

#[tokio::test]
async fn a_contact_that_stops_naming_her_before_the_update_is_left_alone_and_the_plan_made_again() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let subject = Identities {
        emails: vec![Email::parse(KARI).unwrap()],
        ..Default::default()
    };
    let change = family_name("Hansen");
    let mut plan = google.plan(&ctx(), &subject, &change).await.unwrap();
    check_plan(&subject, &mut plan, &retain());
    // Someone corrects the address meanwhile: the etag the plan holds is stale, and the
    // contact read again is no longer hers.
    fake.with(|s| {
        let c1 = s
            .people
            .iter_mut()
            .find(|p| p.json["resourceName"] == "people/c1")
            .unwrap();
        c1.json["emailAddresses"] = json!([{"value": "kari@elsewhere.example"}]);
        c1.version += 1;
        c1.stamp();
    });
    let item = plan.items.iter().find(|i| i.key.ends_with("people/c1")).unwrap();
    // Not a refusal by Google: the plan no longer fits the contact, and is made again.
    let err = dsr_fixtures::testing::execute(&google, &subject, &change, item)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert!(err.to_string().contains("dsr retry test --processor google"), "{err}");
    assert_eq!(
        fake.contact("ola.hansen@racom.no", "people/c1").unwrap()["names"][0]["familyName"],
        "Nordmann"
    );
}

#[tokio::test]
async fn rectification_replaces_the_subjects_phone_and_keeps_the_contacts_other_number() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let change = Change::Rectification {
        changes: vec![FieldChange {
            field: RectifyField::Phone,
            value: "+47 987 65 432".into(),
        }],
    };
    let applied = apply(&google, &ctx(), &kari_in_workspace(), &change, &retain())
        .await
        .unwrap();
    let c3 = fake.contact("post@racom.no", "people/c3").expect("people/c3");
    let phones: Vec<&str> = c3["phoneNumbers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["canonicalForm"].as_str())
        .collect();
    assert!(phones.contains(&"+4798765432"), "the new number: {phones:?}");
    assert!(
        !phones.contains(&"+4791234567"),
        "her old number is gone, not kept beside the new: {phones:?}"
    );
    assert!(
        phones.contains(&"+4722000000"),
        "the switchboard number is not hers and stays: {phones:?}"
    );
    assert_eq!(applied.changed(), 2);
    assert!(
        remaining(&applied).is_empty(),
        "the contact still found by her address holds the new number once: {:?}",
        remaining(&applied)
    );
    let c1 = fake.contact("ola.hansen@racom.no", "people/c1").unwrap();
    assert_eq!(c1["phoneNumbers"].as_array().unwrap().len(), 1, "{c1}");
}

#[tokio::test]
async fn after_a_stale_etag_only_the_planned_change_is_sent_and_only_to_a_contact_as_the_plan_read_it() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let subject = kari_in_workspace();
    let change = Change::Rectification {
        changes: vec![FieldChange {
            field: RectifyField::Email,
            value: "kari.hansen@example.no".into(),
        }],
    };
    let mut plan = google.plan(&ctx(), &subject, &change).await.unwrap();
    check_plan(&subject, &mut plan, &retain());
    let item = plan
        .items
        .iter()
        .find(|i| i.key.ends_with("people/c1"))
        .unwrap()
        .clone();
    assert_eq!(item.action, Action::Patch);
    // An edit in Google Contacts while the plan waits: a new etag, so the planned update is stale.
    let edit = |f: &dyn Fn(&mut Value)| {
        fake.with(|s| {
            let c1 = s
                .people
                .iter_mut()
                .find(|p| p.json["resourceName"] == "people/c1")
                .unwrap();
            f(&mut c1.json);
            c1.version += 1;
            c1.stamp();
        })
    };
    let emails = || fake.contact("ola.hansen@racom.no", "people/c1").unwrap()["emailAddresses"].clone();
    let updates = || {
        fake.calls()
            .iter()
            .filter(|c| c.contains("people/c1:updateContact"))
            .count()
    };
    let original = emails();
    assert!(original.to_string().contains(KARI), "{original}");

    // Someone adds an address: the planned list would drop it.
    edit(&|c| {
        c["emailAddresses"]
            .as_array_mut()
            .unwrap()
            .push(json!({"value": "kari@styre.example", "type": "work"}))
    });
    let err = dsr_fixtures::testing::execute(&google, &subject, &change, &item)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert!(!err.is_retryable());
    assert_eq!(updates(), 1, "the stale attempt only");
    assert_eq!(
        emails().as_array().unwrap().len(),
        original.as_array().unwrap().len() + 1
    );

    // Someone made exactly the correction asked for: done, nothing more sent.
    let corrected: Vec<Value> = original
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if e["value"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(KARI)) {
                e["value"] = json!("kari.hansen@example.no");
            }
            e
        })
        .collect();
    edit(&|c| c["emailAddresses"] = json!(corrected));
    let outcome = dsr_fixtures::testing::execute(&google, &subject, &change, &item)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, ItemOutcome::Done(r) if r["already_as_requested"] == true),
        "{outcome:?}"
    );
    assert_eq!(updates(), 2);

    // Back as the plan read it, under a new etag: the planned body once more, fresh etag.
    edit(&|c| c["emailAddresses"] = original.clone());
    let outcome = dsr_fixtures::testing::execute(&google, &subject, &change, &item)
        .await
        .unwrap();
    let ItemOutcome::Done(receipt) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(updates(), 4, "a stale attempt, a re-read and the planned body again");
    let now = emails();
    assert_eq!(now.as_array().unwrap().len(), original.as_array().unwrap().len());
    assert!(now.to_string().contains("kari.hansen@example.no"), "{now}");
    assert!(!now.to_string().contains(KARI), "{now}");
    assert_eq!(receipt["fields"]["emailAddresses"], now);
}
