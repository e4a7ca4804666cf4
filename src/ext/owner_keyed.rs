//! The simple owner-keyed data classes (vCard, last activity, private XML, offline
//! messages, inbox, blocklist): one keyspace whose keys start with the owner's bare JID.
//! They describe themselves through [`OwnerKeyed`]; the registry duties they share (the
//! keyspace claim, the entry check, removal planning) are written once, here.

use serde::de::DeserializeOwned;

use super::{Emit, Extension, RemovalPlan, Table};
use crate::error::Result;
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;

/// How much an owner holds in an owner-keyed class.
pub(crate) enum Held {
    /// One record, keyed by the owner alone: removed in the erasure's commit.
    One,
    /// Any number of records under the owner's key prefix: the range is tombstoned in the
    /// commit and swept after it (each entry one row of the class's table).
    Range,
}

/// What the registry needs to know of an owner-keyed class besides its two functions.
pub(crate) struct Shape {
    /// The class name used in receipts and docs; also the stem of its one table.
    name: &'static str,
    /// The keyspace it owns.
    keyspace: Keyspace,
    /// Its CSV table.
    tables: &'static [Table],
    /// One record or a range per owner.
    held: Held,
}

impl Shape {
    /// A class named `name`, owning `keyspace`, exporting `tables`, holding `held` per owner.
    pub(crate) const fn new(
        name: &'static str,
        keyspace: Keyspace,
        tables: &'static [Table],
        held: Held,
    ) -> Self {
        Shape {
            name,
            keyspace,
            tables,
            held,
        }
    }
}

/// A data class with one keyspace keyed by owner first.
pub(crate) trait OwnerKeyed: Sync {
    /// Its name, keyspace, table and how much an owner holds.
    const SHAPE: Shape;
    /// Checks one stored entry's key layout and value type.
    fn verify_entry(key: &[u8], value: &[u8]) -> Result<()>;
    /// Streams the rows held about `subject`, in a deterministic order.
    fn rows(store: &Store, subject: &BareJid, emit: Emit<'_>) -> Result<()>;
}

impl<C: OwnerKeyed> Extension for C {
    fn name(&self) -> &'static str {
        C::SHAPE.name
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        const { std::slice::from_ref(&C::SHAPE.keyspace) }
    }
    fn tables(&self) -> &'static [Table] {
        C::SHAPE.tables
    }
    fn rows(&self, store: &Store, subject: &BareJid, _table: usize, emit: Emit<'_>) -> Result<()> {
        C::rows(store, subject, emit)
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        let key = keys::owner(subject);
        match C::SHAPE.held {
            Held::Range => plan.sweep_range(store, C::SHAPE.keyspace, key),
            Held::One => {
                if store.tree(C::SHAPE.keyspace).contains_key(&key)? {
                    plan.remove(C::SHAPE.keyspace, key);
                    plan.count(C::SHAPE.name, 1);
                }
                Ok(())
            }
        }
    }
    fn verify_entry(&self, _ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        C::verify_entry(key, value)
    }
}

/// The entry check of a [`Held::One`] class: the key is the owner alone, the value a `V`.
pub(crate) fn verify_one<V: DeserializeOwned>(
    ks: Keyspace,
    key: &[u8],
    value: &[u8],
) -> Result<()> {
    let mut r = keys::KeyReader::new(ks, key);
    r.part()?;
    r.end()?;
    crate::codec::decode::<V>(ks, key, value).map(drop)
}
