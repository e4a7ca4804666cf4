//! The GDPR side of pubsub: export tables, removal plan, sweep hooks and the rows kept.

use std::collections::BTreeSet;

use crate::backend::Bytes;

use crate::error::Result;
use crate::ext::{Emit, Extension, Kept, RemovalPlan, Swept, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;

use super::stored::{
    StoredAffiliation, StoredItem, StoredSubState, gone_or_missing, indexed_node, node_key,
    quad_of, triple,
};
use super::types::{Affiliation, NodeType, SubState};

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
        title: "Your publish-subscribe nodes",
        header: &["node_id", "access_model", "service_jid", "type"],
    },
    Table {
        file: "pubsub_items.csv",
        title: "Items you published",
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
        title: "Your subscriptions",
        header: &["service_jid", "node_id", "subscriber_jid", "state"],
    },
    Table {
        file: "pubsub_affiliations.csv",
        title: "Your affiliations",
        header: &["service_jid", "node_id", "jid", "affiliation"],
    },
];

/// Scans a by-JID index (`jid \0 service \0 node`) and reads each record it points to.
fn by_jid<T: serde::de::DeserializeOwned>(
    store: &Store,
    subject: &BareJid,
    index: Keyspace,
    ks: Keyspace,
) -> Result<Vec<(BareJid, String, T, Bytes)>> {
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
    fn verify_entry(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        super::verify::verify_entry(ks, key, value)
    }

    fn links(&self) -> Option<Box<dyn crate::verify::Links>> {
        Some(Box::new(super::verify::Links))
    }

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
                let subs = by_jid::<StoredSubState>(
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
                        SubState::from(state).as_str().to_owned(),
                    ])?;
                }
            }
            _ => {
                let affs = by_jid::<StoredAffiliation>(
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
                        Affiliation::from(a).as_str().to_owned(),
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

    fn redact_kept(
        &self,
        store: &Store,
        subject: &BareJid,
        p: &crate::gdpr::Pseudonym,
        count_only: Option<crate::ext::Gone<'_>>,
    ) -> Result<Vec<(&'static str, u64)>> {
        let n = super::redact::redact_items(store, subject, p, count_only)?;
        Ok(vec![("pubsub_items", n)])
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
