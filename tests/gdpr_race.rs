//! Writes racing an erasure or a node deletion: nothing written for the subject survives
//! `gdpr::remove`, and no pubsub item survives its node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use jidstore::__internal::keys::{self, Keyspace};
use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::pubsub::{Node, NodeType, SubState};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::{BareJid, Error, Store, Timestamp};

use crate::util::*;

const ROUNDS: usize = 20;
/// How long writers may take to notice the erasure and stop.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One write of one class, numbered so payloads differ.
type Write = fn(&Store, &BareJid, u64) -> jidstore::Result<()>;

fn at() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

const WRITES: [(&str, Write); 6] = [
    ("vcard", |s, a, i| {
        s.vcard().set(
            a,
            &format!("<vCard xmlns='vcard-temp'><FN>{i}</FN></vCard>"),
        )
    }),
    ("roster", |s, a, i| {
        let item = RosterItem {
            jid: bare(&format!("c{}@localhost", i % 7)),
            name: None,
            subscription: Subscription::Both,
            ask: Ask::None,
            groups: vec![],
            askmessage: None,
        };
        s.roster().set(a, &item).map(drop)
    }),
    ("private", |s, a, i| {
        s.private()
            .set(a, &format!("ns{}", i % 5), "<q xmlns='x'>v</q>")
    }),
    ("inbox", |s, a, i| {
        s.inbox().on_message(
            a,
            &bare("bob@localhost"),
            "<message/>",
            Some(&i.to_string()),
            at(),
            true,
        )
    }),
    ("mam", |s, a, i| {
        let msg = PmMessage {
            id: None,
            timestamp: at(),
            from: full("alice@localhost/r"),
            to: full("bob@localhost"),
            direction: Direction::Outgoing,
            origin_id: Some(i.to_string()),
            stanza: "<message><body>x</body></message>".into(),
        };
        s.mam().append(a, &msg).map(drop)
    }),
    ("offline", |s, a, _| {
        let msg = OfflineMessage {
            from: full("bob@localhost/p"),
            to: full("alice@localhost"),
            timestamp: at(),
            expires: None,
            stanza: "<message/>".into(),
        };
        s.offline().store(a, &msg)
    }),
];

/// Waits for `n` threads to report on `rx`, failing the test after [`JOIN_TIMEOUT`].
fn join_all(rx: &mpsc::Receiver<(&'static str, u64)>, n: usize) -> Vec<(&'static str, u64)> {
    let deadline = Instant::now() + JOIN_TIMEOUT;
    (0..n)
        .map(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left)
                .expect("a writer did not stop within the timeout")
        })
        .collect()
}

fn archive_of(store: &Store, jid: &BareJid) -> u64 {
    jidstore::__internal::archive_id(store, jid)
        .unwrap()
        .expect("account")
}

