//! Bounded erasure (issue 13, item 7): the commit point writes a number of keys that does not
//! grow with what the subject holds, every read treats the subject's data as gone from the
//! commit on, the sweep after it deletes everything, a name registered again while the sweep
//! is pending starts from nothing, and an interrupted sweep finishes at the next open.
//! The receipt names other users' rows removed with the subject's nodes (item 10).
//! See: issue 13.

use std::io::Cursor;

use jidstore::__internal::keys::Keyspace;
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::pubsub::{Affiliation, Node, NodeType, SubState};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::gdpr::{self, ExportOptions};
use jidstore::{BareJid, Error, Store, Timestamp};

use crate::util::{TestResult, bare, full, jidstore, open, reopen, store, user};

const NODE: &str = "urn:xmpp:microblog:0";

fn at() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

/// Entries per keyspace, read from the raw trees.
/// Entries per data keyspace: not `meta`, and not `audit`, where each erasure adds its
/// ledger entry (see `ledger.rs`).
fn entry_counts(store: &Store) -> Vec<(Keyspace, usize)> {
    Keyspace::ALL
        .iter()
        .filter(|ks| !matches!(**ks, Keyspace::Meta | Keyspace::Audit))
        .map(|ks| (*ks, store.raw_tree(*ks).len()))
        .collect()
}

/// Keys the commit changed: entries removed plus entries added, over every keyspace.
fn keys_changed(before: &[(Keyspace, usize)], after: &[(Keyspace, usize)]) -> usize {
    before
        .iter()
        .zip(after)
        .map(|((_, b), (_, a))| b.abs_diff(*a))
        .sum()
}

fn roster_item(i: usize) -> RosterItem {
    RosterItem {
        jid: bare(&format!("contact{i}@example.org")),
        name: Some(format!("Contact {i}")),
        subscription: Subscription::Both,
        ask: Ask::None,
        groups: vec!["Friends".into()],
        askmessage: None,
    }
}

fn offline_message(i: usize) -> OfflineMessage {
    OfflineMessage {
        from: full("bob@localhost/phone"),
        to: full("alice@localhost"),
        timestamp: at(),
        expires: None,
        stanza: format!("<message><body>offline {i}</body></message>"),
    }
}

fn pep_node(owner: &BareJid) -> Node {
    Node {
        service: owner.clone(),
        node: NODE.into(),
        owner: owner.clone(),
        kind: NodeType::Pep,
        access_model: "presence".into(),
        config: Vec::new(),
        created_at: at(),
    }
}

/// Gives `subject` `n` records in every class that can grow (and one PEP node), and bob a
/// subscription to, an affiliation with and an item on that node.
fn fill(store: &Store, subject: &BareJid, n: usize) -> TestResult {
    let bob = bare("bob@localhost");
    if !store.accounts().exists(&bob)? {
        user(store, "bob@localhost");
    }
    store.accounts().create(subject, "pw")?;
    store.pubsub().create_node(&pep_node(subject))?;
    store
        .pubsub()
        .subscribe(subject, NODE, &bob, SubState::Subscribed)?;
    store
        .pubsub()
        .set_affiliation(subject, NODE, &bob, Some(Affiliation::Publisher))?;
    store
        .pubsub()
        .publish(subject, NODE, "from-bob", &bob, "<entry/>", at())?;
    for i in 0..n {
        store.roster().set(subject, &roster_item(i))?;
        store.offline().store(subject, &offline_message(i))?;
        store.pubsub().publish(
            subject,
            NODE,
            &format!("item{i}"),
            subject,
            "<entry/>",
            at(),
        )?;
        let ns = format!("urn:test:{i}");
        store
            .private()
            .set(subject, &ns, &format!("<query xmlns='{ns}'/>"))?;
        store
            .blocklist()
            .block(subject, &[full(&format!("spam{i}@example.org"))])?;
        store.inbox().on_message(
            subject,
            &bare(&format!("peer{i}@example.org")),
            "<message><body>hi</body></message>",
            None,
            at(),
            true,
        )?;
        // The generic class (Prosody's stores with no class of their own).
        store
            .generic()
            .set(subject, &format!("store{i}"), Some("{ value = 1 }"))?;
        store.generic().append(
            subject,
            "archive",
            None,
            at(),
            Some("bob@localhost"),
            "<message><body>hi</body></message>",
        )?;
    }
    Ok(())
}

