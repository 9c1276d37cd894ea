//! Erasure in Google Workspace against the fake Gmail and People APIs: one item per message
//! and contact, hard or soft, shared mail kept by the rules, other contacts reported as
//! retained; the plan changes nothing and executing it again changes nothing more.

mod common;

use std::collections::BTreeSet;

use common::*;
use dsr_connector::{
    Action, Applied, Change, Connector, Identities, ItemOutcome, ItemState, SharedPolicy, apply, check_plan,
};
use dsr_fixtures::google::GoogleFake;
use dsr_fixtures::testing::{first_attempt as ctx, preview as dry};

#[tokio::test]
async fn hard_erasure_leaves_no_mail_or_contacts_and_a_rerun_finds_nothing() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    assert_eq!(fake.workspace_holdings_of(KARI, KARI_PHONE), (4, 1, 2));
    let applied = erase(&google, &kari_in_workspace(), &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    assert_eq!(
        fake.workspace_holdings_of(KARI, KARI_PHONE),
        (0, 0, 0),
        "mail in Spam and the Trash is deleted too"
    );
    let ola = "ola.hansen@racom.no";
    let post = "post@racom.no";
    let mut done = applied.keys("mail", "done");
    done.sort();
    assert_eq!(
        done,
        [
            key("mail", ola, "g-ola-1"),
            key("mail", ola, "g-ola-2"),
            key("mail", ola, "g-ola-4"),
            key("mail", post, "g-post-1"),
            key("mail", post, "g-post-3"),
        ]
    );
    assert_eq!(
        applied.keys("mail", "not_hers"),
        [key("mail", ola, "g-ola-3")],
        "Gmail's loose search also returned the look-alike's message; it was refused"
    );
    assert_eq!(
        applied.keys("contacts", "done"),
        [key("contacts", ola, "people/c1"), key("contacts", post, "people/c3")]
    );
    // Never Gmail's documented batchDelete ("no guarantees that messages were not already
    // deleted or even existed"): one messages.delete per item, each with its own outcome.
    let batch = dsr_fixtures::samples::load("google", "gmail_batch_delete").unwrap();
    let (_, batch_path) = batch.request.path.split_once("{userId}/").unwrap();
    assert!(
        fake.calls()
            .iter()
            .all(|c| !(c.starts_with(&batch.request.method) && c.ends_with(batch_path))),
        "one messages.delete per item, no {} {}",
        batch.request.method,
        batch.request.path
    );
    assert_eq!(fake.calls().iter().filter(|c| c.starts_with("DELETE gmail")).count(), 5);
    // Other contacts cannot be deleted through the API: reported as retained, with the step.
    let other = applied
        .plan
        .retained
        .iter()
        .find(|r| r.category == "other_contacts")
        .expect("reported as retained");
    assert_eq!(other.count, 1);
    assert!(
        other.reason.contains("Google Contacts") && other.reason.contains("post@racom.no"),
        "{}",
        other.reason
    );
    assert!(
        fake.unknown_method_calls().is_empty(),
        "no call to a method Google does not have: {:?}",
        fake.unknown_method_calls()
    );
    assert_eq!(
        fake.workspace_holdings_of("annkari.nordmann@example.no", ""),
        (1, 0, 1),
        "the look-alike is untouched"
    );
    assert!(remaining(&applied).is_empty(), "{:?}", remaining(&applied));
    assert_eq!(
        fake.with(|s| s.overlapping_mutations),
        0,
        "contact mutations went one at a time"
    );
    let again = erase(&google, &kari_in_workspace(), &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    assert_eq!(
        (again.plan.found(), again.changed()),
        (1, 0),
        "only the other contact, still retained"
    );
}

#[tokio::test]
async fn soft_erasure_counts_what_sits_in_the_trash() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "soft").await;
    let applied = erase(&google, &kari_in_workspace(), &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    assert_eq!(fake.workspace_holdings_of(KARI, KARI_PHONE), (0, 5, 0));
    let post = "post@racom.no";
    assert!(
        applied
            .keys("mail", "done")
            .contains(&key("mail", post, "g-post-3").as_str()),
        "what was in Spam went to the Trash too"
    );
    assert_eq!(applied.keys("mail", "done").len(), 4);
    let trashed = applied
        .item(&key("mail", "ola.hansen@racom.no", "g-ola-4"))
        .expect("the message already in the Trash is listed");
    assert_eq!(trashed.action, Action::Keep);
    assert_eq!(trashed.state.as_str(), "retained");
    assert!(trashed.reason.as_deref().unwrap().contains("30 days"), "{trashed:?}");
    assert!(
        fake.calls().iter().filter(|c| c.contains("/trash")).count() == 4,
        "no trash call for what is there already"
    );
    assert!(
        applied.plan.notes.iter().any(|n| n.contains("30 days")),
        "{:?}",
        applied.plan.notes
    );
    assert!(
        remaining(&applied).is_empty(),
        "planning again finds everything in the Trash, kept: {:?}",
        remaining(&applied)
    );
    let again = google
        .plan(&ctx(), &kari_in_workspace(), &Change::Erasure)
        .await
        .unwrap();
    assert_eq!(
        again
            .items
            .iter()
            .filter(|i| i.category == "mail" && i.action == Action::Keep)
            .count(),
        5
    );
}

