//! The Microsoft 365 connector's erasure (Art. 17) against the fake Graph in `fixtures/`: what
//! it plans, what it deletes and how (hard or soft), what it retains or refuses, and that a
//! plan, a dry run and a re-delivered execution change nothing more than they should.

mod common;

use std::collections::BTreeSet;

use common::*;
use dsr_connector::{Action, Change, Connector, ItemOutcome, ItemState, SharedPolicy, check_plan};

#[tokio::test]
async fn erasure_leaves_nothing_verifies_it_and_a_rerun_is_a_no_op() {
    let s = setup("").await;
    assert_eq!(s.fake.holdings_of(KARI), (29, 4));
    let applied = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!((applied.plan.found(), applied.changed()), (33, 33));
    assert_eq!(applied.keys("messages", "done").len(), 29);
    assert_eq!(
        applied.keys("contacts", "done"),
        [
            "contacts ola.hansen@racom.no/c-ola-1",
            "contacts ola.hansen@racom.no/c-ola-3",
            "contacts ola.hansen@racom.no/c-ola-4",
            "contacts salg@racom.no/c-salg-1",
        ],
        "in every contact folder"
    );
    assert_eq!(
        applied.keys("messages", "not_hers"),
        ["messages ola.hansen@racom.no/m-ola-3"],
        "the look-alike the loose participants: search returned was refused"
    );
    assert_eq!(s.fake.holdings_of(KARI), (0, 0), "the fake still holds Kari's data");
    assert_eq!(s.fake.holdings_of(LOOK_ALIKE), (1, 2), "the look-alike was touched");
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
    assert!(
        s.fake.calls().iter().any(|c| c.ends_with("/permanentDelete")),
        "hard mode purges"
    );
    assert!(
        !s.fake.calls().iter().any(|c| c.starts_with("DELETE ")),
        "hard mode never moves to Deleted Items"
    );
    assert!(
        applied.plan.notes.iter().any(|n| n.contains("Recoverable Items")),
        "{:?}",
        applied.plan.notes
    );

    let again = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!((again.plan.found(), again.changed()), (0, 0));
}

#[tokio::test]
async fn soft_erasure_moves_mail_to_deleted_items_and_says_retention_purges_it() {
    let s = setup("delete_mode = \"soft\"\n").await;
    let applied = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!(s.fake.live_messages_of(KARI), 0);
    assert_eq!(
        s.fake.holdings_of(KARI),
        (29, 0),
        "every message in Deleted Items, the one already there not purged"
    );
    let already = applied.item("messages post@racom.no/m-post-2").unwrap();
    assert_eq!(already.action, Action::Keep);
    assert!(
        matches!(&already.state, ItemState::Retained { reason } if reason.contains("Deleted Items")),
        "{:?}",
        already.state
    );
    assert_eq!(applied.changed(), 32, "28 messages and 4 contacts");
    assert!(s.fake.calls().iter().any(|c| c.starts_with("DELETE ")));
    assert!(!s.fake.calls().iter().any(|c| c.ends_with("/permanentDelete")));
    let verification = applied.verification.as_ref().unwrap();
    assert!(verification.remaining.is_empty(), "{:?}", verification.remaining);
    assert!(
        applied.plan.notes.iter().any(|n| n.contains("retention policy")),
        "{:?}",
        applied.plan.notes
    );

    // Planned again: every message of hers is in Deleted Items, kept for retention, none due.
    let mut again = s
        .connector
        .plan(&ctx(false), &subject(KARI), &Change::Erasure)
        .await
        .unwrap();
    check_plan(&subject(KARI), &mut again, &rules(SharedPolicy::Delete));
    let hers: Vec<_> = again
        .items
        .iter()
        .filter(|i| !matches!(i.state, ItemState::NotHers { .. }))
        .collect();
    assert_eq!(hers.len(), 29);
    assert!(
        hers.iter()
            .all(|i| i.action == Action::Keep && i.state.as_str() == "retained"),
        "{hers:?}"
    );
}

