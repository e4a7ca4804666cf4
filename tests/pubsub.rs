//! Pubsub: nodes, items, subscriptions, affiliations, indexes; GDPR cases R19-R24, D11-D17.

use std::collections::BTreeSet;

use crate::mam::{export, rows};
use crate::util::*;
use jidstore::ext::pubsub::{Affiliation, Node, NodeType, SubState};
use jidstore::{BareJid, Error, Store, Timestamp};

const PS: &str = "pubsub.localhost";

fn node(service: &BareJid, id: &str, owner: &BareJid, kind: NodeType, access: &str) -> Node {
    Node {
        service: service.clone(),
        node: id.to_owned(),
        owner: owner.clone(),
        kind,
        access_model: access.to_owned(),
        config: vec![("pubsub#title".into(), id.into())],
        created_at: Timestamp::from_secs(1),
    }
}

fn flat(store: &Store, id: &str, owner: &BareJid) {
    store
        .pubsub()
        .create_node(&node(&bare(PS), id, owner, NodeType::Flat, "open"))
        .unwrap();
}

fn publish(store: &Store, service: &BareJid, node: &str, item: &str, by: &BareJid) {
    let payload =
        format!("<entry xmlns='http://www.w3.org/2005/Atom'><title>{item}</title></entry>");
    store
        .pubsub()
        .publish(service, node, item, by, &payload, Timestamp::from_secs(2))
        .unwrap();
}

/// `who` subscribes to `node` of the pubsub service.
fn subscribe(store: &Store, node: &str, who: &BareJid) {
    store
        .pubsub()
        .subscribe(&bare(PS), node, who, SubState::Subscribed)
        .unwrap();
}

/// `who` gets `aff` on `node` of the pubsub service.
fn affiliate(store: &Store, node: &str, who: &BareJid, aff: Affiliation) {
    store
        .pubsub()
        .set_affiliation(&bare(PS), node, who, Some(aff))
        .unwrap();
}

/// Sorted values of `cols` in the rows of `file` in `who`'s export.
fn col(store: &Store, who: &BareJid, file: &str, cols: &[usize]) -> Vec<String> {
    let mut v: Vec<String> = rows(&export(store, who), file)
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| r[*c].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    v.sort();
    v
}

fn items_of(store: &Store, who: &BareJid) -> Vec<String> {
    col(store, who, "pubsub_items.csv", &[0, 1])
}
fn nodes_of(store: &Store, who: &BareJid) -> Vec<String> {
    col(store, who, "pubsub_nodes.csv", &[0])
}
fn subs_of(store: &Store, who: &BareJid) -> Vec<String> {
    col(store, who, "pubsub_subscriptions.csv", &[1])
}

#[test]
fn nodes_items_subscriptions_affiliations_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let remote = bare("carol@remote.example");
    let ps = bare(PS);
    let n = node(&ps, "news", &alice, NodeType::Flat, "open");
    store.pubsub().create_node(&n)?;
    assert!(matches!(
        store.pubsub().create_node(&n),
        Err(Error::InvalidInput(_))
    ));
    publish(&store, &ps, "news", "i1", &alice);
    publish(&store, &ps, "news", "i2", &remote);
    store
        .pubsub()
        .subscribe(&ps, "news", &remote, SubState::Pending)?;
    affiliate(&store, "news", &remote, Affiliation::PublishOnly);
    let store = reopen(&dir, store);
    let p = store.pubsub();
    assert_eq!(p.get_node(&ps, "news")?, Some(n.clone()));
    assert_eq!(p.nodes(&ps)?, vec![n]);
    let items = p.items(&ps, "news")?;
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].publisher, remote);
    assert_eq!(p.get_item(&ps, "news", "i1")?.unwrap().publisher, alice);
    assert_eq!(p.subscriptions(&ps, "news")?[0].state, SubState::Pending);
    let mut affs = p.affiliations(&ps, "news")?;
    affs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        affs,
        vec![
            (alice.clone(), Affiliation::Owner),
            (remote.clone(), Affiliation::PublishOnly)
        ]
    );
    // Republishing under another publisher moves the publisher index entry.
    publish(&store, &ps, "news", "i1", &remote);
    assert_eq!(items_of(&store, &alice), Vec::<String>::new());
    assert_eq!(items_of(&store, &remote), ["news i1", "news i2"]);
    assert!(p.retract(&ps, "news", "i2")?);
    assert!(!p.retract(&ps, "news", "i2")?);
    assert_eq!(items_of(&store, &remote), ["news i1"]);
    assert!(p.unsubscribe(&ps, "news", &remote)?);
    assert!(!p.unsubscribe(&ps, "news", &remote)?);
    p.set_affiliation(&ps, "news", &remote, None)?;
    assert_eq!(p.affiliations(&ps, "news")?.len(), 1);
    assert!(
        rows(&export(&store, &remote), "pubsub_affiliations.csv").is_empty(),
        "by-jid index entry removed with the affiliation"
    );
    Ok(())
}

