//! What each user should have: the model's state and its transitions.

use std::collections::{BTreeMap, BTreeSet};

use super::Kind;

/// One 1-1 archived message as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Msg {
    /// The id the store assigned (or the imported one).
    pub id: String,
    pub peer: usize,
    pub v: u8,
}

/// What the store should hold. Users, contacts and services are indexes.
#[derive(Default, Debug)]
pub struct Model {
    pub(super) accounts: BTreeSet<usize>,
    pub(super) roster: BTreeMap<usize, BTreeMap<usize, u8>>,
    pub(super) vcard: BTreeMap<usize, u8>,
    pub(super) private: BTreeMap<usize, BTreeMap<u8, u8>>,
    pub(super) offline: BTreeMap<usize, Vec<(usize, u8)>>,
    /// owner -> remote -> (stanza, unread).
    pub(super) inbox: BTreeMap<usize, BTreeMap<usize, (u8, u64)>>,
    pub(super) mam: BTreeMap<usize, Vec<Msg>>,
    /// (sender, stanza) in room-archive order.
    pub(super) muc: Vec<(usize, u8)>,
    /// (service, node) -> (owner, kind).
    pub(super) nodes: BTreeMap<(usize, u8), (usize, Kind)>,
    /// (service, node, item) -> (publisher, payload).
    pub(super) items: BTreeMap<(usize, u8, u8), (usize, u8)>,
    /// (service, node, subscriber).
    pub(super) subs: BTreeSet<(usize, u8, usize)>,
    pub(super) last: BTreeMap<usize, u8>,
    /// owner -> list -> item count.
    pub(super) privacy: BTreeMap<usize, BTreeMap<u8, u8>>,
    pub(super) blocked: BTreeMap<usize, BTreeSet<usize>>,
}

impl Model {
    pub(super) fn has(&self, u: usize) -> bool {
        self.accounts.contains(&u)
    }

    /// Whether `gdpr::remove(u)` finds anything to remove or keep.
    pub(super) fn holds_anything(&self, u: usize) -> bool {
        self.has(u)
            || self.subs.iter().any(|s| s.2 == u)
            || self.muc.iter().any(|m| m.0 == u)
            || self.items.values().any(|i| i.0 == u)
            || self.nodes.values().any(|n| n.0 == u)
    }

    /// The node an op's `target` names: 0 a node that never exists, any other value one of
    /// the existing nodes (or that missing one when there are none).
    pub(super) fn node(&self, target: u8) -> (usize, u8) {
        let nodes: Vec<_> = self.nodes.keys().copied().collect();
        if target == 0 {
            return (super::PUBSUB, 9);
        }
        nodes
            .get(usize::from(target) % nodes.len().max(1))
            .copied()
            .unwrap_or((super::PUBSUB, 9))
    }

    /// Removes a node with its items and subscriptions; returns who published or
    /// subscribed there.
    pub(super) fn delete_node(&mut self, key: (usize, u8)) -> BTreeSet<usize> {
        let mut touched = BTreeSet::new();
        self.nodes.remove(&key);
        self.items.retain(|k, v| {
            let keep = (k.0, k.1) != key;
            if !keep {
                touched.insert(v.0);
            }
            keep
        });
        self.subs.retain(|s| {
            let keep = (s.0, s.1) != key;
            if !keep {
                touched.insert(s.2);
            }
            keep
        });
        touched
    }

    /// Erases `u` as DESIGN.md says; returns the other users whose exports change.
    pub(super) fn remove_user(&mut self, u: usize) -> BTreeSet<usize> {
        self.accounts.remove(&u);
        self.roster.remove(&u);
        self.vcard.remove(&u);
        self.private.remove(&u);
        self.offline.remove(&u);
        self.inbox.remove(&u);
        self.mam.remove(&u);
        self.last.remove(&u);
        self.privacy.remove(&u);
        self.blocked.remove(&u);
        let gone: Vec<_> = self
            .nodes
            .iter()
            .filter(|(_, (owner, kind))| *owner == u && *kind != Kind::Flat)
            .map(|(k, _)| *k)
            .collect();
        let mut touched = BTreeSet::new();
        for key in gone {
            touched.extend(self.delete_node(key));
        }
        self.subs.retain(|s| s.2 != u);
        touched.remove(&u);
        touched
    }

    /// Rows per export file that `u`'s export should hold.
    pub(super) fn export_rows(&self, u: usize) -> BTreeMap<&'static str, u64> {
        let len = |n: usize| n as u64;
        let personal_items = self
            .items
            .iter()
            .filter(|((s, n, _), (publisher, _))| {
                *publisher == u
                    || self
                        .nodes
                        .get(&(*s, *n))
                        .is_some_and(|(o, k)| *o == u && *k != Kind::Flat)
            })
            .count();
        let owned = self.nodes.values().filter(|n| n.0 == u).count();
        BTreeMap::from([
            ("accounts.csv", u64::from(self.has(u))),
            (
                "roster.csv",
                len(self.roster.get(&u).map_or(0, BTreeMap::len)),
            ),
            ("vcard.csv", u64::from(self.vcard.contains_key(&u))),
            (
                "private.csv",
                len(self.private.get(&u).map_or(0, BTreeMap::len)),
            ),
            ("offline.csv", len(self.offline.get(&u).map_or(0, Vec::len))),
            (
                "inbox.csv",
                len(self.inbox.get(&u).map_or(0, BTreeMap::len)),
            ),
            ("mam_pm.csv", len(self.mam.get(&u).map_or(0, Vec::len))),
            (
                "mam_muc.csv",
                len(self.muc.iter().filter(|m| m.0 == u).count()),
            ),
            ("pubsub_nodes.csv", len(owned)),
            ("pubsub_items.csv", len(personal_items)),
            (
                "pubsub_subscriptions.csv",
                len(self.subs.iter().filter(|s| s.2 == u).count()),
            ),
            ("pubsub_affiliations.csv", len(owned)),
            ("last.csv", u64::from(self.last.contains_key(&u))),
            (
                "privacy.csv",
                self.privacy
                    .get(&u)
                    .map_or(0, |l| l.values().map(|n| u64::from(*n).max(1)).sum()),
            ),
            (
                "blocklist.csv",
                len(self.blocked.get(&u).map_or(0, BTreeSet::len)),
            ),
            ("generic_kv.csv", 0),
            ("generic_archive.csv", 0),
        ])
    }
}