#[tokio::test]
async fn a_plan_and_a_dry_run_change_nothing_and_list_what_the_run_does() {
    let s = setup("").await;
    let before = holdings(&s.fake);
    let plan = s
        .connector
        .plan(&ctx(false), &subject(KARI), &Change::Erasure)
        .await
        .unwrap();
    assert_eq!(holdings(&s.fake), before, "planning changed the fake");
    let dry = erase(&s, SharedPolicy::Delete, true).await.unwrap();
    assert!(dry.verification.is_none());
    assert_eq!((dry.plan.found(), dry.changed()), (33, 0));
    assert_eq!(dry.plan.count("pending"), 33, "all of hers would be deleted");
    assert_eq!(holdings(&s.fake), before, "the dry run changed the fake");
    assert_eq!(s.fake.holdings_of(KARI), (29, 4));
    let rectify_dry = apply_for_kari(&s, &surname_and_title(), SharedPolicy::Retain, true)
        .await
        .unwrap();
    assert_eq!(rectify_dry.plan.count("pending"), 4);
    assert_eq!(
        holdings(&s.fake),
        before,
        "the rectification's dry run changed the fake"
    );
    assert!(writes(&s.fake).is_empty(), "{:?}", writes(&s.fake));

    let executed = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!(keys(&plan), keys(&dry.plan));
    assert_eq!(
        keys(&dry.plan),
        keys(&executed.plan),
        "the preview is the plan carried out"
    );
    assert_eq!(executed.changed(), 33);
}

#[tokio::test]
async fn shared_mail_is_retained_unless_the_company_deletes_it() {
    let s = setup("").await;
    let retained = erase(&s, SharedPolicy::Retain, false).await.unwrap();
    assert_eq!(set(retained.keys("messages", "retained")), set(SHARED.to_vec()));
    for (key, with) in SHARED
        .iter()
        .zip(["1 other participant", "1 other participant", "2 other participants"])
    {
        let item = retained.item(key).unwrap();
        assert_eq!(item.shared.as_deref(), Some(with), "{key}");
        assert_eq!(
            item.state,
            ItemState::Retained {
                reason: "it also concerns other people".into()
            }
        );
    }
    assert!(
        retained
            .plan
            .items
            .iter()
            .filter_map(|i| i.shared.as_deref())
            .all(|s| !s.contains('@')),
        "a count, never who"
    );
    assert_eq!(
        retained.item("messages ola.hansen@racom.no/m-ola-1").unwrap().shared,
        None,
        "between her and the mailbox's owner only"
    );
    assert_eq!(retained.changed(), 30);
    assert_eq!(s.fake.holdings_of(KARI), (3, 0), "the shared messages stay");
    assert!(retained.verification.as_ref().unwrap().remaining.is_empty());

    let deleted = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    assert_eq!(set(deleted.keys("messages", "done")), set(SHARED.to_vec()));
    assert_eq!(s.fake.holdings_of(KARI), (0, 0));
}

#[tokio::test]
async fn a_redelivered_execution_changes_nothing_more() {
    let s = setup("").await;
    let kari = subject(KARI);
    let mut plan = s.connector.plan(&ctx(false), &kari, &Change::Erasure).await.unwrap();
    check_plan(&kari, &mut plan, &rules(SharedPolicy::Delete));
    let due: Vec<_> = plan.items.iter().filter(|i| i.is_due()).cloned().collect();
    assert_eq!(due.len(), 33);
    for item in &due {
        let outcome = execute_for_kari(&s, &Change::Erasure, item).await.unwrap();
        assert!(matches!(outcome, ItemOutcome::Done(_)), "{}: {outcome:?}", item.key);
    }
    let after = holdings(&s.fake);
    for item in &due {
        let outcome = execute_for_kari(&s, &Change::Erasure, item).await.unwrap();
        assert_eq!(outcome, ItemOutcome::AlreadyGone, "{}", item.key);
    }
    assert_eq!(holdings(&s.fake), after);

    let s = setup("").await;
    let change = surname_and_title();
    let mut plan = s.connector.plan(&ctx(false), &kari, &change).await.unwrap();
    check_plan(&kari, &mut plan, &rules(SharedPolicy::Retain));
    let due: Vec<_> = plan.items.iter().filter(|i| i.is_due()).cloned().collect();
    assert_eq!(due.len(), 4);
    for item in &due {
        execute_for_kari(&s, &change, item).await.unwrap();
    }
    let after = holdings(&s.fake);
    for item in &due {
        let outcome = execute_for_kari(&s, &change, item).await.unwrap();
        let ItemOutcome::Done(receipt) = outcome else {
            panic!("{}: {outcome:?}", item.key)
        };
        assert!(receipt["fields"].as_array().is_some_and(|f| f.len() == 2), "{receipt}");
    }
    assert_eq!(holdings(&s.fake), after, "the same values again: nothing changed");
}

