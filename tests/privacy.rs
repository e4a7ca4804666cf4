//! Privacy lists (XEP-0016): lists, default, reopen, isolation, export and erasure.

use crate::util::*;
use jidstore::Error;
use jidstore::ext::privacy::{PrivacyAction, PrivacyItem, PrivacyType};

fn rule(order: u32, kind: Option<(PrivacyType, &str)>, action: PrivacyAction) -> PrivacyItem {
    PrivacyItem {
        order,
        kind: kind.map(|k| k.0),
        value: kind.map(|k| k.1.to_owned()),
        action,
        message: false,
        iq: false,
        presence_in: false,
        presence_out: false,
    }
}

#[test]
fn lists_default_remove_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let mut deny_bob = rule(
        1,
        Some((PrivacyType::Jid, "bob@localhost")),
        PrivacyAction::Deny,
    );
    deny_bob.message = true;
    let allow_all = rule(10, None, PrivacyAction::Allow);
    let friends = rule(
        5,
        Some((PrivacyType::Group, "Friends")),
        PrivacyAction::Allow,
    );
    store.privacy().set_list(
        &alice,
        "public",
        &[allow_all.clone(), deny_bob.clone(), friends.clone()],
    )?;
    store.privacy().set_list(&alice, "empty", &[])?;
    assert!(matches!(
        store.privacy().set_default(&alice, Some("missing")),
        Err(Error::NotFound(_))
    ));
    store.privacy().set_default(&alice, Some("public"))?;

    let store = reopen(&dir, store);
    let p = store.privacy();
    assert_eq!(
        p.get_list(&bare("Alice@localhost"), "public")?,
        Some(vec![deny_bob, friends, allow_all]),
        "sorted by order"
    );
    assert_eq!(p.get_list(&alice, "empty")?, Some(vec![]));
    assert_eq!(p.get_list(&alice, "missing")?, None);
    assert_eq!(p.list_names(&alice)?, ["empty", "public"]);
    assert_eq!(p.default_list(&alice)?.as_deref(), Some("public"));

    assert!(p.remove_list(&alice, "empty")?);
    assert_eq!(p.default_list(&alice)?.as_deref(), Some("public"));
    assert!(p.remove_list(&alice, "public")?);
    assert_eq!(
        p.default_list(&alice)?,
        None,
        "removing the default clears it"
    );
    assert!(!p.remove_list(&alice, "public")?);
    p.set_list(&alice, "x", &[])?;
    p.set_default(&alice, Some("x"))?;
    p.set_default(&alice, None)?;
    let store = reopen(&dir, store);
    assert_eq!(store.privacy().default_list(&alice)?, None);
    assert_eq!(store.privacy().list_names(&alice)?, ["x"]);
    Ok(())
}

#[test]
fn refuses_unknown_owner_and_bad_lists() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    assert_no_account(store.privacy().set_list(&ghost, "l", &[]));
    let alice = user(&store, "alice@localhost");
    let allow = rule(1, None, PrivacyAction::Allow);
    let mut typeless = rule(2, None, PrivacyAction::Deny);
    typeless.value = Some("bob@localhost".into());
    let bad_sub = rule(
        3,
        Some((PrivacyType::Subscription, "sometimes")),
        PrivacyAction::Deny,
    );
    for (name, items) in [
        ("", vec![]),
        ("a\0b", vec![]),
        ("dup", vec![allow.clone(), allow.clone()]),
        ("typeless", vec![typeless]),
        ("bad_sub", vec![bad_sub]),
    ] {
        assert!(
            matches!(
                store.privacy().set_list(&alice, name, &items),
                Err(Error::InvalidInput(_))
            ),
            "{name:?}"
        );
    }
    assert!(store.privacy().list_names(&alice).unwrap().is_empty());
}

#[test]
fn lookalike_owners_never_mix() -> TestResult {
    let (_dir, store, owners) = lookalike_store();
    for owner in &owners {
        store.privacy().set_list(owner, owner.as_str(), &[])?;
        store.privacy().set_default(owner, Some(owner.as_str()))?;
    }
    for owner in &owners {
        assert_eq!(store.privacy().list_names(owner)?, [owner.as_str()]);
        assert_eq!(
            store.privacy().default_list(owner)?.as_deref(),
            Some(owner.as_str())
        );
    }
    assert!(matches!(
        store.privacy().set_default(&bare("A@H"), Some("a@hh")),
        Err(Error::NotFound(_))
    ));
    Ok(())
}

#[test]
fn export_rows_and_erasure() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let mut deny = rule(
        1,
        Some((PrivacyType::Subscription, "none")),
        PrivacyAction::Deny,
    );
    deny.message = true;
    deny.presence_in = true;
    store
        .privacy()
        .set_list(&alice, "main", &[rule(2, None, PrivacyAction::Allow), deny])?;
    store.privacy().set_list(&alice, "blank", &[])?;
    store.privacy().set_default(&alice, Some("main"))?;
    store.privacy().set_list(&bob, "main", &[])?;
    let rows = export_rows(&store, &alice, "privacy.csv");
    assert_eq!(
        rows,
        vec![
            vec!["blank", "false", "", "", "", "", ""],
            vec![
                "main",
                "true",
                "1",
                "subscription",
                "none",
                "deny",
                "message presence-in"
            ],
            vec!["main", "true", "2", "", "", "allow", ""],
        ]
    );
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["privacy"], rows.len() as u64);
    assert!(store.privacy().list_names(&alice)?.is_empty());
    assert_eq!(store.privacy().default_list(&alice)?, None);
    assert_eq!(store.privacy().list_names(&bob)?, ["main"]);
    Ok(())
}
