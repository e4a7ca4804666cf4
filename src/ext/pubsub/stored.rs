//! The stored forms of nodes and items, and the key layouts of the pubsub keyspaces read
//! back.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ext::stored_enum::stored_enum;
use crate::ext::stored_time::StoredTimestamp;
use crate::jid::BareJid;
use crate::keys::{self, KeyReader, Keyspace};
use crate::store::Store;

use super::types::{Affiliation, NodeType, SubState};

// The stored forms below are the on-disk layout of the pubsub keyspaces' values, pinned in
// `src/golden.rs`: field order and variant order change only with a format version bump.

/// A node as stored (value of `pubsub_nodes`; service and node id live in the key).
#[derive(Serialize, Deserialize)]
pub(super) struct StoredNode {
    pub(super) owner: String,
    pub(super) kind: StoredNodeType,
    pub(super) access_model: String,
    pub(super) config: Vec<(String, String)>,
    pub(super) created_at: StoredTimestamp,
}

/// An item as stored (value of `pubsub_items`; service, node and item id live in the key).
#[derive(Serialize, Deserialize)]
pub(super) struct StoredItem {
    pub(super) publisher: String,
    pub(super) payload: String,
    pub(super) published_at: StoredTimestamp,
}

stored_enum! {
    /// The on-disk form of a [`NodeType`] in [`StoredNode`]: the variant index is written.
    /// Change only with a format version bump.
    pub(super) enum StoredNodeType mirrors NodeType { Pep, Push, Flat }
}

stored_enum! {
    /// The on-disk form of a [`SubState`] (value of `pubsub_subs`): the variant index is
    /// written. Change only with a format version bump.
    pub(super) enum StoredSubState mirrors SubState { Subscribed, Pending, Unconfigured }
}

stored_enum! {
    /// The on-disk form of an [`Affiliation`] (value of `pubsub_affs`): the variant index is
    /// written. Change only with a format version bump.
    pub(super) enum StoredAffiliation mirrors Affiliation {
        Owner,
        Publisher,
        PublishOnly,
        Member,
        Outcast,
    }
}

pub(super) fn check_id(what: &str, s: &str) -> Result<()> {
    keys::check_component(what, s)?;
    if s.is_empty() {
        return Err(Error::InvalidInput(format!("{what} must not be empty")));
    }
    Ok(())
}

pub(super) fn node_key(service: &BareJid, node: &str) -> Vec<u8> {
    keys::pair_tail(service.as_str(), node)
}

/// Reads `a \0 b \0 c` back.
pub(super) fn triple(ks: Keyspace, key: &[u8]) -> Result<(String, String, String)> {
    let mut r = KeyReader::new(ks, key);
    let a = r.part()?.to_owned();
    let b = r.part()?.to_owned();
    let c = r.tail()?.to_owned();
    Ok((a, b, c))
}

/// Reads the (service, node) of a by-person index key `jid \0 service \0 node`.
pub(super) fn indexed_node(ks: Keyspace, key: &[u8]) -> Result<(BareJid, String)> {
    let (_, service, node) = triple(ks, key)?;
    Ok((BareJid::from_stored(service), node))
}

fn missing(ks: Keyspace, key: &[u8]) -> Error {
    Error::Corrupt {
        keyspace: ks.name(),
        key: keys::escape_key(key),
        reason: "index entry without record",
    }
}

/// An index entry's record was not found. Index entry and record are removed in one
/// transaction, but a reader scans the index and reads the record separately: if the index
/// entry is gone too, both went in between (a concurrent `delete_node` or erasure) and the
/// reader skips it (`Ok`); so it does when the record lies in a range an erasure committed to
/// deleting (the sweep deletes the index entry with it). Otherwise the store is damaged.
pub(super) fn gone_or_missing(
    store: &Store,
    index: Keyspace,
    key: &[u8],
    (ks, record): (Keyspace, &[u8]),
) -> Result<()> {
    if store.hidden(ks, record) {
        return Ok(());
    }
    if store.contains(index, key)? {
        Err(missing(index, key))
    } else {
        Ok(())
    }
}

/// Reads `a \0 b` back (a node key).
pub(super) fn pair_of(ks: Keyspace, key: &[u8]) -> Result<(String, String)> {
    let mut r = KeyReader::new(ks, key);
    let a = r.part()?.to_owned();
    let b = r.tail()?.to_owned();
    Ok((a, b))
}

/// Reads `a \0 b \0 c \0 d` back (a by-publisher index key).
pub(super) fn quad_of(key: &[u8]) -> Result<(String, String, String, String)> {
    let mut r = KeyReader::new(Keyspace::PubsubItemsByPublisher, key);
    let publisher = r.part()?.to_owned();
    let service = r.part()?.to_owned();
    let node = r.part()?.to_owned();
    let item = r.tail()?.to_owned();
    Ok((publisher, service, node, item))
}
