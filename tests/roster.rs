//! Rosters: items, versions, pending requests, reopen, isolation, export and erasure.

use crate::util::*;
use jidstore::ext::roster::{Ask, RosterItem, Subscription};

fn item(jid: &str, subscription: Subscription, ask: Ask) -> RosterItem {
    RosterItem {
        jid: bare(jid),
        name: None,
        subscription,
        ask,
        groups: vec![],
        askmessage: None,
    }
}

#[test]
fn set_get_list_remove_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let roster = store.roster();
    assert_eq!(roster.version(&alice)?, 0);
    let mut bob = item("bob@localhost", Subscription::Both, Ask::None);
    bob.name = Some("Bob".into());
    bob.groups = vec!["Friends".into(), "Work".into()];
    assert_eq!(roster.set(&alice, &bob)?, 1);
    let mut carol = item("carol@example.org", Subscription::None, Ask::In);
    carol.askmessage = Some("let me in".into());
    assert_eq!(roster.set(&alice, &carol)?, 2);
    assert_eq!(
        roster.set(
            &alice,
            &item("dave@localhost", Subscription::From, Ask::Both)
        )?,
        3
    );
    assert_eq!(
        roster.set(&alice, &item("eve@localhost", Subscription::To, Ask::Out))?,
        4
    );
    bob.subscription = Subscription::To;
    assert_eq!(roster.set(&alice, &bob)?, 5, "upsert bumps the version");

    let store = reopen(&dir, store);
    let roster = store.roster();
    assert_eq!(roster.version(&alice)?, 5);
    assert_eq!(
        roster.get(&alice, &bare("Bob@LocalHost"))?,
        Some(bob.clone())
    );
    assert_eq!(roster.get(&alice, &bare("nobody@localhost"))?, None);
    let jids: Vec<String> = roster
        .list(&alice)?
        .into_iter()
        .map(|i| i.jid.to_string())
        .collect();
    assert_eq!(
        jids,
        [
            "bob@localhost",
            "carol@example.org",
            "dave@localhost",
            "eve@localhost"
        ]
    );
    let pending: Vec<String> = roster
        .pending_inbound(&alice)?
        .into_iter()
        .map(|i| i.jid.to_string())
        .collect();
    assert_eq!(pending, ["carol@example.org", "dave@localhost"]);

    assert!(roster.remove(&alice, &bare("dave@localhost"))?);
    assert_eq!(roster.version(&alice)?, 6);
    assert!(!roster.remove(&alice, &bare("dave@localhost"))?);
    assert_eq!(roster.version(&alice)?, 6, "no-op remove keeps the version");
    let store = reopen(&dir, store);
    assert_eq!(store.roster().list(&alice)?.len(), 3);
    assert_eq!(store.roster().get(&alice, &bare("dave@localhost"))?, None);
    Ok(())
}

#[test]
fn refuses_unknown_owner() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    assert_no_account(store.roster().set(
        &ghost,
        &item("bob@localhost", Subscription::None, Ask::None),
    ));
    assert_eq!(store.roster().version(&ghost).unwrap(), 0);
}

#[test]
fn lookalike_owners_never_mix() -> TestResult {
    let (_dir, store, owners) = lookalike_store();
    for (i, owner) in owners.iter().enumerate() {
        for n in 0..=i {
            let contact = format!("c{n}@x");
            store
                .roster()
                .set(owner, &item(&contact, Subscription::Both, Ask::None))?;
        }
    }
    for (i, owner) in owners.iter().enumerate() {
        assert_eq!(store.roster().list(owner)?.len(), i + 1, "{owner}");
        assert_eq!(store.roster().version(owner)?, i as u64 + 1, "{owner}");
        assert_eq!(export_rows(&store, owner, "roster.csv").len(), i + 1);
    }
    // Case variants name the same owner.
    assert_eq!(store.roster().list(&bare("A@H.ORG"))?.len(), 2);
    assert_eq!(store.roster().version(&bare("AB@h"))?, 3);
    Ok(())
}

#[test]
fn export_rows_and_erasure() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let mut b = item("bob@localhost", Subscription::Both, Ask::None);
    b.name = Some("Bob, the builder".into());
    b.groups = vec!["Friends".into(), "Work".into()];
    store.roster().set(&alice, &b)?;
    let mut c = item("carol@localhost", Subscription::None, Ask::In);
    c.askmessage = Some("hi".into());
    store.roster().set(&alice, &c)?;
    store.roster().set(
        &bob,
        &item("alice@localhost", Subscription::Both, Ask::None),
    )?;

    let rows = export_rows(&store, &alice, "roster.csv");
    assert_eq!(
        rows,
        vec![
            vec![
                "bob@localhost",
                "Bob, the builder",
                "both",
                "none",
                "Friends, Work",
                "",
                "",
                r#"["Friends","Work"]"#
            ],
            vec!["carol@localhost", "", "none", "in", "", "hi", "", "[]"],
        ]
    );

    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["roster"], rows.len() as u64);
    assert!(store.roster().list(&alice)?.is_empty());
    assert_eq!(store.roster().version(&alice)?, 0, "version key erased too");
    assert_eq!(store.roster().list(&bob)?.len(), 1, "bob's roster stays");
    assert_eq!(store.roster().version(&bob)?, 1);
    Ok(())
}
