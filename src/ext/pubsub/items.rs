//! Items: publish, retract, read, and the items that are a person's.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::jid::BareJid;
use crate::keys::{self, KeyReader, Keyspace};
use crate::store::abort;
use crate::time::Timestamp;
use crate::xml;

use super::Pubsub;
use super::stored::{StoredItem, check_id, gone_or_missing, node_key, triple};
use super::types::{Item, NodeType};

impl Pubsub<'_> {
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
            published_at: at.into(),
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

    /// Items that are `subject`'s: everything on its PEP and push nodes, and everything it
    /// published anywhere, once each, by (service, node, item).
    pub(super) fn personal_items(&self, subject: &BareJid) -> Result<Vec<Item>> {
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

fn to_item(service: BareJid, node: String, id: String, st: StoredItem) -> Item {
    Item {
        service,
        node,
        id,
        publisher: BareJid::from_stored(st.publisher),
        payload: st.payload,
        published_at: st.published_at.into(),
    }
}
