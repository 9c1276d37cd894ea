//! The Microsoft 365 connector's rectification (Art. 16) against the fake Graph in
//! `fixtures/`: only the named contact properties change, in every contact folder, and a
//! planned correction is sent only while the contact still holds what the plan read.

mod common;

use common::*;
use dsr_connector::{Action, Connector, ItemOutcome, ItemState, RectifyField, SharedPolicy, check_plan};
use serde_json::{Value, json};

#[tokio::test]
async fn rectification_changes_only_the_named_fields() {
    let s = setup("").await;
    let applied = correct(&s, &surname_and_title()).await.unwrap();
    assert_eq!(
        (applied.plan.found(), applied.changed()),
        (4, 4),
        "in every contact folder"
    );
    let ola = contact(&s.fake, "c-ola-1").unwrap();
    assert_eq!(ola["surname"], "Hansen");
    assert_eq!(ola["jobTitle"], "Styreleder");
    assert_eq!(ola["givenName"], "Kari");
    assert_eq!(ola["companyName"], "Nordmann Consulting");
    for id in ["c-ola-3", "c-ola-4", "c-salg-1"] {
        assert_eq!(contact(&s.fake, id).unwrap()["surname"], "Hansen", "{id}");
    }
    let other = contact(&s.fake, "c-ola-2").unwrap();
    assert_eq!(other["surname"], "Nordmann", "the look-alike was corrected");

    let key = "contacts ola.hansen@racom.no/c-ola-1";
    let item = applied.item(key).unwrap();
    assert_eq!(item.action, Action::Patch);
    assert_eq!(item.before.as_ref().unwrap()["surname"], "Nordmann");
    assert_eq!(item.after.as_ref().unwrap()["surname"], "Hansen");
    let ItemState::Done { receipt } = &item.state else {
        panic!("{:?}", item.state)
    };
    let surname = receipt["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "surname")
        .unwrap();
    assert_eq!(
        (surname["before"].as_str(), surname["after"].as_str()),
        (Some("Nordmann"), Some("Hansen")),
        "as Graph answered"
    );
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
    assert_eq!(verification.after[key]["surname"], "Hansen");

    // Planned again: every contact is already as requested, with its values now.
    let mut again = s
        .connector
        .plan(&ctx(false), &subject(KARI), &surname_and_title())
        .await
        .unwrap();
    check_plan(&subject(KARI), &mut again, &rules(SharedPolicy::Retain));
    assert_eq!(again.items.len(), 4);
    for item in &again.items {
        assert_eq!(item.action, Action::Keep, "{}", item.key);
        assert_eq!(item.reason.as_deref(), Some("already as requested"));
        assert_eq!(
            item.before,
            Some(json!({"surname": "Hansen", "jobTitle": "Styreleder"}))
        );
    }

    // A field Graph keeps structured is left, and said so.
    let address = correct(&s, &rectification(&[(RectifyField::Address, "Storgata 1")]))
        .await
        .unwrap();
    assert_eq!((address.plan.count("retained"), address.changed()), (4, 0));
    assert!(
        address.plan.notes.iter().any(|n| n.contains("Outlook")),
        "{:?}",
        address.plan.notes
    );
}

#[tokio::test]
async fn a_correction_is_sent_only_while_the_contact_holds_what_the_plan_read() {
    let s = setup("").await;
    let kari = subject(KARI);
    let change = rectification(&[
        (RectifyField::Email, "kari.hansen@example.no"),
        (RectifyField::FamilyName, "Hansen"),
    ]);
    let mut plan = s.connector.plan(&ctx(false), &kari, &change).await.unwrap();
    check_plan(&kari, &mut plan, &rules(SharedPolicy::Retain));
    let item = |id: &str| {
        plan.items
            .iter()
            .find(|i| i.key.ends_with(&format!("/{id}")))
            .unwrap_or_else(|| panic!("{id} in {:?}", keys(&plan)))
            .clone()
    };
    let edit = |id: &str, f: &dyn Fn(&mut Value)| {
        s.fake
            .with(|st| f(&mut st.contacts.iter_mut().find(|c| c.json["id"] == id).unwrap().json))
    };
    let patches = || writes(&s.fake).iter().filter(|c| c.starts_with("PATCH ")).count();
    let ola = item("c-ola-1");
    assert_eq!(ola.action, Action::Patch);

    // Someone adds an address while the plan waits: the planned list would drop it.
    edit("c-ola-1", &|c| {
        c["emailAddresses"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "Jobb", "address": "kari@jobb.example"}))
    });
    let err = execute_for_kari(&s, &change, &ola).await.unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert!(
        err.to_string().contains("dsr retry test --processor microsoft365"),
        "{err}"
    );
    let now = contact(&s.fake, "c-ola-1").unwrap();
    assert_eq!(
        now["emailAddresses"].as_array().unwrap().len(),
        2,
        "the added address is kept"
    );
    assert_eq!(now["surname"], "Nordmann");

    // Someone made exactly the correction asked for: done, nothing sent.
    edit("c-ola-1", &|c| {
        c["emailAddresses"] = json!([{"name": "Kari Nordmann", "address": "kari.hansen@example.no"}]);
        c["surname"] = json!("Hansen");
    });
    let outcome = execute_for_kari(&s, &change, &ola).await.unwrap();
    assert!(
        matches!(&outcome, ItemOutcome::Done(r) if r["already_as_requested"] == true),
        "{outcome:?}"
    );

    // Deleted (or moved) since the plan: not found where planned, nothing sent.
    let in_folder = item("c-ola-3");
    assert!(in_folder.target["folder"].is_string(), "{in_folder:?}");
    s.fake.with(|st| st.contacts.retain(|c| c.json["id"] != "c-ola-3"));
    let err = execute_for_kari(&s, &change, &in_folder).await.unwrap_err();
    assert_eq!(err.code(), "permanent:changed_since_plan", "{err}");
    assert_eq!(patches(), 0);

    // Unchanged since the plan, in a folder too: sent as planned.
    let outcome = execute_for_kari(&s, &change, &item("c-ola-4")).await.unwrap();
    assert!(matches!(outcome, ItemOutcome::Done(_)), "{outcome:?}");
    assert_eq!(contact(&s.fake, "c-ola-4").unwrap()["surname"], "Hansen");
    assert_eq!(patches(), 1);
}
