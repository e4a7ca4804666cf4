//! Criterion benchmarks: named after operation and size. CI only builds them
//! (`cargo bench --no-run`); run with `cargo bench --bench store`.

#![allow(clippy::expect_used, reason = "a benchmark aborts on setup errors")]

use std::hint::black_box;
use std::io::Cursor;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::gdpr::{self, ExportOptions};
use jidstore::{BareJid, Config, Jid, Store, Timestamp};

const STANZA_BODY: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.";

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Config::new(dir.path().join("data"))
        .scram_iterations(4096)
        .open()
        .expect("open");
    (dir, store)
}

fn message(i: u64) -> PmMessage {
    let from = Jid::parse("alice@localhost/phone").expect("jid");
    let to = Jid::parse("bob@localhost/laptop").expect("jid");
    PmMessage {
        id: None,
        timestamp: Timestamp::from_secs(1_700_000_000 + i64::try_from(i).unwrap_or(0)),
        stanza: format!(
            "<message xmlns='jabber:client' from='{from}' to='{to}' id='m{i}' type='chat'><body>{STANZA_BODY}</body></message>"
        ),
        from,
        to,
        direction: Direction::Outgoing,
        origin_id: Some(format!("m{i}")),
    }
}

fn filled(n: u64) -> (tempfile::TempDir, Store, BareJid) {
    let (dir, store) = open();
    let alice = BareJid::parse("alice@localhost").expect("jid");
    store.accounts().create(&alice, "pw").expect("account");
    for i in 0..n {
        store.mam().append(&alice, &message(i)).expect("append");
    }
    store.flush().expect("flush");
    (dir, store, alice)
}

fn mam_append(c: &mut Criterion) {
    let (_dir, store) = open();
    let alice = BareJid::parse("alice@localhost").expect("jid");
    store.accounts().create(&alice, "pw").expect("account");
    let mut g = c.benchmark_group("mam_append");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("one", |b| {
        b.iter(|| {
            i += 1;
            black_box(store.mam().append(&alice, &message(i)).expect("append"))
        });
    });
    g.finish();
}

/// Plain insert loops, one record per iteration, per class.
fn inserts(c: &mut Criterion) {
    use jidstore::ext::mam::MucMessage;
    use jidstore::ext::pubsub::{Node, NodeType};
    use jidstore::ext::roster::{Ask, RosterItem, Subscription};
    let (_dir, store) = open();
    let alice = BareJid::parse("alice@localhost").expect("jid");
    store.accounts().create(&alice, "pw").expect("account");
    let room = BareJid::parse("room@muc.localhost").expect("jid");
    store
        .pubsub()
        .create_node(&Node {
            service: alice.clone(),
            node: "urn:xmpp:microblog:0".into(),
            owner: alice.clone(),
            kind: NodeType::Pep,
            access_model: "presence".into(),
            config: vec![],
            created_at: Timestamp::now(),
        })
        .expect("node");
    let stanza = message(0).stanza;
    let mut g = c.benchmark_group("insert");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("vcard_set", |b| {
        b.iter(|| {
            store
                .vcard()
                .set(&alice, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
                .expect("vcard");
        });
    });
    g.bench_function("roster_set", |b| {
        b.iter(|| {
            i += 1;
            let item = RosterItem {
                jid: BareJid::parse(&format!("c{}@localhost", i % 500)).expect("jid"),
                name: Some("Contact".into()),
                subscription: Subscription::Both,
                ask: Ask::None,
                groups: vec!["Friends".into()],
                askmessage: None,
            };
            store.roster().set(&alice, &item).expect("roster")
        });
    });
    g.bench_function("inbox_on_message", |b| {
        b.iter(|| {
            i += 1;
            let remote = BareJid::parse(&format!("c{}@localhost", i % 500)).expect("jid");
            store
                .inbox()
                .on_message(&alice, &remote, &stanza, None, Timestamp::now(), true)
                .expect("inbox");
        });
    });
    g.bench_function("muc_append", |b| {
        b.iter(|| {
            store
                .muc()
                .append(
                    &room,
                    &MucMessage {
                        id: None,
                        timestamp: Timestamp::now(),
                        sender: alice.clone(),
                        nick: "alice".into(),
                        stanza: stanza.clone(),
                    },
                )
                .expect("muc")
        });
    });
    g.bench_function("pubsub_publish", |b| {
        b.iter(|| {
            i += 1;
            store
                .pubsub()
                .publish(
                    &alice,
                    "urn:xmpp:microblog:0",
                    &format!("item{i}"),
                    &alice,
                    "<entry xmlns='http://www.w3.org/2005/Atom'><title>t</title></entry>",
                    Timestamp::now(),
                )
                .expect("publish");
        });
    });
    g.finish();
}

fn gdpr_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("gdpr");
    g.sample_size(10);
    let (_dir, store, alice) = filled(10_000);
    g.bench_function("retrieve/user_with_10k_msgs", |b| {
        b.iter(|| {
            let mut sink = Cursor::new(Vec::new());
            gdpr::retrieve(&store, &alice, &mut sink, &ExportOptions::default()).expect("export")
        });
    });
    g.bench_function("remove/user_with_10k_msgs", |b| {
        b.iter_batched(
            || filled(10_000),
            |(_d, s, a)| gdpr::remove(&s, &a).expect("remove"),
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, mam_append, inserts, gdpr_ops);
criterion_main!(benches);
