//! Subscriptions and affiliations: the per-JID records of a node and their by-JID index.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::abort;

use super::Pubsub;
use super::stored::{StoredAffiliation, StoredSubState, check_id, node_key, triple};
use super::types::{Affiliation, SubState, Subscription};

impl Pubsub<'_> {
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
            Some(&StoredSubState::from(state)),
        )
        .map(|_| ())
    }

    /// Removes a subscription; returns whether there was one.
    pub fn unsubscribe(&self, service: &BareJid, node: &str, subscriber: &BareJid) -> Result<bool> {
        self.set_personal::<StoredSubState>(
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
            .scan::<StoredSubState>(Keyspace::PubsubSubs, &keys::pair(service.as_str(), node))
            .map(|e| {
                let (k, state) = e?;
                let (_, _, jid) = triple(Keyspace::PubsubSubs, &k)?;
                Ok(Subscription {
                    service: service.clone(),
                    node: node.to_owned(),
                    subscriber: BareJid::from_stored(jid),
                    state: state.into(),
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
            affiliation.map(StoredAffiliation::from).as_ref(),
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
            .scan::<StoredAffiliation>(Keyspace::PubsubAffs, &keys::pair(service.as_str(), node))
            .map(|e| {
                let (k, a) = e?;
                let (_, _, jid) = triple(Keyspace::PubsubAffs, &k)?;
                Ok((BareJid::from_stored(jid), a.into()))
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
}
