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

criterion_group!(benches, mam_append, gdpr_ops);
criterion_main!(benches);