fn holds_nothing(store: &Store, subject: &BareJid) -> bool {
    matches!(
        gdpr::retrieve(
            store,
            subject,
            &mut Cursor::new(Vec::new()),
            &ExportOptions::default()
        ),
        Err(Error::NoPersonalData(_))
    )
}

/// The number of keys the commit writes is the same for a subject with 3 records per class
/// as for one with 600; after the sweep the store holds what it held before the subject.
#[test]
fn commit_writes_the_same_number_of_keys_whatever_the_subject_holds() -> TestResult {
    let mut changed = Vec::new();
    for n in [3, 600] {
        let (_dir, store) = store();
        user(&store, "bob@localhost");
        let empty = entry_counts(&store);
        let alice = bare("alice@localhost");
        fill(&store, &alice, n)?;
        let before = entry_counts(&store);
        gdpr::commit(&store, &alice)?;
        changed.push(keys_changed(&before, &entry_counts(&store)));
        assert!(
            holds_nothing(&store, &alice),
            "data visible after the commit"
        );
        gdpr::finish_sweeps(&store)?;
        assert!(holds_nothing(&store, &alice));
        assert_eq!(entry_counts(&store), empty, "entries left after the sweep");
    }
    assert_eq!(
        changed[0], changed[1],
        "commit size grows with the subject's data"
    );
    Ok(())
}

/// Between the commit and the sweep nothing of the subject is visible, to any reader, and
/// other users' exports and reads do not trip over the pending ranges.
#[test]
fn nothing_is_visible_between_commit_and_sweep() -> TestResult {
    let (_dir, store) = store();
    let alice = bare("alice@localhost");
    let bob = bare("bob@localhost");
    fill(&store, &alice, 20)?;
    gdpr::commit(&store, &alice)?;
    assert!(store.roster().list(&alice)?.is_empty());
    assert!(store.offline().list(&alice)?.is_empty());
    assert_eq!(store.offline().count(&alice)?, 0);
    assert!(store.inbox().list(&alice)?.is_empty());
    assert!(store.private().get(&alice, "urn:test:1")?.is_none());
    assert!(store.blocklist().list(&alice)?.is_empty());
    assert!(store.pubsub().get_node(&alice, NODE)?.is_none());
    assert!(store.pubsub().items(&alice, NODE)?.is_empty());
    assert!(store.pubsub().subscriptions(&alice, NODE)?.is_empty());
    assert!(store.pubsub().affiliations(&alice, NODE)?.is_empty());
    assert!(holds_nothing(&store, &alice));
    // bob's item on alice's node and his subscription went with the node.
    let mut zip = Cursor::new(Vec::new());
    gdpr::retrieve(&store, &bob, &mut zip, &ExportOptions::default())?;
    gdpr::finish_sweeps(&store)?;
    assert!(jidstore::verify(&store)?.problems.is_empty());
    Ok(())
}

/// A name registered again before the sweep ran starts from nothing, and what it writes
/// survives the sweep.
#[test]
fn name_registered_again_before_the_sweep_starts_empty() -> TestResult {
    let (_dir, store) = store();
    let alice = bare("alice@localhost");
    fill(&store, &alice, 30)?;
    gdpr::commit(&store, &alice)?;
    store.accounts().create(&alice, "new")?;
    assert!(store.roster().list(&alice)?.is_empty());
    store.roster().set(&alice, &roster_item(1000))?;
    store.offline().store(&alice, &offline_message(1000))?;
    store.pubsub().create_node(&pep_node(&alice))?;
    store
        .pubsub()
        .publish(&alice, NODE, "fresh", &alice, "<entry/>", at())?;
    gdpr::finish_sweeps(&store)?;
    let roster: Vec<_> = store
        .roster()
        .list(&alice)?
        .into_iter()
        .map(|i| i.jid)
        .collect();
    assert_eq!(roster, [bare("contact1000@example.org")]);
    assert_eq!(store.roster().version(&alice)?, 1);
    assert_eq!(store.offline().count(&alice)?, 1);
    let items: Vec<_> = store
        .pubsub()
        .items(&alice, NODE)?
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(items, ["fresh"]);
    assert!(store.pubsub().subscriptions(&alice, NODE)?.is_empty());
    assert!(jidstore::verify(&store)?.problems.is_empty());
    Ok(())
}

