//! Publish-subscribe (XEP-0060) with PEP (XEP-0163) and push (XEP-0357) nodes.
//!
//! Every record that names a person has a by-person index (owner, publisher, subscriber,
//! affiliated JID), written in the same transaction as the record, so export and erasure
//! find everything through prefix scans.

mod gdpr;
mod items;
mod nodes;
mod redact;
mod stored;
mod subscriptions;
mod types;
mod verify;

use crate::store::Store;

pub use types::{Affiliation, Item, Node, NodeType, SubState, Subscription};

pub(crate) use gdpr::Class;

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