#[tokio::test]
async fn shared_mail_is_retained_unless_the_processor_deletes_shared_items() {
    let ola = "ola.hansen@racom.no";
    for (policy, left) in [(SharedPolicy::Retain, (1, 0, 0)), (SharedPolicy::Delete, (0, 0, 0))] {
        let fake = GoogleFake::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let google = workspace_connector(&fake, dir.path(), "hard").await;
        let applied = erase(&google, &kari_in_workspace(), &rules(policy)).await.unwrap();
        let cc = applied.item(&key("mail", ola, "g-ola-2")).unwrap();
        assert_eq!(
            cc.shared.as_deref(),
            Some("1 other participant"),
            "Per is on Cc: neither Kari nor the mailbox's owner"
        );
        let only_hers = applied.item(&key("mail", ola, "g-ola-1")).unwrap();
        assert_eq!(only_hers.shared, None, "between Kari and the mailbox's owner only");
        assert_eq!(fake.workspace_holdings_of(KARI, KARI_PHONE), left, "{policy:?}");
        let still_there = fake.with(|s| s.gmail.iter().any(|m| m.id == "g-ola-2"));
        match policy {
            SharedPolicy::Retain => {
                assert_eq!(cc.state.as_str(), "retained");
                assert!(still_there);
                assert_eq!(applied.keys("mail", "done").len(), 4);
            }
            SharedPolicy::Delete => {
                assert_eq!(cc.state.as_str(), "done");
                assert!(!still_there);
                assert_eq!(applied.keys("mail", "done").len(), 5);
            }
        }
        assert!(remaining(&applied).is_empty(), "{:?}", remaining(&applied));
    }
}

#[tokio::test]
async fn the_plan_changes_nothing_and_the_dry_run_lists_what_is_then_done() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    let subject = Identities {
        ga_client_ids: vec![seeded(&["subject", "client_id"])],
        ..kari_in_workspace()
    };
    let before = snapshot(&fake);
    let plan = google.plan(&ctx(), &subject, &Change::Erasure).await.unwrap();
    assert_eq!(snapshot(&fake), before, "planning changed something");
    assert!(plan.items.iter().all(|i| i.state == ItemState::Pending));
    let rectified = google.plan(&ctx(), &subject, &family_name("Hansen")).await.unwrap();
    assert_eq!(snapshot(&fake), before, "planning a rectification changed something");
    let c1 = rectified
        .items
        .iter()
        .find(|i| i.key == key("contacts", "ola.hansen@racom.no", "people/c1"))
        .unwrap();
    assert_eq!(c1.action, Action::Patch);
    assert_eq!(c1.before.as_ref().unwrap()["names"][0]["familyName"], "Nordmann");
    assert_eq!(c1.after.as_ref().unwrap()["names"][0]["familyName"], "Hansen");

    let preview = apply(&google, &dry(), &subject, &Change::Erasure, &retain())
        .await
        .unwrap();
    assert_eq!(snapshot(&fake), before, "the dry run changed something");
    assert!(preview.verification.is_none());
    assert_eq!(preview.changed(), 0);
    assert!(
        preview.plan.items.iter().all(|i| i.data.is_null()),
        "records are not kept"
    );
    assert_eq!(
        preview.plan.count("pending"),
        2 + 4 + 2,
        "two deletion requests, four messages, two contacts"
    );

    let applied = erase(&google, &subject, &retain()).await.unwrap();
    let keys = |a: &Applied| {
        a.plan
            .items
            .iter()
            .map(|i| (i.key.clone(), i.state.as_str()))
            .collect::<Vec<_>>()
    };
    let previewed: Vec<_> = keys(&preview)
        .into_iter()
        .map(|(k, s)| (k, if s == "pending" { "done" } else { s }))
        .collect();
    assert_eq!(previewed, keys(&applied), "the preview is what was then done");
}

