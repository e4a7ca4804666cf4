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

/// A data class with one keyspace keyed by owner first.
pub(crate) trait OwnerKeyed: Sync {
    /// The class name used in receipts and docs; also the stem of its one table.
    const NAME: &'static str;
    /// The keyspace it owns.
    const KEYSPACE: Keyspace;
    /// Its CSV table.
    const TABLES: &'static [Table];
    /// One record or a range per owner.
    const HELD: Held;
    /// Checks one stored entry's key layout and value type.
    fn verify_entry(key: &[u8], value: &[u8]) -> Result<()>;
    /// Streams the rows held about `subject`, in a deterministic order.
    fn rows(store: &Store, subject: &BareJid, emit: Emit<'_>) -> Result<()>;
}

impl<C: OwnerKeyed> Extension for C {
    fn name(&self) -> &'static str {
        C::NAME
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        std::slice::from_ref(&C::KEYSPACE)
    }
    fn tables(&self) -> &'static [Table] {
        C::TABLES
    }
    fn rows(&self, store: &Store, subject: &BareJid, _table: usize, emit: Emit<'_>) -> Result<()> {
        C::rows(store, subject, emit)
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        let key = keys::owner(subject);
        match C::HELD {
            Held::Range => plan.sweep_range(store, C::KEYSPACE, key),
            Held::One => {
                if store.tree(C::KEYSPACE).contains_key(&key)? {
                    plan.remove(C::KEYSPACE, key);
                    plan.count(C::NAME, 1);
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
