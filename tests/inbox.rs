//! Inbox: unread counting, boxes, muting, reopen, isolation, export and erasure.

use crate::util::*;
use jidstore::Error;
use jidstore::Timestamp;

fn stanza(body: &str) -> String {
    format!("<message xmlns='jabber:client'><body>{body}</body></message>")
}

#[test]
fn messages_unread_boxes_mute_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let bob = bare("bob@localhost");
    let room = bare("room@muc.localhost");
    let inbox = store.inbox();
    inbox.on_message(
        &alice,
        &bob,
        &stanza("1"),
        Some("m1"),
        Timestamp::from_secs(1),
        true,
    )?;
    inbox.on_message(
        &alice,
        &bob,
        &stanza("2"),
        Some("m2"),
        Timestamp::from_secs(2),
        true,
    )?;
    inbox.on_message(
        &alice,
        &room,
        &stanza("r"),
        None,
        Timestamp::from_secs(3),
        true,
    )?;
    let e = inbox.get(&alice, &bob)?.unwrap();
    assert_eq!((e.unread, e.mailbox.as_str()), (2, "inbox"));
    assert_eq!((e.content, e.msg_id), (stanza("2"), Some("m2".into())));
    inbox.on_message(
        &alice,
        &bob,
        &stanza("3"),
        Some("m3"),
        Timestamp::from_secs(4),
        false,
    )?;
    assert_eq!(
        inbox.get(&alice, &bob)?.unwrap().unread,
        0,
        "outgoing resets"
    );

    assert!(inbox.set_box(&alice, &room, "archive")?);
    assert!(inbox.set_muted(&alice, &room, Some(Timestamp::from_secs(99)))?);
    assert!(inbox.reset_unread(&alice, &room)?);
    assert!(!inbox.reset_unread(&alice, &bare("nobody@localhost"))?);
    assert!(!inbox.set_box(&alice, &bare("nobody@localhost"), "bin")?);
    assert!(matches!(
        inbox.set_box(&alice, &room, ""),
        Err(Error::InvalidInput(_))
    ));
    // A new message keeps box and mute.
    inbox.on_message(
        &alice,
        &room,
        &stanza("s"),
        None,
        Timestamp::from_secs(5),
        true,
    )?;

    let store = reopen(&dir, store);
    let entries = store.inbox().list(&bare("ALICE@localhost"))?;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].remote, bob);
    let r = &entries[1];
    assert_eq!(r.remote, room);
    assert_eq!((r.unread, r.mailbox.as_str()), (1, "archive"));
    assert_eq!(r.muted_until, Some(Timestamp::from_secs(99)));
    assert_eq!(r.timestamp, Timestamp::from_secs(5));

    assert!(store.inbox().set_muted(&alice, &room, None)?);
    assert!(store.inbox().remove(&alice, &bob)?);
    assert!(!store.inbox().remove(&alice, &bob)?);
    let store = reopen(&dir, store);
    let entries = store.inbox().list(&alice)?;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].muted_until, None);
    Ok(())
}

#[test]
fn refuses_unknown_owner_and_bad_stanza() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    let bob = bare("bob@localhost");
    let t = Timestamp::from_secs(1);
    assert_no_account(
        store
            .inbox()
            .on_message(&ghost, &bob, &stanza("x"), None, t, true),
    );
    assert_no_account(store.inbox().reset_unread(&ghost, &bob));
    let alice = user(&store, "alice@localhost");
    assert!(matches!(
        store
            .inbox()
            .on_message(&alice, &bob, "<message>", None, t, true),
        Err(Error::InvalidInput(_))
    ));
    assert!(store.inbox().list(&alice).unwrap().is_empty());
}

#[test]
fn lookalike_owners_never_mix() -> TestResult {
    let (_dir, store, owners) = lookalike_store();
    // Each owner also talks to a remote that is another owner's lookalike.
    for (i, owner) in owners.iter().enumerate() {
        for _ in 0..=i {
            store.inbox().on_message(
                owner,
                &bare("a@h"),
                &stanza(owner.as_str()),
                None,
                Timestamp::from_secs(1),
                true,
            )?;
        }
    }
    for (i, owner) in owners.iter().enumerate() {
        let entries = store.inbox().list(owner)?;
        assert_eq!(entries.len(), 1, "{owner}");
        assert_eq!(entries[0].unread, i as u64 + 1);
        assert_eq!(entries[0].content, stanza(owner.as_str()));
    }
    assert!(store.inbox().remove(&bare("A@H.org"), &bare("A@h"))?);
    assert!(store.inbox().list(&owners[1])?.is_empty());
    assert_eq!(store.inbox().list(&owners[0])?.len(), 1);
    Ok(())
}

#[test]
fn export_rows_and_erasure() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let t = Timestamp::from_secs(60);
    store
        .inbox()
        .on_message(&alice, &bob, &stanza("hi, bob"), Some("x"), t, false)?;
    store.inbox().on_message(
        &alice,
        &bare("carol@localhost"),
        &stanza("c"),
        None,
        t,
        true,
    )?;
    store
        .inbox()
        .set_muted(&alice, &bob, Some(Timestamp::from_secs(120)))?;
    store
        .inbox()
        .on_message(&bob, &alice, &stanza("hi, bob"), Some("x"), t, true)?;
    let rows = export_rows(&store, &alice, "inbox.csv");
    assert_eq!(
        rows,
        vec![
            vec![
                "bob@localhost".to_owned(),
                stanza("hi, bob"),
                "0".into(),
                "1970-01-01T00:01:00.000000Z".into(),
                "inbox".into(),
                "1970-01-01T00:02:00.000000Z".into(),
            ],
            vec![
                "carol@localhost".to_owned(),
                stanza("c"),
                "1".into(),
                "1970-01-01T00:01:00.000000Z".into(),
                "inbox".into(),
                String::new(),
            ],
        ]
    );
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["inbox"], rows.len() as u64);
    assert!(store.inbox().list(&alice)?.is_empty());
    assert_eq!(
        store.inbox().list(&bob)?.len(),
        1,
        "bob's inbox entry stays"
    );
    Ok(())
}
