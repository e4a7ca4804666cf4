//! Verification of the pubsub keyspaces: key layouts, value types, and each record against
//! its node and its by-person index.

use crate::error::Result;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::verify::Findings;

use super::stored::{StoredItem, StoredNode, pair_of, quad_of, triple};
use super::types::{Affiliation, SubState};

/// Checks one stored entry of a pubsub keyspace: key layout and value type. Used by
/// [`crate::verify()`].
pub(crate) fn verify_entry(ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
    use crate::codec::decode;
    match ks {
        Keyspace::PubsubNodes => {
            pair_of(ks, key)?;
            decode::<StoredNode>(ks, key, value).map(drop)
        }
        Keyspace::PubsubItems => {
            triple(ks, key)?;
            decode::<StoredItem>(ks, key, value).map(drop)
        }
        Keyspace::PubsubSubs => {
            triple(ks, key)?;
            decode::<SubState>(ks, key, value).map(drop)
        }
        Keyspace::PubsubAffs => {
            triple(ks, key)?;
            decode::<Affiliation>(ks, key, value).map(drop)
        }
        Keyspace::PubsubItemsByPublisher => {
            quad_of(key)?;
            decode::<()>(ks, key, value)
        }
        Keyspace::PubsubNodesByOwner
        | Keyspace::PubsubSubsBySubscriber
        | Keyspace::PubsubAffsByJid => {
            triple(ks, key)?;
            decode::<()>(ks, key, value)
        }
        other => Err(keys::corrupt(other, key, "not a pubsub keyspace")),
    }
}

/// Cross-checks the pubsub keyspaces: every record and its by-person index entry both ways,
/// and every item, subscription and affiliation against its node. Entries whose key or value
/// does not decode were reported already and are skipped.
pub(crate) fn verify_links(store: &Store, found: &mut Findings) -> Result<()> {
    verify_node_links(store, found)?;
    verify_item_links(store, found)?;
    verify_personal_links(store, found)
}

/// Nodes and their by-owner index, both ways.
fn verify_node_links(store: &Store, found: &mut Findings) -> Result<()> {
    use crate::codec::decode;
    let nodes = store.tree(Keyspace::PubsubNodes);
    for entry in nodes {
        let (key, value) = entry?;
        let (Ok((service, node)), Ok(n)) = (
            pair_of(Keyspace::PubsubNodes, &key),
            decode::<StoredNode>(Keyspace::PubsubNodes, &key, &value),
        ) else {
            continue;
        };
        found.require_index(
            store,
            (Keyspace::PubsubNodes, &key),
            (
                Keyspace::PubsubNodesByOwner,
                &keys::triple_tail(&n.owner, &service, &node),
            ),
        )?;
    }
    for key in store.scan_keys(Keyspace::PubsubNodesByOwner, &[]) {
        let key = key?;
        let Ok((owner, service, node)) = triple(Keyspace::PubsubNodesByOwner, &key) else {
            continue;
        };
        found.check_target(
            store,
            (Keyspace::PubsubNodesByOwner, &key),
            (Keyspace::PubsubNodes, &keys::pair_tail(&service, &node)),
            |n: &StoredNode| n.owner == owner,
            "index entry names a node of another owner",
        )?;
    }
    Ok(())
}

/// Items against their node, and items and their by-publisher index, both ways.
fn verify_item_links(store: &Store, found: &mut Findings) -> Result<()> {
    use crate::codec::decode;
    let nodes = store.tree(Keyspace::PubsubNodes);
    let items = store.tree(Keyspace::PubsubItems);
    for entry in items {
        let (key, value) = entry?;
        let Ok((service, node, item)) = triple(Keyspace::PubsubItems, &key) else {
            continue;
        };
        if !nodes.contains_key(keys::pair_tail(&service, &node))? {
            found.add(
                Keyspace::PubsubItems,
                &key,
                "item of a node that does not exist",
            );
        }
        if let Ok(st) = decode::<StoredItem>(Keyspace::PubsubItems, &key, &value) {
            found.require_index(
                store,
                (Keyspace::PubsubItems, &key),
                (
                    Keyspace::PubsubItemsByPublisher,
                    &keys::quad_tail(&st.publisher, &service, &node, &item),
                ),
            )?;
        }
    }
    for key in store.scan_keys(Keyspace::PubsubItemsByPublisher, &[]) {
        let key = key?;
        let Ok((publisher, service, node, item)) = quad_of(&key) else {
            continue;
        };
        found.check_target(
            store,
            (Keyspace::PubsubItemsByPublisher, &key),
            (
                Keyspace::PubsubItems,
                &keys::triple_tail(&service, &node, &item),
            ),
            |st: &StoredItem| st.publisher == publisher,
            "index entry names an item of another publisher",
        )?;
    }
    Ok(())
}

/// Subscriptions and affiliations against their node and their by-JID index, both ways.
fn verify_personal_links(store: &Store, found: &mut Findings) -> Result<()> {
    let nodes = store.tree(Keyspace::PubsubNodes);
    for (ks, index, what) in [
        (
            Keyspace::PubsubSubs,
            Keyspace::PubsubSubsBySubscriber,
            "subscription",
        ),
        (
            Keyspace::PubsubAffs,
            Keyspace::PubsubAffsByJid,
            "affiliation",
        ),
    ] {
        for key in store.scan_keys(ks, &[]) {
            let key = key?;
            let Ok((service, node, jid)) = triple(ks, &key) else {
                continue;
            };
            if !nodes.contains_key(keys::pair_tail(&service, &node))? {
                found.add(ks, &key, format!("{what} of a node that does not exist"));
            }
            found.require_index(
                store,
                (ks, &key),
                (index, &keys::triple_tail(&jid, &service, &node)),
            )?;
        }
        for key in store.scan_keys(index, &[]) {
            let key = key?;
            let Ok((jid, service, node)) = triple(index, &key) else {
                continue;
            };
            if !store
                .tree(ks)
                .contains_key(keys::triple_tail(&service, &node, &jid))?
            {
                found.add(
                    index,
                    &key,
                    format!("dangling index entry: no record in {}", ks.name()),
                );
            }
        }
    }
    Ok(())
}