#[tokio::test]
async fn executing_a_plan_again_changes_nothing_more() {
    for mode in ["hard", "soft"] {
        let fake = GoogleFake::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let google = workspace_connector(&fake, dir.path(), mode).await;
        let subject = Identities {
            ga_client_ids: vec![seeded(&["subject", "client_id"])],
            ..kari_in_workspace()
        };
        let mut applied = erase(&google, &subject, &rules(SharedPolicy::Delete)).await.unwrap();
        let after = snapshot(&fake);
        let calls = fake.calls().len();
        // A re-delivered task: the engine skips what is recorded as done.
        dsr_connector::plan::execute_plan(
            &google,
            &ctx(),
            &subject,
            &Change::Erasure,
            &mut applied.plan,
            |_, _| async { Ok::<(), ()>(()) },
        )
        .await
        .unwrap();
        assert_eq!(fake.calls().len(), calls, "{mode}: a settled item was executed again");
        // And were a Workspace item's call made again, Google has nothing more to change.
        for item in applied.plan.items.iter().filter(|i| i.category != "analytics_user") {
            if !matches!(item.state, ItemState::Done { .. }) {
                continue;
            }
            let outcome = dsr_fixtures::testing::execute(&google, &subject, &Change::Erasure, item)
                .await
                .unwrap();
            match (mode, item.category.as_str()) {
                ("soft", "mail") => assert!(matches!(outcome, ItemOutcome::Done(_)), "trashing again: {outcome:?}"),
                _ => assert_eq!(outcome, ItemOutcome::AlreadyGone, "{}", item.key),
            }
        }
        assert_eq!(snapshot(&fake), after, "{mode}: executing again changed the fake");
    }
}

#[tokio::test]
async fn a_message_the_search_returns_that_is_not_hers_is_refused_and_untouched() {
    let fake = GoogleFake::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let google = workspace_connector(&fake, dir.path(), "hard").await;
    fake.with(|s| s.faults.ignore_search_filter = true);
    let applied = erase(&google, &kari_in_workspace(), &rules(SharedPolicy::Delete))
        .await
        .unwrap();
    let mut refused = applied.keys("mail", "not_hers");
    refused.sort();
    assert_eq!(
        refused,
        [
            key("mail", "ola.hansen@racom.no", "g-ola-3"),
            key("mail", "post@racom.no", "g-post-2")
        ],
        "every message of the mailbox came back; only hers are changed"
    );
    let left: BTreeSet<String> = fake.with(|s| s.gmail.iter().map(|m| m.id.clone()).collect());
    assert_eq!(left, BTreeSet::from(["g-ola-3".to_string(), "g-post-2".to_string()]));
    assert_eq!(applied.keys("mail", "done").len(), 5);
    assert!(
        fake.contact("ola.hansen@racom.no", "people/c2").is_some()
            && fake.contact("post@racom.no", "people/c4").is_some(),
        "contacts that are not hers stay"
    );
    // The engine, not the connector, is the one that refuses: the check on the raw plan.
    let fake2 = GoogleFake::start().await.unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let google2 = workspace_connector(&fake2, dir2.path(), "hard").await;
    fake2.with(|s| s.faults.ignore_search_filter = true);
    let mut plan = google2
        .plan(&ctx(), &kari_in_workspace(), &Change::Erasure)
        .await
        .unwrap();
    let faktura = plan
        .items
        .iter()
        .find(|i| i.key == key("mail", "post@racom.no", "g-post-2"))
        .expect("in the plan");
    assert!(faktura.claims.is_empty(), "no header names her");
    assert_eq!(faktura.action, Action::Delete);
    check_plan(&kari_in_workspace(), &mut plan, &retain());
    let faktura = plan
        .items
        .iter()
        .find(|i| i.key == key("mail", "post@racom.no", "g-post-2"))
        .unwrap();
    assert_eq!(faktura.state.as_str(), "not_hers");
}
