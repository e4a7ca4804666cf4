//! Verification of the pubsub keyspaces: key layouts, value types, and each record against
//! its node and its by-person index.

use crate::codec::decode;
use crate::error::Result;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::verify::{Entry, Findings};

use super::stored::{
    StoredAffiliation, StoredItem, StoredNode, StoredSubState, pair_of, quad_of, triple,
};

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
            decode::<StoredSubState>(ks, key, value).map(drop)
        }
        Keyspace::PubsubAffs => {
            triple(ks, key)?;
            decode::<StoredAffiliation>(ks, key, value).map(drop)
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

/// Cross-checks the pubsub keyspaces, one entry at a time in the pass of
/// [`crate::verify()`]: every record and its by-person index entry both ways, and every
/// item, subscription and affiliation against its node.
pub(crate) struct Links;

impl crate::verify::Links for Links {
    fn entry(&mut self, store: &Store, e: Entry<'_>, found: &mut Findings) -> Result<()> {
        let Entry { ks, key, value } = e;
        match ks {
            Keyspace::PubsubNodes => node_links(store, key, value, found),
            Keyspace::PubsubNodesByOwner => owner_links(store, key, found),
            Keyspace::PubsubItems => item_links(store, key, value, found),
            Keyspace::PubsubItemsByPublisher => publisher_links(store, key, found),
            Keyspace::PubsubSubs | Keyspace::PubsubAffs => personal_links(store, ks, key, found),
            Keyspace::PubsubSubsBySubscriber => {
                by_jid_links(store, ks, Keyspace::PubsubSubs, key, found)
            }
            Keyspace::PubsubAffsByJid => by_jid_links(store, ks, Keyspace::PubsubAffs, key, found),
            _ => Ok(()),
        }
    }
}

/// A node has its by-owner index entry.
fn node_links(store: &Store, key: &[u8], value: &[u8], found: &mut Findings) -> Result<()> {
    let (Ok((service, node)), Ok(n)) = (
        pair_of(Keyspace::PubsubNodes, key),
        decode::<StoredNode>(Keyspace::PubsubNodes, key, value),
    ) else {
        return Ok(());
    };
    found.require_index(
        store,
        (Keyspace::PubsubNodes, key),
        (
            Keyspace::PubsubNodesByOwner,
            &keys::triple_tail(&n.owner, &service, &node),
        ),
    )
}

/// A by-owner entry names a node of that owner.
fn owner_links(store: &Store, key: &[u8], found: &mut Findings) -> Result<()> {
    let Ok((owner, service, node)) = triple(Keyspace::PubsubNodesByOwner, key) else {
        return Ok(());
    };
    found.check_target(
        store,
        (Keyspace::PubsubNodesByOwner, key),
        (Keyspace::PubsubNodes, &keys::pair_tail(&service, &node)),
        |n: &StoredNode| n.owner == owner,
        "index entry names a node of another owner",
    )
}

/// An item belongs to an existing node and has its by-publisher index entry.
fn item_links(store: &Store, key: &[u8], value: &[u8], found: &mut Findings) -> Result<()> {
    let Ok((service, node, item)) = triple(Keyspace::PubsubItems, key) else {
        return Ok(());
    };
    if !store
        .tree(Keyspace::PubsubNodes)
        .contains_key(keys::pair_tail(&service, &node))?
    {
        found.add(
            Keyspace::PubsubItems,
            key,
            "item of a node that does not exist",
        );
    }
    if let Ok(st) = decode::<StoredItem>(Keyspace::PubsubItems, key, value) {
        found.require_index(
            store,
            (Keyspace::PubsubItems, key),
            (
                Keyspace::PubsubItemsByPublisher,
                &keys::quad_tail(&st.publisher, &service, &node, &item),
            ),
        )?;
    }
    Ok(())
}

/// A by-publisher entry names an item of that publisher.
fn publisher_links(store: &Store, key: &[u8], found: &mut Findings) -> Result<()> {
    let Ok((publisher, service, node, item)) = quad_of(key) else {
        return Ok(());
    };
    found.check_target(
        store,
        (Keyspace::PubsubItemsByPublisher, key),
        (
            Keyspace::PubsubItems,
            &keys::triple_tail(&service, &node, &item),
        ),
        |st: &StoredItem| st.publisher == publisher,
        "index entry names an item of another publisher",
    )
}

/// A subscription or affiliation (`ks`) belongs to an existing node and has its by-JID
/// index entry.
fn personal_links(store: &Store, ks: Keyspace, key: &[u8], found: &mut Findings) -> Result<()> {
    let (index, what) = if ks == Keyspace::PubsubSubs {
        (Keyspace::PubsubSubsBySubscriber, "subscription")
    } else {
        (Keyspace::PubsubAffsByJid, "affiliation")
    };
    let Ok((service, node, jid)) = triple(ks, key) else {
        return Ok(());
    };
    if !store
        .tree(Keyspace::PubsubNodes)
        .contains_key(keys::pair_tail(&service, &node))?
    {
        found.add(ks, key, format!("{what} of a node that does not exist"));
    }
    found.require_index(
        store,
        (ks, key),
        (index, &keys::triple_tail(&jid, &service, &node)),
    )
}

/// A by-JID entry of `index` names a record of `ks`.
fn by_jid_links(
    store: &Store,
    index: Keyspace,
    ks: Keyspace,
    key: &[u8],
    found: &mut Findings,
) -> Result<()> {
    let Ok((jid, service, node)) = triple(index, key) else {
        return Ok(());
    };
    if !store
        .tree(ks)
        .contains_key(keys::triple_tail(&service, &node, &jid))?
    {
        found.add(
            index,
            key,
            format!("dangling index entry: no record in {}", ks.name()),
        );
    }
    Ok(())
}