#[test]
fn refusals() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    let ps = bare(PS);
    assert_no_account(
        store
            .pubsub()
            .create_node(&node(&ps, "n", &ghost, NodeType::Flat, "open")),
    );
    let alice = user(&store, "alice@localhost");
    assert!(matches!(
        store
            .pubsub()
            .create_node(&node(&ps, "n", &alice, NodeType::Pep, "open")),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        store
            .pubsub()
            .create_node(&node(&ps, "a\0b", &alice, NodeType::Flat, "open")),
        Err(Error::InvalidInput(_))
    ));
    let p = store.pubsub();
    assert!(matches!(
        p.publish(&ps, "missing", "i", &alice, "<x/>", Timestamp::from_secs(0)),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        p.subscribe(&ps, "missing", &alice, SubState::Subscribed),
        Err(Error::NotFound(_))
    ));
    flat(&store, "n", &alice);
    assert!(matches!(
        p.publish(&ps, "n", "i", &alice, "<x>", Timestamp::from_secs(0)),
        Err(Error::InvalidInput(_))
    ));
    assert!(!p.delete_node(&ps, "missing").unwrap());
}

#[test]
fn delete_node_removes_every_index_entry() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let ps = bare(PS);
    flat(&store, "n", &alice);
    flat(&store, "keep", &alice);
    publish(&store, &ps, "n", "i1", &bob);
    publish(&store, &ps, "keep", "i2", &bob);
    let p = store.pubsub();
    p.subscribe(&ps, "n", &bob, SubState::Subscribed)?;
    p.set_affiliation(&ps, "n", &bob, Some(Affiliation::Publisher))?;
    assert!(p.delete_node(&ps, "n")?);
    assert_eq!(p.get_node(&ps, "n")?, None);
    assert!(p.items(&ps, "n")?.is_empty());
    assert_eq!(nodes_of(&store, &alice), ["keep"]);
    assert_eq!(items_of(&store, &bob), ["keep i2"]);
    assert!(subs_of(&store, &bob).is_empty());
    assert!(rows(&export(&store, &bob), "pubsub_affiliations.csv").is_empty());
    assert_eq!(
        col(&store, &alice, "pubsub_affiliations.csv", &[1, 3]),
        ["keep owner"]
    );
    Ok(())
}

#[test]
fn prefix_sharing_jids_never_mix() -> TestResult {
    let (dir, store) = store();
    let names = ["a@h", "a@h.org", "ab@h", "a@hh"];
    let jids: Vec<BareJid> = names.iter().map(|n| user(&store, n)).collect();
    for j in &jids {
        // PEP node on each user's own JID, same node id everywhere.
        store
            .pubsub()
            .create_node(&node(j, "urn:x", j, NodeType::Pep, "presence"))?;
        publish(&store, j, "urn:x", "item", j);
        flat(&store, j.as_str(), j);
        store
            .pubsub()
            .subscribe(&bare(PS), j.as_str(), j, SubState::Subscribed)?;
    }
    let store = reopen(&dir, store);
    for j in &jids {
        assert_eq!(store.pubsub().nodes(j)?.len(), 1);
        let ex = export(&store, j);
        let nodes = rows(&ex, "pubsub_nodes.csv");
        assert_eq!(nodes.len(), 2, "{j}");
        let items = rows(&ex, "pubsub_items.csv");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0][4], j.as_str());
        let subs = rows(&ex, "pubsub_subscriptions.csv");
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0][1], j.as_str());
        assert_eq!(rows(&ex, "pubsub_affiliations.csv").len(), 2);
    }
    jidstore::gdpr::remove(&store, &jids[0])?;
    for j in &jids[1..] {
        assert_eq!(rows(&export(&store, j), "pubsub_items.csv").len(), 1);
        assert!(store.pubsub().get_node(j, "urn:x")?.is_some());
    }
    assert!(store.pubsub().get_node(&jids[0], "urn:x")?.is_none());
    Ok(())
}

