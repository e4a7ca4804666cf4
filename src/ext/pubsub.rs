//! Publish-subscribe (XEP-0060) with PEP (XEP-0163) and push (XEP-0357) nodes.
//!
//! Every record that names a person has a by-person index (owner, publisher, subscriber,
//! affiliated JID), written in the same transaction as the record, so export and erasure
//! find everything through prefix scans.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sled::IVec;

use crate::error::{Error, Result};
use crate::ext::{Emit, Extension, Kept, RemovalPlan, Swept, Table};
use crate::jid::BareJid;
use crate::keys::{self, KeyReader, Keyspace};
use crate::store::{Store, abort};
use crate::time::Timestamp;
use crate::verify::Findings;
use crate::xml;

/// The kind of a node; it decides what erasing its owner does to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeType {
    /// A personal eventing node (XEP-0163): erased with its owner.
    Pep,
    /// A push node (XEP-0357): erased with its owner.
    Push,
    /// A plain pubsub node: survives its owner's erasure.
    Flat,
}

impl NodeType {
    /// `pep`, `push` or `flat`, as in the export.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Pep => "pep",
            NodeType::Push => "push",
            NodeType::Flat => "flat",
        }
    }
}

/// A pubsub node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The pubsub service (the owner's bare JID for PEP).
    pub service: BareJid,
    /// The node id.
    pub node: String,
    /// Who created it.
    pub owner: BareJid,
    /// PEP, push or flat.
    pub kind: NodeType,
    /// The access model, e.g. `open` or `presence`.
    pub access_model: String,
    /// Other configuration fields, as (var, value).
    pub config: Vec<(String, String)>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A published item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The pubsub service.
    pub service: BareJid,
    /// The node id.
    pub node: String,
    /// The item id.
    pub id: String,
    /// Who published it (may be remote).
    pub publisher: BareJid,
    /// The payload XML.
    pub payload: String,
    /// When it was (last) published.
    pub published_at: Timestamp,
}

/// The state of a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubState {
    /// Active.
    Subscribed,
    /// Awaiting the owner's approval.
    Pending,
    /// Awaiting required configuration.
    Unconfigured,
}

impl SubState {
    /// `subscribed`, `pending` or `unconfigured`, as in the export.
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Subscribed => "subscribed",
            SubState::Pending => "pending",
            SubState::Unconfigured => "unconfigured",
        }
    }
}

/// A subscription to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The pubsub service.
    pub service: BareJid,
    /// The node id.
    pub node: String,
    /// Who subscribed (may be remote).
    pub subscriber: BareJid,
    /// Its state.
    pub state: SubState,
}

/// An affiliation with a node (XEP-0060 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Affiliation {
    /// Owns the node.
    Owner,
    /// May publish and retract.
    Publisher,
    /// May publish only.
    PublishOnly,
    /// May subscribe and retrieve.
    Member,
    /// Banned.
    Outcast,
}

impl Affiliation {
    /// The XEP-0060 name, e.g. `publish-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Publisher => "publisher",
            Affiliation::PublishOnly => "publish-only",
            Affiliation::Member => "member",
            Affiliation::Outcast => "outcast",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredNode {
    owner: String,
    kind: NodeType,
    access_model: String,
    config: Vec<(String, String)>,
    created_at: Timestamp,
}

#[derive(Serialize, Deserialize)]
struct StoredItem {
    publisher: String,
    payload: String,
    published_at: Timestamp,
}

/// Handle on pubsub; from [`Store::pubsub`].
pub struct Pubsub<'a> {
    store: &'a Store,
}

impl Store {
    /// Pubsub nodes, items, subscriptions and affiliations.
    pub fn pubsub(&self) -> Pubsub<'_> {
        Pubsub { store: self }
    }
}

fn check_id(what: &str, s: &str) -> Result<()> {
    keys::check_component(what, s)?;
    if s.is_empty() {
        return Err(Error::InvalidInput(format!("{what} must not be empty")));
    }
    Ok(())
}

fn node_key(service: &BareJid, node: &str) -> Vec<u8> {
    keys::pair_tail(service.as_str(), node)
}

