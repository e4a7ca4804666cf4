//! What the binary tells its user: `unregister`'s outcome and exit code, time and roster group
//! columns of the export, `demo`'s paths, usage errors for bad times, help, the man page.

use std::path::{Path, PathBuf};

use jidstore::ext::mam::MucMessage;
use jidstore::ext::pubsub::{Node, NodeType, SubState};
use jidstore::{Config, Timestamp};

use crate::util::*;

/// A store in `dir/data` written by `fill`, closed again.
fn with_store(dir: &Path, fill: impl FnOnce(&jidstore::Store)) -> PathBuf {
    let data = dir.join("data");
    let store = Config::new(&data).scram_iterations(16).open().unwrap();
    fill(&store);
    store.flush().unwrap();
    drop(store);
    data
}

/// alice with an account and a group-chat message (kept by erasure); carol, a remote user
/// without an account, subscribed to alice's flat node (removed by erasure).
fn alice_and_carol(store: &jidstore::Store) {
    let alice = user(store, "alice@localhost");
    let room = bare("room@muc.localhost");
    store
        .muc()
        .append(
            &room,
            &MucMessage {
                id: None,
                timestamp: Timestamp::from_secs(1_700_000_000),
                sender: alice.clone(),
                nick: "alice".into(),
                stanza: "<message type='groupchat'><body>hi</body></message>".into(),
            },
        )
        .unwrap();
    let service = bare("pubsub.localhost");
    store
        .pubsub()
        .create_node(&Node {
            service: service.clone(),
            node: "news".into(),
            owner: alice,
            kind: NodeType::Flat,
            access_model: "open".into(),
            config: Vec::new(),
            created_at: Timestamp::from_secs(1_700_000_000),
        })
        .unwrap();
    store
        .pubsub()
        .subscribe(
            &service,
            "news",
            &bare("carol@remote.example"),
            SubState::Subscribed,
        )
        .unwrap();
}

#[test]
fn unregister_says_what_happened_and_exits_3_when_nothing_was_erased() {
    let dir = tempfile::tempdir().unwrap();
    let data = with_store(dir.path(), alice_and_carol);

    // An account: erased, and the receipt says the bytes stay until compact.
    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("User alice@localhost successfully unregistered\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("erased bytes stay in the data directory's files until `jidstore compact`"),
        "{}",
        r.stdout
    );

    // Again: nothing erased, what is kept is named, exit 3.
    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr, "");
    assert!(!r.stdout.contains("successfully"), "{}", r.stdout);
    assert!(
        r.stdout.starts_with(
            "Nothing erased for alice@localhost: there is no account and no data that erasure removes"
        ),
        "{}",
        r.stdout
    );
    let kept = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("mam_muc"))
        .unwrap_or_else(|| panic!("mam_muc not named as kept: {}", r.stdout));
    assert_eq!(kept.split_whitespace().nth(1), Some("1"), "{kept}");
    assert!(!r.stdout.contains("erased bytes"), "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(
        &jidstore(&data, &["--json", "unregister", "alice", "localhost"]).stdout,
    )
    .unwrap();
    assert_eq!(
        (&v["account"], &v["erased"], &v["total_removed"]),
        (&false.into(), &false.into(), &0.into())
    );

    // No account, but data erasure removes: erased, and said so.
    let r = jidstore(&data, &["unregister", "carol", "remote.example"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("carol@remote.example has no account;"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("successfully"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pubsub_subscriptions", "1"]),
        "{}",
        r.stdout
    );

    // Nothing held at all: still the error of acceptance case A1.
    let r = jidstore(&data, &["unregister", "carol", "remote.example"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not exist"), "{}", r.stderr);
}

#[test]
fn unregister_purge_says_the_bytes_left_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = with_store(dir.path(), |s| {
        user(s, "alice@localhost");
    });
    let r = jidstore(&data, &["unregister", "--purge", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.trim_end().ends_with(
            "The store was compacted (--purge): the erased bytes have left the data directory's files."
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("stay in"), "{}", r.stdout);
}
