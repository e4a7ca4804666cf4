//! Erasure of a subject with many small records (issue 13, item 7): the time of the commit
//! point, the time of the sweep after it, and the peak RSS of the erasing process.
//!
//! The store is filled in this process, then erased in a child process (this binary run
//! again), so that the child's `VmHWM` is the erasure's peak alone. Sizes come from
//! `JIDSTORE_ERASE_ROSTER` (default 300000), `JIDSTORE_ERASE_OFFLINE` (300000) and
//! `JIDSTORE_ERASE_PUBSUB` (100000). Run with `cargo bench --bench erase`.

#![allow(clippy::expect_used, reason = "a benchmark fails loudly")]

use std::path::Path;
use std::time::Instant;

use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::pubsub::{Node, NodeType, SubState};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::{BareJid, Jid, Store, Timestamp, gdpr};

const CHILD: &str = "--erase-child";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The peak resident set of this process, in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn subject() -> BareJid {
    BareJid::parse("alice@localhost").expect("jid")
}

fn fill(dir: &Path, roster: usize, offline: usize, pubsub: usize) {
    let store = Store::open(dir).expect("open");
    let alice = subject();
    let bob = BareJid::parse("bob@localhost").expect("jid");
    store.accounts().create(&alice, "pw").expect("account");
    store.accounts().create(&bob, "pw").expect("account");
    for i in 0..roster {
        let item = RosterItem {
            jid: BareJid::parse(&format!("contact{i}@example.org")).expect("jid"),
            name: Some(format!("Contact {i}")),
            subscription: Subscription::Both,
            ask: Ask::None,
            groups: vec!["Friends".into()],
            askmessage: None,
        };
        store.roster().set(&alice, &item).expect("roster");
    }
    let from = Jid::parse("bob@localhost/phone").expect("jid");
    let to = Jid::parse("alice@localhost").expect("jid");
    for i in 0..offline {
        let msg = OfflineMessage {
            from: from.clone(),
            to: to.clone(),
            timestamp: Timestamp::from_secs(1_700_000_000),
            expires: None,
            stanza: format!("<message><body>offline message {i}</body></message>"),
        };
        store.offline().store(&alice, &msg).expect("offline");
    }
    if pubsub > 0 {
        store
            .pubsub()
            .create_node(&Node {
                service: alice.clone(),
                node: "urn:xmpp:microblog:0".into(),
                owner: alice.clone(),
                kind: NodeType::Pep,
                access_model: "presence".into(),
                config: Vec::new(),
                created_at: Timestamp::from_secs(1_700_000_000),
            })
            .expect("node");
        store
            .pubsub()
            .subscribe(&alice, "urn:xmpp:microblog:0", &bob, SubState::Subscribed)
            .expect("subscribe");
    }
    for i in 0..pubsub {
        store
            .pubsub()
            .publish(
                &alice,
                "urn:xmpp:microblog:0",
                &format!("item{i}"),
                &alice,
                "<entry xmlns='http://www.w3.org/2005/Atom'><title>post</title></entry>",
                Timestamp::from_secs(1_700_000_000),
            )
            .expect("publish");
    }
    store.flush().expect("flush");
}

/// The child: opens the filled store, times the commit and the sweep, prints one line.
fn erase(dir: &Path) {
    let store = Store::open(dir).expect("open");
    let alice = subject();
    let started = Instant::now();
    let receipt = gdpr::commit(&store, &alice).expect("commit");
    let commit = started.elapsed();
    let rss_commit = peak_rss_mib();
    let started = Instant::now();
    gdpr::finish_sweeps(&store).expect("sweep");
    let sweep = started.elapsed();
    let rss = peak_rss_mib();
    assert!(
        gdpr::retrieve(
            &store,
            &alice,
            &mut std::io::Cursor::new(Vec::new()),
            &gdpr::ExportOptions::default()
        )
        .is_err(),
        "subject still holds data after the sweep"
    );
    println!(
        "commit {:.2} ms (receipt commit_time {:.2} ms, peak RSS so far {rss_commit:.0} MiB), \
         sweep {:.2} s, peak RSS {rss:.0} MiB",
        commit.as_secs_f64() * 1e3,
        receipt.commit_time.as_secs_f64() * 1e3,
        sweep.as_secs_f64(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == CHILD) {
        let dir = args.get(pos + 1).expect("child needs a directory");
        erase(Path::new(dir));
        return;
    }
    let sizes = [
        ("roster", env_usize("JIDSTORE_ERASE_ROSTER", 300_000), 0, 0),
        (
            "offline",
            0,
            env_usize("JIDSTORE_ERASE_OFFLINE", 300_000),
            0,
        ),
        ("pubsub", 0, 0, env_usize("JIDSTORE_ERASE_PUBSUB", 100_000)),
    ];
    let exe = std::env::current_exe().expect("current exe");
    for (name, roster, offline, pubsub) in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let started = Instant::now();
        fill(&data, roster, offline, pubsub);
        let filled = started.elapsed();
        let out = std::process::Command::new(&exe)
            .arg(CHILD)
            .arg(&data)
            .output()
            .expect("run the erasing child");
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!(
            "erase/{name} (roster {roster}, offline {offline}, pubsub items {pubsub}; filled in \
             {:.1} s): {}",
            filled.as_secs_f64(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