/// Reads `a \0 b \0 c` back.
fn triple(ks: Keyspace, key: &[u8]) -> Result<(String, String, String)> {
    let mut r = KeyReader::new(ks, key);
    let a = r.part()?.to_owned();
    let b = r.part()?.to_owned();
    let c = r.tail()?.to_owned();
    Ok((a, b, c))
}

/// Reads the (service, node) of a by-person index key `jid \0 service \0 node`.
fn indexed_node(ks: Keyspace, key: &[u8]) -> Result<(BareJid, String)> {
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
fn gone_or_missing(
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

/// A key in a keyspace, scheduled for removal.
type KeyRef = (Keyspace, IVec);

/// Every key a node owns: the node, its owner index, items and their publisher index,
/// subscriptions and affiliations with their indexes. Also returns the node's items.
fn node_keys(
    store: &Store,
    service: &BareJid,
    node: &str,
    owner: &str,
) -> Result<(Vec<KeyRef>, Vec<Item>)> {
    let s = service.as_str();
    let prefix = keys::pair(s, node);
    let mut out: Vec<KeyRef> = vec![
        (Keyspace::PubsubNodes, node_key(service, node).into()),
        (
            Keyspace::PubsubNodesByOwner,
            keys::triple_tail(owner, s, node).into(),
        ),
    ];
    let items = Pubsub { store }.items(service, node)?;
    for item in &items {
        out.push((
            Keyspace::PubsubItems,
            keys::triple_tail(s, node, &item.id).into(),
        ));
        out.push((
            Keyspace::PubsubItemsByPublisher,
            keys::quad_tail(item.publisher.as_str(), s, node, &item.id).into(),
        ));
    }
    for (ks, index) in [
        (Keyspace::PubsubSubs, Keyspace::PubsubSubsBySubscriber),
        (Keyspace::PubsubAffs, Keyspace::PubsubAffsByJid),
    ] {
        for key in store.scan_keys(ks, &prefix) {
            let key = key?;
            let (_, _, jid) = triple(ks, &key)?;
            out.push((index, keys::triple_tail(&jid, s, node).into()));
            out.push((ks, key));
        }
    }
    Ok((out, items))
}

impl Pubsub<'_> {
    /// Creates a node. The owner needs an account; a PEP node lives on its owner's JID.
    /// Writes the node, its owner index and the owner's affiliation in one transaction.
    pub fn create_node(&self, n: &Node) -> Result<()> {
        check_id("node id", &n.node)?;
        if n.kind == NodeType::Pep && n.service != n.owner {
            return Err(Error::InvalidInput(
                "a PEP node must live on its owner's JID".into(),
            ));
        }
        let _w = self.store.writer()?;
        self.store.require_account(&n.owner)?;
        let (s, o) = (n.service.as_str(), n.owner.as_str());
        let key = node_key(&n.service, &n.node);
        let stored = StoredNode {
            owner: o.to_owned(),
            kind: n.kind,
            access_model: n.access_model.clone(),
            config: n.config.clone(),
            created_at: n.created_at,
        };
        self.store.transaction(
            &[
                Keyspace::PubsubNodes,
                Keyspace::PubsubNodesByOwner,
                Keyspace::PubsubAffs,
                Keyspace::PubsubAffsByJid,
            ],
            |tx| {
                if tx.contains(Keyspace::PubsubNodes, &key)? {
                    return abort(Error::InvalidInput(format!(
                        "node {} already exists on {s}",
                        n.node
                    )));
                }
                tx.put(Keyspace::PubsubNodes, &key, &stored)?;
                tx.mark(
                    Keyspace::PubsubNodesByOwner,
                    &keys::triple_tail(o, s, &n.node),
                )?;
                tx.put(
                    Keyspace::PubsubAffs,
                    &keys::triple_tail(s, &n.node, o),
                    &Affiliation::Owner,
                )?;
                tx.mark(Keyspace::PubsubAffsByJid, &keys::triple_tail(o, s, &n.node))
            },
        )
    }

    /// One node.
    pub fn get_node(&self, service: &BareJid, node: &str) -> Result<Option<Node>> {
        Ok(self
            .store
            .get::<StoredNode>(Keyspace::PubsubNodes, &node_key(service, node))?
            .map(|st| to_node(service.clone(), node.to_owned(), st)))
    }

    /// Every node of a service, by node id.
    pub fn nodes(&self, service: &BareJid) -> Result<Vec<Node>> {
        self.store
            .scan::<StoredNode>(Keyspace::PubsubNodes, &keys::owner(service))
            .map(|e| {
                let (k, st) = e?;
                let mut r = KeyReader::new(Keyspace::PubsubNodes, &k);
                r.part()?;
                let node = r.tail()?.to_owned();
                Ok(to_node(service.clone(), node, st))
            })
            .collect()
    }

    /// Deletes a node with its items, subscriptions, affiliations and every index entry of
    /// them, in one transaction. Returns whether the node existed.
    pub fn delete_node(&self, service: &BareJid, node: &str) -> Result<bool> {
        // Exclusive: keys are collected before the transaction, so a publish or subscribe
        // landing in between would survive as an orphan. Node deletion is rare; holding the
        // erase lock for it costs nothing in practice.
        let _w = self.store.eraser();
        let Some(n) = self.get_node(service, node)? else {
            return Ok(false);
        };
        let (keys, _) = node_keys(self.store, service, node, n.owner.as_str())?;
        let mut spaces: Vec<Keyspace> = keys.iter().map(|(ks, _)| *ks).collect();
        spaces.sort();
        spaces.dedup();
        self.store.transaction(&spaces, |tx| {
            for (ks, k) in &keys {
                tx.remove(*ks, k)?;
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// Publishes (or replaces) an item on an existing node ([`Error::NotFound`] otherwise).
    /// A replaced item's publisher index entry moves to the new publisher.
    pub fn publish(
        &self,
        service: &BareJid,
        node: &str,
        item_id: &str,
        publisher: &BareJid,
        payload_xml: &str,
        at: Timestamp,
    ) -> Result<()> {
        check_id("node id", node)?;
        check_id("item id", item_id)?;
        xml::check_element("payload", payload_xml)?;
        let _w = self.store.writer()?;
        let s = service.as_str();
        let nkey = node_key(service, node);
        let ikey = keys::triple_tail(s, node, item_id);
        let stored = StoredItem {
            publisher: publisher.as_str().to_owned(),
            payload: payload_xml.to_owned(),
            published_at: at,
        };
        self.store.transaction(
            &[
                Keyspace::PubsubNodes,
                Keyspace::PubsubItems,
                Keyspace::PubsubItemsByPublisher,
            ],
            |tx| {
                if !tx.contains(Keyspace::PubsubNodes, &nkey)? {
                    return abort(Error::NotFound(format!("node {node} on {s}")));
                }
                if let Some(old) = tx.get::<StoredItem>(Keyspace::PubsubItems, &ikey)?
                    && old.publisher != stored.publisher
                {
                    tx.remove(
                        Keyspace::PubsubItemsByPublisher,
                        &keys::quad_tail(&old.publisher, s, node, item_id),
                    )?;
                }
                tx.put(Keyspace::PubsubItems, &ikey, &stored)?;
                tx.mark(
                    Keyspace::PubsubItemsByPublisher,
                    &keys::quad_tail(&stored.publisher, s, node, item_id),
                )
            },
        )
    }

    /// Retracts an item; returns whether it was there.
    pub fn retract(&self, service: &BareJid, node: &str, item_id: &str) -> Result<bool> {
        let _w = self.store.remover();
        let s = service.as_str();
        let ikey = keys::triple_tail(s, node, item_id);
        self.store.transaction(
            &[Keyspace::PubsubItems, Keyspace::PubsubItemsByPublisher],
            |tx| {
                let Some(old) = tx.get::<StoredItem>(Keyspace::PubsubItems, &ikey)? else {
                    return Ok(false);
                };
                tx.remove(Keyspace::PubsubItems, &ikey)?;
                tx.remove(
                    Keyspace::PubsubItemsByPublisher,
                    &keys::quad_tail(&old.publisher, s, node, item_id),
                )?;
                Ok(true)
            },
        )
    }

    /// Every item of a node, by item id.
    pub fn items(&self, service: &BareJid, node: &str) -> Result<Vec<Item>> {
        self.store
            .scan::<StoredItem>(Keyspace::PubsubItems, &keys::pair(service.as_str(), node))
            .map(|e| {
                let (k, st) = e?;
                let (_, _, id) = triple(Keyspace::PubsubItems, &k)?;
                Ok(to_item(service.clone(), node.to_owned(), id, st))
            })
            .collect()
    }

    /// One item.
    pub fn get_item(&self, service: &BareJid, node: &str, item_id: &str) -> Result<Option<Item>> {
        Ok(self
            .store
            .get::<StoredItem>(
                Keyspace::PubsubItems,
                &keys::triple_tail(service.as_str(), node, item_id),
            )?
            .map(|st| to_item(service.clone(), node.to_owned(), item_id.to_owned(), st)))
    }

    /// Subscribes (or updates the state of) `subscriber` on an existing node.
    pub fn subscribe(
        &self,
        service: &BareJid,
        node: &str,
        subscriber: &BareJid,
        state: SubState,
    ) -> Result<()> {
        self.set_personal(
            service,
            node,
            subscriber,
            Keyspace::PubsubSubs,
            Keyspace::PubsubSubsBySubscriber,
            Some(&state),
        )
        .map(|_| ())
    }

    /// Removes a subscription; returns whether there was one.
    pub fn unsubscribe(&self, service: &BareJid, node: &str, subscriber: &BareJid) -> Result<bool> {
        self.set_personal::<SubState>(
            service,
            node,
            subscriber,
            Keyspace::PubsubSubs,
            Keyspace::PubsubSubsBySubscriber,
            None,
        )
    }

    /// Every subscription of a node, by subscriber.
    pub fn subscriptions(&self, service: &BareJid, node: &str) -> Result<Vec<Subscription>> {
        self.store
            .scan::<SubState>(Keyspace::PubsubSubs, &keys::pair(service.as_str(), node))
            .map(|e| {
                let (k, state) = e?;
                let (_, _, jid) = triple(Keyspace::PubsubSubs, &k)?;
                Ok(Subscription {
                    service: service.clone(),
                    node: node.to_owned(),
                    subscriber: BareJid::from_stored(jid),
                    state,
                })
            })
            .collect()
    }

    /// Sets `jid`'s affiliation with an existing node; `None` removes it.
    pub fn set_affiliation(
        &self,
        service: &BareJid,
        node: &str,
        jid: &BareJid,
        affiliation: Option<Affiliation>,
    ) -> Result<()> {
        self.set_personal(
            service,
            node,
            jid,
            Keyspace::PubsubAffs,
            Keyspace::PubsubAffsByJid,
            affiliation.as_ref(),
        )
        .map(|_| ())
    }

    /// Every affiliation with a node, by JID.
    pub fn affiliations(
        &self,
        service: &BareJid,
        node: &str,
    ) -> Result<Vec<(BareJid, Affiliation)>> {
        self.store
            .scan::<Affiliation>(Keyspace::PubsubAffs, &keys::pair(service.as_str(), node))
            .map(|e| {
                let (k, a) = e?;
                let (_, _, jid) = triple(Keyspace::PubsubAffs, &k)?;
                Ok((BareJid::from_stored(jid), a))
            })
            .collect()
    }

    /// Writes (`Some`) or removes (`None`) a per-JID record of a node and its by-JID index
    /// entry in one transaction. Writing needs the node; returns whether a record existed.
    fn set_personal<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        service: &BareJid,
        node: &str,
        jid: &BareJid,
        ks: Keyspace,
        index: Keyspace,
        value: Option<&T>,
    ) -> Result<bool> {
        check_id("node id", node)?;
        let _w = self.store.writer()?;
        let (s, j) = (service.as_str(), jid.as_str());
        let nkey = node_key(service, node);
        let key = keys::triple_tail(s, node, j);
        let ikey = keys::triple_tail(j, s, node);
        self.store
            .transaction(&[Keyspace::PubsubNodes, ks, index], |tx| {
                let existed = tx.contains(ks, &key)?;
                if let Some(v) = value {
                    if !tx.contains(Keyspace::PubsubNodes, &nkey)? {
                        return abort(Error::NotFound(format!("node {node} on {s}")));
                    }
                    tx.put(ks, &key, v)?;
                    tx.mark(index, &ikey)?;
                } else {
                    tx.remove(ks, &key)?;
                    tx.remove(index, &ikey)?;
                }
                Ok(existed)
            })
    }

    /// The nodes `owner` created, by service then node id.
    fn owned(&self, owner: &BareJid) -> Result<Vec<Node>> {
        let mut out = Vec::new();
        for key in self
            .store
            .scan_keys(Keyspace::PubsubNodesByOwner, &keys::owner(owner))
        {
            let key = key?;
            let (service, node) = indexed_node(Keyspace::PubsubNodesByOwner, &key)?;
            let Some(n) = self.get_node(&service, &node)? else {
                gone_or_missing(
                    self.store,
                    Keyspace::PubsubNodesByOwner,
                    &key,
                    (Keyspace::PubsubNodes, &node_key(&service, &node)),
                )?;
                continue;
            };
            out.push(n);
        }
        Ok(out)
    }

    /// Items that are `subject`'s: everything on its PEP and push nodes, and everything it
    /// published anywhere, once each, by (service, node, item).
    fn personal_items(&self, subject: &BareJid) -> Result<Vec<Item>> {
        let mut found: BTreeSet<(String, String, String)> = BTreeSet::new();
        for n in self.owned(subject)? {
            if n.kind != NodeType::Flat {
                for item in self.items(&n.service, &n.node)? {
                    found.insert((n.service.as_str().to_owned(), n.node.clone(), item.id));
                }
            }
        }
        for key in self
            .store
            .scan_keys(Keyspace::PubsubItemsByPublisher, &keys::owner(subject))
        {
            let key = key?;
            let mut r = KeyReader::new(Keyspace::PubsubItemsByPublisher, &key);
            r.part()?;
            let service = r.part()?.to_owned();
            let node = r.part()?.to_owned();
            let item = r.tail()?.to_owned();
            found.insert((service, node, item));
        }
        let mut out = Vec::with_capacity(found.len());
        for (service, node, id) in found {
            let service = BareJid::from_stored(service);
            let Some(item) = self.get_item(&service, &node, &id)? else {
                gone_or_missing(
                    self.store,
                    Keyspace::PubsubItemsByPublisher,
                    &keys::quad_tail(subject.as_str(), service.as_str(), &node, &id),
                    (
                        Keyspace::PubsubItems,
                        &keys::triple_tail(service.as_str(), &node, &id),
                    ),
                )?;
                continue;
            };
            out.push(item);
        }
        Ok(out)
    }
}

fn to_node(service: BareJid, node: String, st: StoredNode) -> Node {
    Node {
        service,
        node,
        owner: BareJid::from_stored(st.owner),
        kind: st.kind,
        access_model: st.access_model,
        config: st.config,
        created_at: st.created_at,
    }
}

fn to_item(service: BareJid, node: String, id: String, st: StoredItem) -> Item {
    Item {
        service,
        node,
        id,
        publisher: BareJid::from_stored(st.publisher),
        payload: st.payload,
        published_at: st.published_at,
    }
}

/// Reads `a \0 b` back (a node key).
fn pair_of(ks: Keyspace, key: &[u8]) -> Result<(String, String)> {
    let mut r = KeyReader::new(ks, key);
    let a = r.part()?.to_owned();
    let b = r.tail()?.to_owned();
    Ok((a, b))
}

/// Reads `a \0 b \0 c \0 d` back (a by-publisher index key).
fn quad_of(key: &[u8]) -> Result<(String, String, String, String)> {
    let mut r = KeyReader::new(Keyspace::PubsubItemsByPublisher, key);
    let publisher = r.part()?.to_owned();
    let service = r.part()?.to_owned();
    let node = r.part()?.to_owned();
    let item = r.tail()?.to_owned();
    Ok((publisher, service, node, item))
}

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

/// Why other users' rows go with the subject's PEP and push nodes (receipt).
const ITEMS_OF_OTHERS: &str =
    "items other users published on the subject's PEP and push nodes, deleted with the nodes";
const SUBS_OF_OTHERS: &str =
    "other users' subscriptions to the subject's PEP and push nodes, deleted with the nodes";
const AFFS_OF_OTHERS: &str =
    "other users' affiliations with the subject's PEP and push nodes, deleted with the nodes";

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[
    Table {
        file: "pubsub_nodes.csv",
        header: &["node_id", "access_model", "service_jid", "type"],
    },
    Table {
        file: "pubsub_items.csv",
        header: &[
            "node_id",
            "item_id",
            "publisher_jid",
            "payload",
            "service_jid",
            "published_at",
        ],
    },
    Table {
        file: "pubsub_subscriptions.csv",
        header: &["service_jid", "node_id", "subscriber_jid", "state"],
    },
    Table {
        file: "pubsub_affiliations.csv",
        header: &["service_jid", "node_id", "jid", "affiliation"],
    },
];

/// Scans a by-JID index (`jid \0 service \0 node`) and reads each record it points to.
fn by_jid<T: serde::de::DeserializeOwned>(
    store: &Store,
    subject: &BareJid,
    index: Keyspace,
    ks: Keyspace,
) -> Result<Vec<(BareJid, String, T, IVec)>> {
    let mut out = Vec::new();
    for key in store.scan_keys(index, &keys::owner(subject)) {
        let key = key?;
        let (service, node) = indexed_node(index, &key)?;
        let rec_key = keys::triple_tail(service.as_str(), &node, subject.as_str());
        let Some(v) = store.get::<T>(ks, &rec_key)? else {
            gone_or_missing(store, index, &key, (ks, &rec_key))?;
            continue;
        };
        out.push((service, node, v, key));
    }
    Ok(out)
}

impl Extension for Class {
    fn name(&self) -> &'static str {
        "pubsub"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[
            Keyspace::PubsubNodes,
            Keyspace::PubsubNodesByOwner,
            Keyspace::PubsubItems,
            Keyspace::PubsubItemsByPublisher,
            Keyspace::PubsubSubs,
            Keyspace::PubsubSubsBySubscriber,
            Keyspace::PubsubAffs,
            Keyspace::PubsubAffsByJid,
        ]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(&self, store: &Store, subject: &BareJid, table: usize, emit: Emit<'_>) -> Result<()> {
        let p = store.pubsub();
        let sj = subject.to_string();
        match table {
            0 => {
                for n in p.owned(subject)? {
                    emit(vec![
                        n.node,
                        n.access_model,
                        n.service.to_string(),
                        n.kind.as_str().to_owned(),
                    ])?;
                }
            }
            1 => {
                for i in p.personal_items(subject)? {
                    emit(vec![
                        i.node,
                        i.id,
                        i.publisher.to_string(),
                        i.payload,
                        i.service.to_string(),
                        i.published_at.to_rfc3339(),
                    ])?;
                }
            }
            2 => {
                let subs = by_jid::<SubState>(
                    store,
                    subject,
                    Keyspace::PubsubSubsBySubscriber,
                    Keyspace::PubsubSubs,
                )?;
                for (service, node, state, _) in subs {
                    emit(vec![
                        service.to_string(),
                        node,
                        sj.clone(),
                        state.as_str().to_owned(),
                    ])?;
                }
            }
            _ => {
                let affs = by_jid::<Affiliation>(
                    store,
                    subject,
                    Keyspace::PubsubAffsByJid,
                    Keyspace::PubsubAffs,
                )?;
                for (service, node, a, _) in affs {
                    emit(vec![
                        service.to_string(),
                        node,
                        sj.clone(),
                        a.as_str().to_owned(),
                    ])?;
                }
            }
        }
        Ok(())
    }

    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        let p = store.pubsub();
        let s = subject.as_str();
        let mut flat: BTreeSet<(BareJid, String)> = BTreeSet::new();
        let mut erased: BTreeSet<(BareJid, String)> = BTreeSet::new();
        for n in p.owned(subject)? {
            if n.kind == NodeType::Flat {
                flat.insert((n.service, n.node));
                continue;
            }
            // The node and its owner index go in the commit; its items, subscriptions and
            // affiliations (anyone's) are ranges under the node, swept after it.
            let sv = n.service.as_str();
            plan.remove(Keyspace::PubsubNodes, node_key(&n.service, &n.node));
            plan.remove(
                Keyspace::PubsubNodesByOwner,
                keys::triple_tail(s, sv, &n.node),
            );
            for ks in [
                Keyspace::PubsubItems,
                Keyspace::PubsubSubs,
                Keyspace::PubsubAffs,
            ] {
                plan.sweep_range(store, ks, keys::pair(sv, &n.node))?;
            }
            erased.insert((n.service, n.node));
        }
        plan.count("pubsub_nodes", erased.len() as u64);

        // The subject's own subscriptions and affiliations with other nodes: one key pair
        // each (those with its erased nodes go with their node's range).
        for (ks, index, class) in [
            (
                Keyspace::PubsubSubs,
                Keyspace::PubsubSubsBySubscriber,
                "pubsub_subscriptions",
            ),
            (
                Keyspace::PubsubAffs,
                Keyspace::PubsubAffsByJid,
                "pubsub_affiliations",
            ),
        ] {
            let (mut removed, mut kept) = (0u64, 0u64);
            for key in store.scan_keys(index, &keys::owner(subject)) {
                let key = key?;
                let (service, node) = indexed_node(index, &key)?;
                let target = (service, node);
                if erased.contains(&target) {
                    continue;
                }
                // Affiliations with the subject's flat nodes stay: the node is still
                // theirs (D14).
                if ks == Keyspace::PubsubAffs && flat.contains(&target) {
                    kept += 1;
                    continue;
                }
                let rec = keys::triple_tail(target.0.as_str(), &target.1, s);
                if !store.contains(ks, &rec)? {
                    gone_or_missing(store, index, &key, (ks, &rec))?;
                    continue;
                }
                plan.remove(ks, rec);
                plan.remove(index, key);
                removed += 1;
            }
            plan.count(class, removed);
            if kept > 0 {
                plan.keep(
                    "pubsub_affiliations",
                    Some(kept),
                    "affiliations with the subject's flat nodes stay with those nodes",
                );
            }
        }
        let flat_n = flat.len() as u64;
        if flat_n > 0 {
            plan.keep(
                "pubsub_nodes",
                Some(flat_n),
                "flat nodes stay with their items, as in MongooseIM: other users use them",
            );
        }
        Ok(())
    }

    fn swept(
        &self,
        ks: Keyspace,
        key: &[u8],
        value: &[u8],
        subject: &BareJid,
        out: &mut Swept,
    ) -> Result<()> {
        let (service, node, last) = triple(ks, key)?;
        let subjects = |jid: &str| jid == subject.as_str();
        match ks {
            Keyspace::PubsubItems => {
                let st = crate::codec::decode::<StoredItem>(ks, key, value)?;
                out.also.push((
                    Keyspace::PubsubItemsByPublisher,
                    keys::quad_tail(&st.publisher, &service, &node, &last),
                ));
                // Every item on the subject's PEP and push nodes is in its export.
                out.count("pubsub_items", 1);
                if !subjects(&st.publisher) {
                    out.consequence("pubsub_items", ITEMS_OF_OTHERS, true);
                }
            }
            Keyspace::PubsubSubs | Keyspace::PubsubAffs => {
                let (index, class, reason) = if ks == Keyspace::PubsubSubs {
                    (
                        Keyspace::PubsubSubsBySubscriber,
                        "pubsub_subscriptions",
                        SUBS_OF_OTHERS,
                    )
                } else {
                    (
                        Keyspace::PubsubAffsByJid,
                        "pubsub_affiliations",
                        AFFS_OF_OTHERS,
                    )
                };
                out.also
                    .push((index, keys::triple_tail(&last, &service, &node)));
                if subjects(&last) {
                    out.count(class, 1);
                } else {
                    out.consequence(class, reason, false);
                }
            }
            other => return Err(keys::corrupt(other, key, "not a swept pubsub keyspace")),
        }
        Ok(())
    }

    fn count_kept(
        &self,
        store: &Store,
        subject: &BareJid,
        gone: crate::ext::Gone<'_>,
        kept: &mut Vec<Kept>,
    ) -> Result<()> {
        // Items the subject published on nodes that stay (flat nodes, other users' nodes).
        let mut n = 0u64;
        for key in store.scan_keys(Keyspace::PubsubItemsByPublisher, &keys::owner(subject)) {
            let (_, service, node, item) = quad_of(&key?)?;
            if !gone(
                Keyspace::PubsubItems,
                &keys::triple_tail(&service, &node, &item),
            ) {
                n += 1;
            }
        }
        if n > 0 {
            kept.push(Kept {
                class: "pubsub_items",
                rows: Some(n),
                reason: "items published on flat nodes and on other users' nodes stay, as in MongooseIM",
            });
        }
        Ok(())
    }
}