#[tokio::test]
async fn what_a_search_ignoring_its_filter_returns_that_is_not_hers_is_refused_and_untouched() {
    let s = setup("").await;
    s.fake.with(|st| st.faults.ignore_search_filter = true);
    let applied = erase(&s, SharedPolicy::Delete, false).await.unwrap();
    let refused: BTreeSet<_> = applied.keys("messages", "not_hers").into_iter().collect();
    assert_eq!(
        refused,
        BTreeSet::from([
            "messages ola.hansen@racom.no/m-ola-3",
            "messages post@racom.no/m-post-3",
            "messages post@racom.no/m-post-4",
        ])
    );
    let refused: BTreeSet<_> = applied.keys("contacts", "not_hers").into_iter().collect();
    assert_eq!(
        refused,
        BTreeSet::from([
            "contacts ola.hansen@racom.no/c-ola-2",
            "contacts ola.hansen@racom.no/c-ola-5",
            "contacts post@racom.no/c-post-1",
            "contacts salg@racom.no/c-salg-2",
        ])
    );
    assert!(
        applied
            .plan
            .items
            .iter()
            .filter(|i| i.state.as_str() == "not_hers")
            .all(|i| matches!(&i.state, ItemState::NotHers { reason } if reason.starts_with("not the subject's")))
    );
    assert_eq!(applied.changed(), 33);
    assert_eq!(s.fake.holdings_of(KARI), (0, 0));
    assert_eq!(s.fake.holdings_of(LOOK_ALIKE), (1, 2));
    assert_eq!(s.fake.holdings_of("o'hara@example.ie"), (1, 1));
    let left = message_ids(&s.fake);
    for id in ["m-ola-3", "m-post-3", "m-post-4", "m-hr-1"] {
        assert!(left.contains(id), "{id} was deleted");
    }
    assert!(contact(&s.fake, "c-salg-2").is_some());

    let s = setup("").await;
    s.fake.with(|st| st.faults.ignore_search_filter = true);
    let applied = correct(&s, &surname_and_title()).await.unwrap();
    assert_eq!(applied.keys("contacts", "not_hers").len(), 4);
    assert_eq!(applied.changed(), 4);
    for (id, surname) in [
        ("c-ola-2", "Nordmann"),
        ("c-ola-5", "Nordmann"),
        ("c-salg-2", "Olsen"),
        ("c-post-1", "O'Hara"),
    ] {
        let other = contact(&s.fake, id).unwrap();
        assert_eq!(other["surname"], surname, "{id} was corrected");
        assert!(other["jobTitle"] != "Styreleder", "{id} was corrected");
    }
}

/// Mailboxes are searched for erasure at once (held until four calls to their own mailbox
/// are in flight, calls to different mailboxes are seen together only if sent together), and
/// the plan lists the same items in the same order whatever order Graph answers in.
#[tokio::test]
async fn erasure_searches_mailboxes_at_once_and_plans_the_same_whatever_order_graph_answers_in() {
    let s = setup("delete_mode = \"soft\"\n").await;
    let (ctx, kari) = (ctx(false), subject(KARI));
    let plan = || s.connector.plan(&ctx, &kari, &Change::Erasure);
    let in_order = plan().await.unwrap();
    s.fake.answer_out_of_order(std::time::Duration::from_millis(60));
    let scrambled = plan().await.unwrap();
    assert!(in_order.found() >= 33, "{}", in_order.found());
    assert_eq!(scrambled.found(), in_order.found());
    assert!(scrambled.items == in_order.items, "the same items in the same order");
    assert_eq!(scrambled.notes, in_order.notes);
    s.fake.with(|st| st.scramble = None);
    s.fake
        .hold_mailbox_calls_until(4, std::time::Duration::from_millis(100));
    plan().await.unwrap();
    let mailboxes = s.fake.max_mailboxes_in_flight();
    assert!(mailboxes >= 2, "calls to {mailboxes} mailbox(es) at once");
    let seen = s.fake.max_in_flight();
    assert!(seen.values().all(|n| *n <= 4), "never more than Graph allows: {seen:?}");
}
