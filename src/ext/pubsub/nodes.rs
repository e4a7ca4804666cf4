//! Nodes: create, read, list and delete (with every key a node owns).

use crate::backend::Bytes;

use crate::error::{Error, Result};
use crate::jid::BareJid;
use crate::keys::{self, KeyReader, Keyspace};
use crate::store::{Store, abort};

use super::Pubsub;
use super::stored::{
    StoredAffiliation, StoredNode, check_id, gone_or_missing, indexed_node, node_key, triple,
};
use super::types::{Item, Node, NodeType};

/// A key in a keyspace, scheduled for removal.
type KeyRef = (Keyspace, Bytes);

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
            kind: n.kind.into(),
            access_model: n.access_model.clone(),
            config: n.config.clone(),
            created_at: n.created_at.into(),
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
                    &StoredAffiliation::Owner,
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
        let _w = self.store.eraser()?;
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

    /// The nodes `owner` created, by service then node id.
    pub(super) fn owned(&self, owner: &BareJid) -> Result<Vec<Node>> {
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
}

fn to_node(service: BareJid, node: String, st: StoredNode) -> Node {
    Node {
        service,
        node,
        owner: BareJid::from_stored(st.owner),
        kind: st.kind.into(),
        access_model: st.access_model,
        config: st.config,
        created_at: st.created_at.into(),
    }
}
