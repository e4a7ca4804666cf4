//! Offline messages: store, list, count, pop, expire, reopen, isolation, export and erasure.

use crate::util::*;
use jidstore::Error;
use jidstore::Timestamp;
use jidstore::ext::offline::OfflineMessage;

fn msg(from: &str, to: &str, secs: i64, expires: Option<i64>, body: &str) -> OfflineMessage {
    OfflineMessage {
        from: full(from),
        to: full(to),
        timestamp: Timestamp::from_secs(secs),
        expires: expires.map(Timestamp::from_secs),
        stanza: format!("<message xmlns='jabber:client'><body>{body}</body></message>"),
    }
}

#[test]
fn store_list_pop_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    // Arrival order, not timestamp order.
    let m1 = msg("bob@localhost/phone", "alice@localhost", 300, None, "one");
    let m2 = msg(
        "carol@localhost",
        "alice@localhost/pc",
        100,
        Some(150),
        "two",
    );
    let m3 = msg(
        "dave@localhost",
        "alice@localhost",
        200,
        Some(10_000),
        "three",
    );
    for m in [&m1, &m2, &m3] {
        store.offline().store(&alice, m)?;
    }
    let store = reopen(&dir, store);
    assert_eq!(store.offline().count(&alice)?, 3);
    assert_eq!(
        store.offline().list(&bare("Alice@localhost"))?,
        vec![m1.clone(), m2.clone(), m3.clone()]
    );
    // m2 expired at 150 and is dropped, not delivered.
    assert_eq!(
        store.offline().pop_all(&alice, Timestamp::from_secs(150))?,
        vec![m1, m3]
    );
    assert_eq!(store.offline().count(&alice)?, 0);
    assert!(
        store
            .offline()
            .pop_all(&alice, Timestamp::from_secs(150))?
            .is_empty()
    );
    let store = reopen(&dir, store);
    assert!(store.offline().list(&alice)?.is_empty());
    Ok(())
}

#[test]
fn expire_removes_expired_of_all_owners() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    store
        .offline()
        .store(&alice, &msg("x@h", "alice@localhost", 1, Some(10), "a"))?;
    store
        .offline()
        .store(&alice, &msg("x@h", "alice@localhost", 2, Some(30), "b"))?;
    store
        .offline()
        .store(&alice, &msg("x@h", "alice@localhost", 3, None, "c"))?;
    store
        .offline()
        .store(&bob, &msg("x@h", "bob@localhost", 4, Some(20), "d"))?;
    assert_eq!(store.offline().expire(Timestamp::from_secs(20))?, 2);
    assert_eq!(store.offline().expire(Timestamp::from_secs(20))?, 0);
    assert_eq!(store.offline().count(&alice)?, 2);
    assert_eq!(store.offline().count(&bob)?, 0);
    Ok(())
}

#[test]
fn refuses_unknown_owner_and_bad_stanza() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    let m = msg("x@h", "ghost@localhost", 1, None, "hi");
    assert_no_account(store.offline().store(&ghost, &m));
    let alice = user(&store, "alice@localhost");
    let mut bad = m;
    bad.stanza = "<message><body>hi</message>".into();
    assert!(matches!(
        store.offline().store(&alice, &bad),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(store.offline().count(&alice).unwrap(), 0);
}

#[test]
fn lookalike_owners_never_mix() -> TestResult {
    let (_dir, store, owners) = lookalike_store();
    for (i, owner) in owners.iter().enumerate() {
        for _ in 0..=i {
            store
                .offline()
                .store(owner, &msg("x@h", owner.as_str(), 1, None, owner.as_str()))?;
        }
    }
    for (i, owner) in owners.iter().enumerate() {
        assert_eq!(store.offline().count(owner)?, i as u64 + 1, "{owner}");
        assert!(
            store
                .offline()
                .list(owner)?
                .iter()
                .all(|m| m.to.as_str() == owner.as_str())
        );
    }
    let popped = store
        .offline()
        .pop_all(&bare("A@H"), Timestamp::from_secs(0))?;
    assert_eq!(popped.len(), 1);
    assert_eq!(store.offline().count(&owners[1])?, 2, "a@h.org untouched");
    Ok(())
}

#[test]
fn export_rows_and_erasure() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let m1 = msg(
        "bob@localhost/phone",
        "alice@localhost",
        0,
        Some(60),
        "hi, there",
    );
    let m2 = msg("carol@localhost", "alice@localhost", 1, None, "yo");
    store.offline().store(&alice, &m1)?;
    store.offline().store(&alice, &m2)?;
    store
        .offline()
        .store(&bob, &msg("alice@localhost", "bob@localhost", 2, None, "x"))?;
    let rows = export_rows(&store, &alice, "offline.csv");
    assert_eq!(
        rows,
        vec![
            vec![
                "1970-01-01T00:00:00.000000Z",
                "bob@localhost/phone",
                "alice@localhost",
                m1.stanza.as_str(),
                "1970-01-01T00:01:00.000000Z",
            ],
            vec![
                "1970-01-01T00:00:01.000000Z",
                "carol@localhost",
                "alice@localhost",
                m2.stanza.as_str(),
                "",
            ],
        ]
    );
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["offline"], rows.len() as u64);
    assert_eq!(store.offline().count(&alice)?, 0);
    assert_eq!(store.offline().count(&bob)?, 1);
    Ok(())
}
