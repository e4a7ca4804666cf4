//! Blocklist (XEP-0191): block, unblock, list, reopen, isolation, export and erasure.

use crate::util::*;
use jidstore::{Error, Jid};

#[test]
fn block_unblock_list_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let spam = [
        full("spam@evil.example"),
        full("Bob@localhost/Phone"),
        full("evil.example"),
    ];
    store.blocklist().block(&alice, &spam)?;
    store.blocklist().block(&alice, &spam[..1])?;
    let store = reopen(&dir, store);
    let bl = store.blocklist();
    let listed: Vec<String> = bl.list(&alice)?.iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        ["bob@localhost/Phone", "evil.example", "spam@evil.example"]
    );
    assert!(bl.is_blocked(&bare("ALICE@localhost"), &full("SPAM@evil.example"))?);
    assert!(!bl.is_blocked(&alice, &full("bob@localhost"))?);
    bl.unblock(&alice, &[full("evil.example"), full("never@blocked")])?;
    assert!(!bl.is_blocked(&alice, &full("evil.example"))?);
    let store = reopen(&dir, store);
    assert_eq!(store.blocklist().list(&alice)?.len(), 2);
    assert_eq!(store.blocklist().unblock_all(&alice)?, 2);
    assert_eq!(store.blocklist().unblock_all(&alice)?, 0);
    let store = reopen(&dir, store);
    assert!(store.blocklist().list(&alice)?.is_empty());
    Ok(())
}

#[test]
fn refuses_unknown_owner_and_empty_block() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    assert_no_account(store.blocklist().block(&ghost, &[full("x@h")]));
    let alice = user(&store, "alice@localhost");
    assert!(matches!(
        store.blocklist().block(&alice, &[]),
        Err(Error::InvalidInput(_))
    ));
    assert!(store.blocklist().list(&alice).unwrap().is_empty());
}

#[test]
fn lookalike_owners_never_mix() -> TestResult {
    let (_dir, store, owners) = lookalike_store();
    for owner in &owners {
        store
            .blocklist()
            .block(owner, &[Jid::from(owner.clone())])?;
    }
    for owner in &owners {
        let listed = store.blocklist().list(owner)?;
        assert_eq!(listed, vec![Jid::from(owner.clone())]);
    }
    assert!(!store.blocklist().is_blocked(&owners[0], &full("a@h.org"))?);
    assert_eq!(store.blocklist().unblock_all(&bare("A@H"))?, 1);
    for owner in &owners[1..] {
        assert_eq!(store.blocklist().list(owner)?.len(), 1, "{owner}");
    }
    Ok(())
}

#[test]
fn export_rows_and_erasure() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    store
        .blocklist()
        .block(&alice, &[full("x@h/r,1"), full("bob@localhost")])?;
    store.blocklist().block(&bob, &[full("alice@localhost")])?;
    let rows = export_rows(&store, &alice, "blocklist.csv");
    assert_eq!(rows, vec![vec!["bob@localhost"], vec!["x@h/r,1"]]);
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["blocklist"], rows.len() as u64);
    assert!(store.blocklist().list(&alice)?.is_empty());
    assert!(
        store
            .blocklist()
            .is_blocked(&bob, &full("alice@localhost"))?
    );
    Ok(())
}
