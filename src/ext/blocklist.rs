//! Blocking command (XEP-0191): blocked JIDs.

use crate::error::{Error, Result};
use crate::ext::owner_keyed::{Held, OwnerKeyed, Shape};
use crate::ext::{Emit, Table};
use crate::jid::{BareJid, Jid};
use crate::keys::{self, Keyspace};
use crate::store::Store;

/// The JID named by a key.
fn blocked_of(key: &[u8]) -> Result<Jid> {
    let mut r = keys::KeyReader::new(Keyspace::Blocklist, key);
    r.part()?;
    Ok(Jid::from_stored(r.tail()?.to_owned()))
}

/// Handle on the `blocklist` keyspace; from [`Store::blocklist`].
pub struct Blocklist<'a> {
    store: &'a Store,
}

impl Store {
    /// Blocklists.
    pub fn blocklist(&self) -> Blocklist<'_> {
        Blocklist { store: self }
    }
}

impl Blocklist<'_> {
    /// Blocks every JID in `jids` (bare or full), in one transaction. Blocking a JID already
    /// blocked is a no-op. An empty list is refused, as XEP-0191 refuses an empty `<block/>`.
    pub fn block(&self, owner: &BareJid, jids: &[Jid]) -> Result<()> {
        if jids.is_empty() {
            return Err(Error::InvalidInput("nothing to block".into()));
        }
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        self.set(owner, jids, true)
    }

    /// Unblocks every JID in `jids`, in one transaction; JIDs not blocked are ignored.
    pub fn unblock(&self, owner: &BareJid, jids: &[Jid]) -> Result<()> {
        let _w = self.store.remover();
        self.set(owner, jids, false)
    }

    /// Marks (`blocked`) or removes the entries of `jids` in one transaction; the caller
    /// holds the store's writer or remover guard.
    fn set(&self, owner: &BareJid, jids: &[Jid], blocked: bool) -> Result<()> {
        let keys: Vec<Vec<u8>> = jids
            .iter()
            .map(|j| keys::owner_and(owner, j.as_str()))
            .collect();
        self.store.transaction(&[Keyspace::Blocklist], |tx| {
            for key in &keys {
                if blocked {
                    tx.mark(Keyspace::Blocklist, key)?;
                } else {
                    tx.remove(Keyspace::Blocklist, key)?;
                }
            }
            Ok(())
        })
    }

    /// Unblocks everything the owner blocked; returns how many JIDs were unblocked.
    pub fn unblock_all(&self, owner: &BareJid) -> Result<u64> {
        let _w = self.store.remover();
        let found: Vec<_> = self
            .store
            .scan_keys(Keyspace::Blocklist, &keys::owner(owner))
            .collect::<Result<_>>()?;
        self.store.transaction(&[Keyspace::Blocklist], |tx| {
            let mut n = 0;
            for key in &found {
                if tx.contains(Keyspace::Blocklist, key)? {
                    tx.remove(Keyspace::Blocklist, key)?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Every JID the owner blocked, in key order.
    pub fn list(&self, owner: &BareJid) -> Result<Vec<Jid>> {
        self.store
            .scan::<()>(Keyspace::Blocklist, &keys::owner(owner))
            .map(|entry| blocked_of(&entry?.0))
            .collect()
    }

    /// Whether the owner blocked exactly `jid` (a bare JID blocked does not match a full one
    /// here; servers apply XEP-0191 matching rules on top).
    pub fn is_blocked(&self, owner: &BareJid, jid: &Jid) -> Result<bool> {
        Ok(self
            .store
            .get::<()>(Keyspace::Blocklist, &keys::owner_and(owner, jid.as_str()))?
            .is_some())
    }
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "blocklist.csv",
    title: "Blocked addresses",
    header: &["jid"],
}];

impl OwnerKeyed for Class {
    const SHAPE: Shape = Shape::new("blocklist", Keyspace::Blocklist, TABLES, Held::Range);
    fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
        blocked_of(key)?;
        crate::codec::decode::<()>(Keyspace::Blocklist, key, value)
    }
    fn rows(store: &Store, subject: &BareJid, emit: Emit<'_>) -> Result<()> {
        for entry in store.scan::<()>(Keyspace::Blocklist, &keys::owner(subject)) {
            emit(vec![blocked_of(&entry?.0)?.to_string()])?;
        }
        Ok(())
    }
}