/// R19 (export) then D11 (erase alice).
#[test]
fn r19_d11_pep_nodes() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let p = store.pubsub();
    p.create_node(&node(
        &alice,
        "urn:gdpr:alice",
        &alice,
        NodeType::Pep,
        "presence",
    ))?;
    let payload = "<entry xmlns='http://www.w3.org/2005/Atom'><title>Item1</title></entry>";
    p.publish(
        &alice,
        "urn:gdpr:alice",
        "Item1",
        &alice,
        payload,
        Timestamp::from_secs(9),
    )?;
    p.create_node(&node(&bob, "urn:gdpr:bob", &bob, NodeType::Pep, "open"))?;
    p.subscribe(&bob, "urn:gdpr:bob", &alice, SubState::Subscribed)?;
    let ex = export(&store, &alice);
    assert_eq!(
        ex["pubsub_items.csv"].header,
        [
            "node_id",
            "item_id",
            "publisher_jid",
            "payload",
            "service_jid",
            "published_at"
        ]
    );
    assert_eq!(
        ex["pubsub_nodes.csv"].header,
        ["node_id", "access_model", "service_jid", "type"]
    );
    assert_eq!(
        ex["pubsub_subscriptions.csv"].header,
        ["service_jid", "node_id", "subscriber_jid", "state"]
    );
    assert_eq!(
        ex["pubsub_affiliations.csv"].header,
        ["service_jid", "node_id", "jid", "affiliation"]
    );
    let items = rows(&ex, "pubsub_items.csv");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0][..4],
        ["urn:gdpr:alice", "Item1", "alice@localhost", payload]
    );
    assert_eq!(
        rows(&ex, "pubsub_nodes.csv"),
        [["urn:gdpr:alice", "presence", "alice@localhost", "pep"]]
    );
    assert_eq!(
        rows(&ex, "pubsub_subscriptions.csv"),
        [[
            "bob@localhost",
            "urn:gdpr:bob",
            "alice@localhost",
            "subscribed"
        ]]
    );

    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["pubsub_nodes"], 1);
    assert_eq!(receipt.removed["pubsub_items"], 1);
    assert_eq!(receipt.removed["pubsub_subscriptions"], 1);
    assert_eq!(receipt.removed["pubsub_affiliations"], 1);
    assert!(receipt.kept.iter().all(|k| !k.class.starts_with("pubsub")));
    assert!(export(&store, &alice).is_empty());
    assert!(p.get_node(&alice, "urn:gdpr:alice")?.is_none());
    assert!(p.subscriptions(&bob, "urn:gdpr:bob")?.is_empty());
    assert_eq!(nodes_of(&store, &bob), ["urn:gdpr:bob"]);
    Ok(())
}

/// R20: every item alice published, on any node.
#[test]
fn r20_items_published_anywhere() {
    let (_dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let ps = bare(PS);
    flat(&store, "Node1", &alice);
    flat(&store, "Node2", &alice);
    for i in ["Item1", "Item2", "Item3"] {
        publish(&store, &ps, "Node1", i, &alice);
    }
    publish(&store, &ps, "Node2", "OtherItem", &alice);
    let r = rows(&export(&store, &alice), "pubsub_items.csv");
    assert_eq!(r.len(), 4);
    assert!(
        r.iter()
            .any(|r| r[0] == "Node2" && r[1] == "OtherItem" && r[3].contains("OtherItem"))
    );
    assert_eq!(
        items_of(&store, &alice),
        [
            "Node1 Item1",
            "Node1 Item2",
            "Node1 Item3",
            "Node2 OtherItem"
        ]
    );
}

/// R21 and R22: attribution by publisher; a subscriber sees its subscription.
#[test]
fn r21_r22_attribution_and_subscription() {
    let (_dir, store, alice, bob) = alice_and_bob();
    let ps = bare(PS);
    flat(&store, "Node1", &alice);
    affiliate(&store, "Node1", &bob, Affiliation::Publisher);
    publish(&store, &ps, "Node1", "Item1", &alice);
    publish(&store, &ps, "Node1", "Item2", &bob);
    subscribe(&store, "Node1", &bob);
    assert_eq!(items_of(&store, &alice), ["Node1 Item1"]);
    assert_eq!(items_of(&store, &bob), ["Node1 Item2"]);
    assert_eq!(subs_of(&store, &bob), ["Node1"]);
    assert!(subs_of(&store, &alice).is_empty());
}

/// R23: node types.
#[test]
fn r23_node_types() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let ps = bare(PS);
    flat(&store, "Node1", &alice);
    flat(&store, "Node2", &alice);
    store
        .pubsub()
        .create_node(&node(&alice, "myns", &alice, NodeType::Pep, "presence"))?;
    store
        .pubsub()
        .create_node(&node(&ps, "Node3", &bob, NodeType::Push, "whitelist"))?;
    let mut types = col(&store, &alice, "pubsub_nodes.csv", &[3]);
    types.sort();
    assert_eq!(types, ["flat", "flat", "pep"]);
    assert_eq!(
        col(&store, &bob, "pubsub_nodes.csv", &[0, 3]),
        ["Node3 push"]
    );
    Ok(())
}

