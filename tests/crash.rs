//! Crash test: SIGKILL `jidstore unregister` at random moments while it erases a user with a
//! large archive. After every kill the store must reopen with the subject either wholly
//! present (export byte-identical to before) or wholly gone (export identical to the kept
//! data only, and every keyspace's entry count equal to a clean erasure's), and no other
//! user's export may change; `verify` must be clean after every reopen.
//!
//! The subject also has a large roster, many offline messages and a PEP node with many items
//! (one of them bob's), which the erasure deletes in a sweep after its commit (issue 13).
//!
//! `JIDSTORE_CRASH_KILLS` (default 200) sets the number of kills, `JIDSTORE_CRASH_MESSAGES`
//! (default 20000) the size of the erased archive, `JIDSTORE_CRASH_RECORDS` (default 1000)
//! the number of roster items, offline messages and PEP items each.

#![allow(clippy::expect_used, reason = "test setup fails the test")]

#[path = "crash_util.rs"]
mod crash_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crash_util::{Res, bare, copy_dir, entry_counts, env_usize, export, open, rand_below};
use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::pubsub::{Node, NodeType, SubState};
use jidstore::ext::roster::{Ask, RosterItem, Subscription as RosterSubscription};
use jidstore::{Jid, Store, Timestamp};

fn populate(store: &Store, messages: usize) -> Res {
    let (alice, bob) = (bare("alice@localhost"), bare("bob@localhost"));
    store.accounts().create(&alice, "pw")?;
    store.accounts().create(&bob, "pw")?;
    store
        .vcard()
        .set(&alice, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")?;
    let (a, b) = (
        Jid::parse("alice@localhost/r")?,
        Jid::parse("bob@localhost/r")?,
    );
    for i in 0..messages {
        let stanza = format!(
            "<message xmlns='jabber:client' from='{a}' to='{b}' id='m{i}'><body>message number {i} with some text to make it the size of a real chat line</body></message>"
        );
        let msg = PmMessage {
            id: None,
            timestamp: Timestamp::from_secs(1_700_000_000 + i64::try_from(i)?),
            from: a.clone(),
            to: b.clone(),
            direction: Direction::Outgoing,
            origin_id: None,
            stanza,
        };
        store.mam().append(&alice, &msg)?;
        if i % 10 == 0 {
            store.mam().append(&bob, &msg)?;
            store
                .inbox()
                .on_message(&bob, &alice, &msg.stanza, None, msg.timestamp, true)?;
        }
    }
    let room = bare("room@muc.localhost");
    for (sender, nick) in [(&alice, "alice"), (&bob, "bob"), (&alice, "alice")] {
        store.muc().append(
            &room,
            &MucMessage {
                id: None,
                timestamp: Timestamp::from_secs(1_700_000_000),
                sender: sender.clone(),
                nick: nick.into(),
                stanza: "<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>"
                    .into(),
            },
        )?;
    }
    store.pubsub().create_node(&Node {
        service: alice.clone(),
        node: "urn:xmpp:avatar:metadata".into(),
        owner: alice.clone(),
        kind: NodeType::Pep,
        access_model: "presence".into(),
        config: vec![],
        created_at: Timestamp::from_secs(1_700_000_000),
    })?;
    store.pubsub().publish(
        &alice,
        "urn:xmpp:avatar:metadata",
        "a1",
        &alice,
        "<metadata xmlns='urn:xmpp:avatar:metadata'/>",
        Timestamp::from_secs(1_700_000_000),
    )?;
    store.pubsub().subscribe(
        &alice,
        "urn:xmpp:avatar:metadata",
        &bob,
        SubState::Subscribed,
    )?;
    store.pubsub().publish(
        &alice,
        "urn:xmpp:avatar:metadata",
        "from-bob",
        &bob,
        "<metadata xmlns='urn:xmpp:avatar:metadata'/>",
        Timestamp::from_secs(1_700_000_000),
    )?;
    many_records(store, &alice, (&a, &b))?;
    store.flush()?;
    Ok(())
}

/// Many small records of alice (roster, offline, PEP items): what the sweep after the commit
/// deletes.
fn many_records(store: &Store, alice: &jidstore::BareJid, (a, b): (&Jid, &Jid)) -> Res {
    for i in 0..env_usize("JIDSTORE_CRASH_RECORDS", 1000) {
        store.roster().set(
            alice,
            &RosterItem {
                jid: bare(&format!("contact{i}@example.org")),
                name: Some(format!("Contact {i}")),
                subscription: RosterSubscription::Both,
                ask: Ask::None,
                groups: vec!["Friends".into()],
                askmessage: None,
            },
        )?;
        store.offline().store(
            alice,
            &OfflineMessage {
                from: b.clone(),
                to: a.clone(),
                timestamp: Timestamp::from_secs(1_700_000_000),
                expires: None,
                stanza: format!("<message><body>offline {i}</body></message>"),
            },
        )?;
        store.pubsub().publish(
            alice,
            "urn:xmpp:avatar:metadata",
            &format!("item{i}"),
            alice,
            "<metadata xmlns='urn:xmpp:avatar:metadata'/>",
            Timestamp::from_secs(1_700_000_000),
        )?;
    }
    Ok(())
}

#[derive(PartialEq, Eq)]
struct Snapshot {
    alice: Option<Vec<u8>>,
    bob: Option<Vec<u8>>,
    counts: Vec<(&'static str, u64)>,
}

fn snapshot(path: &Path) -> Res<Snapshot> {
    let store = open(path)?;
    let report = jidstore::verify(&store)?;
    if !report.is_clean() {
        return Err(format!("verify after reopen: {report}").into());
    }
    Ok(Snapshot {
        alice: export(&store, &bare("alice@localhost"))?,
        bob: export(&store, &bare("bob@localhost"))?,
        counts: entry_counts(&store)?,
    })
}

fn unregister(data: &Path) -> Res<std::process::Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(data)
        .args(["unregister", "alice", "localhost"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

fn main() -> Res {
    let kills = env_usize("JIDSTORE_CRASH_KILLS", 200);
    let messages = env_usize("JIDSTORE_CRASH_MESSAGES", 20_000);
    let tmp = tempfile::tempdir()?;
    let template = tmp.path().join("template");
    {
        let store = open(&template)?;
        populate(&store, messages)?;
    }
    // Reference states: before, and after a clean (uninterrupted) erasure.
    let before_dir = tmp.path().join("before");
    copy_dir(&template, &before_dir)?;
    let before = snapshot(&before_dir)?;
    let after_dir = tmp.path().join("after");
    copy_dir(&template, &after_dir)?;
    let started = Instant::now();
    let status = unregister(&after_dir)?.wait()?;
    let full_run = started.elapsed();
    assert!(status.success(), "uninterrupted unregister failed");
    let after = snapshot(&after_dir)?;
    assert!(before.alice != after.alice, "erasure changed nothing");

    let mut present = 0;
    let mut gone = 0;
    let mut failed = 0;
    let window = full_run.as_micros().max(1);
    for i in 0..kills {
        let work: PathBuf = tmp.path().join(format!("run{i}"));
        copy_dir(&template, &work)?;
        let mut child = unregister(&work)?;
        let delay = u64::try_from(rand_below(window))?;
        std::thread::sleep(Duration::from_micros(delay));
        let _ = child.kill();
        let _ = child.wait();
        let now = match snapshot(&work) {
            Ok(now) => now,
            Err(e) => {
                failed += 1;
                let keep = std::env::temp_dir().join(format!("jidstore-crash-failure-{i}"));
                let _ = copy_dir(&work, &keep);
                eprintln!(
                    "kill {i} after {delay} us: reopen failed: {e} (copy kept in {})",
                    keep.display()
                );
                std::fs::remove_dir_all(&work)?;
                continue;
            }
        };
        // Bob's export is part of the state: his subscription to alice's PEP node goes with
        // the node, so it must match the same reference as alice's.
        if now == before {
            present += 1;
        } else if now == after {
            gone += 1;
        } else {
            failed += 1;
            eprintln!(
                "kill {i} after {delay} us: torn state (alice matches before: {}, after: {}; bob matches before: {}, after: {})\n  counts now    {:?}\n  counts before {:?}\n  counts after  {:?}",
                now.alice == before.alice,
                now.alice == after.alice,
                now.bob == before.bob,
                now.bob == after.bob,
                now.counts,
                before.counts,
                after.counts
            );
        }
        std::fs::remove_dir_all(&work)?;
    }
    println!(
        "crash: {kills} SIGKILLs during unregister of a {messages}-message archive (full run {:.0} ms): {present} wholly present, {gone} wholly gone, {failed} torn",
        full_run.as_secs_f64() * 1e3
    );
    println!("{} passed, {failed} failed", kills - failed);
    if failed > 0 {
        return Err(format!("{failed} kills left a torn state").into());
    }
    Ok(())
}
