//! Last activity (XEP-0012): set, get, remove, reopen, isolation, export and erasure.

use crate::util::*;
use jidstore::ext::last::LastActivity;

#[test]
fn set_get_remove_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    assert_eq!(store.last().get(&alice)?, None);
    store.last().set(&alice, 1_700_000_000, "gone fishing")?;
    store.last().set(&alice, 1_700_000_100, "back later")?;
    let store = reopen(&dir, store);
    assert_eq!(
        store.last().get(&bare("ALICE@localhost"))?,
        Some(LastActivity {
            seconds: 1_700_000_100,
            status: "back later".into()
        })
    );
    assert!(store.last().remove(&alice)?);
    assert!(!store.last().remove(&alice)?);
    let store = reopen(&dir, store);
    assert_eq!(store.last().get(&alice)?, None);
    Ok(())
}

#[test]
fn refuses_unknown_owner() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    assert_no_account(store.last().set(&ghost, 1, ""));
    assert_eq!(store.last().get(&ghost).unwrap(), None);
}

#[test]
fn lookalike_owners_never_mix() -> TestResult {
    let (_dir, store, owners) = lookalike_store();
    for (i, owner) in (0i64..).zip(&owners) {
        store.last().set(owner, i, owner.as_str())?;
    }
    for (i, owner) in (0i64..).zip(&owners) {
        let last = store.last().get(owner)?.unwrap();
        assert_eq!((last.seconds, last.status.as_str()), (i, owner.as_str()));
    }
    store.last().remove(&bare("A@H"))?;
    assert_eq!(store.last().get(&owners[0])?, None);
    for owner in &owners[1..] {
        assert!(store.last().get(owner)?.is_some(), "{owner}");
    }
    Ok(())
}

#[test]
fn export_rows_and_erasure() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    store.last().set(&alice, 1_700_000_000, "away, for now")?;
    store.last().set(&bob, 1, "")?;
    let rows = export_rows(&store, &alice, "last.csv");
    assert_eq!(
        rows,
        vec![vec![
            "alice@localhost",
            "2023-11-14T22:13:20.000000Z",
            "away, for now"
        ]]
    );
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["last"], rows.len() as u64);
    assert_eq!(store.last().get(&alice)?, None);
    assert!(store.last().get(&bob)?.is_some());
    Ok(())
}