/// The R24 / D17 setup.
fn setup_d17(store: &Store) -> (BareJid, BareJid) {
    let alice = user(store, "alice@localhost");
    let bob = user(store, "bob@localhost");
    let ps = bare(PS);
    let p = store.pubsub();
    flat(store, "Node1", &alice);
    flat(store, "Node2", &alice);
    p.create_node(&node(&alice, "myns", &alice, NodeType::Pep, "presence"))
        .unwrap();
    flat(store, "Node3", &bob);
    p.create_node(&node(&ps, "Node4", &bob, NodeType::Push, "whitelist"))
        .unwrap();
    affiliate(store, "Node1", &bob, Affiliation::PublishOnly);
    subscribe(store, "Node2", &bob);
    subscribe(store, "Node3", &alice);
    publish(store, &ps, "Node1", "itemA1", &alice);
    publish(store, &ps, "Node2", "itemA2", &alice);
    publish(store, &alice, "myns", "pep1", &alice);
    publish(store, &ps, "Node1", "itemB1", &bob);
    publish(store, &ps, "Node3", "itemB3", &bob);
    (alice, bob)
}

/// R24: items on alice's flat node by bob are bob's, not alice's.
#[test]
fn r24_flat_node_items_by_others() {
    let (_dir, store) = store();
    let (alice, bob) = setup_d17(&store);
    assert_eq!(subs_of(&store, &bob), ["Node2"]);
    assert_eq!(nodes_of(&store, &bob), ["Node3", "Node4"]);
    assert_eq!(items_of(&store, &bob), ["Node1 itemB1", "Node3 itemB3"]);
    assert_eq!(nodes_of(&store, &alice), ["Node1", "Node2", "myns"]);
    assert_eq!(
        items_of(&store, &alice),
        ["Node1 itemA1", "Node2 itemA2", "myns pep1"]
    );
}

/// D12 and D13: erasing a subscriber / publish-only user leaves the owner's node.
#[test]
fn d12_d13_erase_subscriber_and_publisher() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let ps = bare(PS);
    flat(&store, "Node1", &alice);
    affiliate(&store, "Node1", &bob, Affiliation::PublishOnly);
    subscribe(&store, "Node1", &bob);
    publish(&store, &ps, "Node1", "b", &bob);
    let receipt = jidstore::gdpr::remove(&store, &bob)?;
    assert_eq!(receipt.removed["pubsub_subscriptions"], 1);
    assert_eq!(receipt.removed["pubsub_affiliations"], 1);
    assert_eq!(receipt.removed["pubsub_items"], 0);
    let kept = receipt
        .kept
        .iter()
        .find(|k| k.class == "pubsub_items")
        .unwrap();
    assert_eq!(kept.rows, Some(1));
    assert_eq!(nodes_of(&store, &alice), ["Node1"]);
    assert!(subs_of(&store, &bob).is_empty() && nodes_of(&store, &bob).is_empty());
    assert!(rows(&export(&store, &bob), "pubsub_affiliations.csv").is_empty());
    assert_eq!(store.pubsub().affiliations(&ps, "Node1")?.len(), 1);
    // Bob's item on alice's node stays, still his (as in MongooseIM).
    assert_eq!(items_of(&store, &bob), ["Node1 b"]);
    Ok(())
}