#[test]
fn writes_racing_remove_do_not_survive() {
    let (_dir, store) = store();
    let bob = user(&store, "bob@localhost");
    for round in 0..ROUNDS {
        let alice = user(&store, "alice@localhost");
        let archive = archive_of(&store, &alice);
        let pep = Node {
            service: alice.clone(),
            node: "urn:xmpp:avatar".into(),
            owner: alice.clone(),
            kind: NodeType::Pep,
            access_model: "open".into(),
            config: vec![],
            created_at: at(),
        };
        store.pubsub().create_node(&pep).unwrap();
        let written = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        for (name, write) in WRITES {
            let (store, alice, tx, written) =
                (store.clone(), alice.clone(), tx.clone(), written.clone());
            thread::spawn(move || {
                let mut i = 0u64;
                loop {
                    match write(&store, &alice, i) {
                        Ok(()) => {}
                        Err(Error::NoAccount(_)) => break,
                        Err(e) => panic!("{name} write failed: {e}"),
                    }
                    i += 1;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                let _ = tx.send((name, i));
            });
        }
        // Bob publishes and subscribes on Alice's PEP node until erasure takes it away.
        {
            let (store, alice, bob, tx) = (store.clone(), alice.clone(), bob.clone(), tx.clone());
            thread::spawn(move || {
                let p = store.pubsub();
                let node = "urn:xmpp:avatar";
                let mut i = 0u64;
                loop {
                    let res = p
                        .publish(&alice, node, &format!("i{}", i % 4), &bob, "<x/>", at())
                        .and_then(|()| p.subscribe(&alice, node, &bob, SubState::Subscribed));
                    match res {
                        Ok(()) => i += 1,
                        Err(Error::NotFound(_)) => break,
                        Err(e) => panic!("pubsub write failed: {e}"),
                    }
                }
                let _ = tx.send(("pubsub", i));
            });
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(10);
        while written.load(Ordering::Relaxed) < 200 && Instant::now() < deadline {
            thread::yield_now();
        }
        jidstore::gdpr::remove(&store, &alice).unwrap();
        let counts = join_all(&rx, WRITES.len() + 1);
        assert!(counts.iter().map(|c| c.1).sum::<u64>() > 0, "{counts:?}");

        match jidstore::gdpr::retrieve(
            &store,
            &alice,
            std::io::Cursor::new(Vec::new()),
            &jidstore::gdpr::ExportOptions::default(),
        ) {
            Err(Error::NoPersonalData(_)) => {}
            other => panic!("round {round}: alice's data survived erasure: {other:?}"),
        }
        let report = jidstore::verify(&store).unwrap();
        assert!(report.is_clean(), "round {round}: {report}");
        assert_eq!(
            store
                .raw_tree(Keyspace::MamPm)
                .scan_prefix(keys::archive(archive))
                .count(),
            0,
            "round {round}: records of alice's old archive remain"
        );
        assert!(
            store
                .pubsub()
                .get_node(&alice, "urn:xmpp:avatar")
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .pubsub()
                .items(&alice, "urn:xmpp:avatar")
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn publish_racing_delete_node_leaves_no_orphan() {
    let (_dir, store) = store();
    let bob = user(&store, "bob@localhost");
    let service = bare("pubsub.localhost");
    for round in 0..ROUNDS {
        let node = Node {
            service: service.clone(),
            node: "news".into(),
            owner: bob.clone(),
            kind: NodeType::Flat,
            access_model: "open".into(),
            config: vec![],
            created_at: at(),
        };
        store.pubsub().create_node(&node).unwrap();
        let published = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        for t in 0..2u64 {
            let (store, service, tx, published) = (
                store.clone(),
                service.clone(),
                tx.clone(),
                published.clone(),
            );
            let who = bare(&format!("p{t}@remote"));
            thread::spawn(move || {
                let p = store.pubsub();
                let mut i = 0u64;
                loop {
                    let res = p
                        .publish(&service, "news", &format!("{t}-{i}"), &who, "<x/>", at())
                        .and_then(|()| p.subscribe(&service, "news", &who, SubState::Subscribed));
                    match res {
                        Ok(()) => i += 1,
                        Err(Error::NotFound(_)) => break,
                        Err(e) => panic!("publish failed: {e}"),
                    }
                    published.fetch_add(1, Ordering::Relaxed);
                }
                let _ = tx.send(("publish", i));
            });
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(10);
        while published.load(Ordering::Relaxed) < 50 && Instant::now() < deadline {
            thread::yield_now();
        }
        assert!(store.pubsub().delete_node(&service, "news").unwrap());
        join_all(&rx, 2);
        let report = jidstore::verify(&store).unwrap();
        assert!(report.is_clean(), "round {round}: {report}");
        assert!(store.pubsub().items(&service, "news").unwrap().is_empty());
        assert!(
            store
                .pubsub()
                .subscriptions(&service, "news")
                .unwrap()
                .is_empty()
        );
    }
}