/// A sweep that never ran (the process stopped after the commit) finishes at the next open.
#[test]
fn interrupted_sweep_finishes_at_open() -> TestResult {
    let (dir, store) = store();
    user(&store, "bob@localhost");
    let empty = entry_counts(&store);
    let alice = bare("alice@localhost");
    fill(&store, &alice, 50)?;
    gdpr::commit(&store, &alice)?;
    let store = reopen(&dir, store);
    assert_eq!(entry_counts(&store), empty);
    assert!(holds_nothing(&store, &alice));
    drop(store);
    let store = open(&dir);
    assert!(jidstore::verify(&store)?.problems.is_empty());
    Ok(())
}

/// Item 10: the receipt names other users' rows removed with alice's PEP node (bob's and
/// carol's subscriptions, bob's affiliation and item), in text and in JSON.
#[test]
fn receipt_names_other_users_rows_removed_as_a_consequence() -> TestResult {
    let (dir, store) = store();
    let alice = bare("alice@localhost");
    fill(&store, &alice, 2)?;
    let carol = user(&store, "carol@localhost");
    store
        .pubsub()
        .subscribe(&alice, NODE, &carol, SubState::Subscribed)?;
    store
        .pubsub()
        .subscribe(&alice, NODE, &alice, SubState::Subscribed)?;
    let data = dir.path().join("data");
    let json_dir = tempfile::tempdir()?;
    let json_data = json_dir.path().join("data");
    store.flush()?;
    drop(store);
    crate::bounded::copy_dir(&data, &json_data);

    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let section: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Removed as a consequence"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        section,
        [
            vec!["pubsub_items", "1"],
            vec!["pubsub_subscriptions", "2"],
            vec!["pubsub_affiliations", "1"],
        ],
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("subscriptions to the subject's PEP"),
        "{}",
        r.stdout
    );
    let line = |class: &str| {
        r.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(class))
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
    };
    // alice's own rows: her subscription to and affiliation with her node, all 3 items.
    assert_eq!(line("pubsub_subscriptions").as_deref(), Some("1"));
    assert_eq!(line("pubsub_affiliations").as_deref(), Some("1"));
    assert_eq!(line("pubsub_items").as_deref(), Some("3"));

    let r = jidstore(&json_data, &["--json", "unregister", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let others = doc["removed_as_consequence"].as_array().expect("array");
    let rows = |class: &str| {
        others
            .iter()
            .find(|c| c["class"] == class)
            .and_then(|c| c["rows"].as_u64())
    };
    assert_eq!(rows("pubsub_subscriptions"), Some(2));
    assert_eq!(rows("pubsub_affiliations"), Some(1));
    assert_eq!(rows("pubsub_items"), Some(1));
    assert!(
        others
            .iter()
            .all(|c| c["reason"].as_str().is_some_and(|r| !r.is_empty()))
    );
    let removed: u64 = doc["removed"]
        .as_object()
        .expect("removed")
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    assert_eq!(doc["total_removed"].as_u64(), Some(removed + 3));
    Ok(())
}

/// A subject whose only data is kept (an item published on another user's node, counted by
/// a scan after the sweep) is held: erasure removes nothing and says what is kept, rather than
/// "does not exist". Found by the property model (`store_matches_model`).
#[test]
fn a_subject_holding_only_kept_rows_found_by_a_scan_is_not_unknown() -> TestResult {
    let (_dir, store) = store();
    user(&store, "bob@localhost");
    let bob = bare("bob@localhost");
    let alice = bare("alice@localhost");
    store.pubsub().create_node(&pep_node(&bob))?;
    store
        .pubsub()
        .publish(&bob, NODE, "from-alice", &alice, "<entry/>", at())?;
    let receipt = gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.total_removed(), 0);
    assert!(
        receipt
            .kept
            .iter()
            .any(|k| k.class == "pubsub_items" && k.rows == Some(1)),
        "{:?}",
        receipt.kept
    );
    // Counted once, after the sweep.
    assert_eq!(receipt.kept.len(), 1, "{:?}", receipt.kept);
    Ok(())
}