/// D14: a flat node survives its owner's erasure and is still attributed to her.
#[test]
fn d14_flat_node_survives() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@localhost");
    flat(&store, "Node1", &alice);
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["pubsub_nodes"], 0);
    assert_eq!(receipt.removed["pubsub_affiliations"], 0);
    let kept: BTreeSet<_> = receipt.kept.iter().map(|k| (k.class, k.rows)).collect();
    assert!(kept.contains(&("pubsub_nodes", Some(1))));
    assert!(kept.contains(&("pubsub_affiliations", Some(1))));
    assert_eq!(nodes_of(&store, &alice), ["Node1"]);
    assert_eq!(
        store.pubsub().get_node(&bare(PS), "Node1")?.unwrap().owner,
        alice
    );
    Ok(())
}

/// D15 and D16: push and PEP nodes go with their owner, including others' items.
#[test]
fn d15_d16_push_and_pep_nodes_erased() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let ps = bare(PS);
    let p = store.pubsub();
    p.create_node(&node(&ps, "push1", &alice, NodeType::Push, "whitelist"))?;
    p.create_node(&node(&alice, "myns", &alice, NodeType::Pep, "presence"))?;
    publish(&store, &ps, "push1", "notif", &bob);
    p.subscribe(&ps, "push1", &bob, SubState::Subscribed)?;
    assert_eq!(items_of(&store, &alice), ["push1 notif"]);
    assert_eq!(items_of(&store, &bob), ["push1 notif"]);
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["pubsub_nodes"], 2);
    assert_eq!(receipt.removed["pubsub_items"], 1);
    assert_eq!(receipt.removed["pubsub_affiliations"], 2);
    assert!(p.get_node(&ps, "push1")?.is_none());
    assert!(p.get_node(&alice, "myns")?.is_none());
    assert!(p.items(&ps, "push1")?.is_empty());
    // Bob's index entries went with the node.
    assert!(items_of(&store, &bob).is_empty());
    assert!(subs_of(&store, &bob).is_empty());
    Ok(())
}

/// D17: the full mixed case, with receipt counts matching the export taken before.
#[test]
fn d17_mixed_erase() -> TestResult {
    let (_dir, store) = store();
    let (alice, bob) = setup_d17(&store);
    let before = export(&store, &alice);
    let bob_before = export(&store, &bob);
    let receipt = jidstore::gdpr::remove(&store, &alice)?;

    assert_eq!(items_of(&store, &alice), ["Node1 itemA1", "Node2 itemA2"]);
    assert_eq!(nodes_of(&store, &alice), ["Node1", "Node2"]);
    assert!(subs_of(&store, &alice).is_empty());
    assert_eq!(items_of(&store, &bob), ["Node1 itemB1", "Node3 itemB3"]);
    assert_eq!(nodes_of(&store, &bob), ["Node3", "Node4"]);
    assert_eq!(subs_of(&store, &bob), ["Node2"]);
    for t in [
        "pubsub_nodes.csv",
        "pubsub_items.csv",
        "pubsub_subscriptions.csv",
        "pubsub_affiliations.csv",
    ] {
        assert_eq!(rows(&export(&store, &bob), t), rows(&bob_before, t), "{t}");
    }

    // Removed + kept = what the export showed; removed = what disappeared from it.
    let after = export(&store, &alice);
    for stem in [
        "pubsub_nodes",
        "pubsub_items",
        "pubsub_subscriptions",
        "pubsub_affiliations",
    ] {
        let file = format!("{stem}.csv");
        let (b, a) = (
            rows(&before, &file).len() as u64,
            rows(&after, &file).len() as u64,
        );
        let kept = receipt
            .kept
            .iter()
            .filter(|k| k.class == stem)
            .filter_map(|k| k.rows)
            .sum::<u64>();
        assert_eq!(receipt.removed[stem], b - a, "{stem} removed");
        assert_eq!(kept, a, "{stem} kept");
    }
    assert_eq!(receipt.removed["pubsub_nodes"], 1);
    assert_eq!(receipt.removed["pubsub_items"], 1);
    assert_eq!(receipt.removed["pubsub_subscriptions"], 1);
    Ok(())
}
