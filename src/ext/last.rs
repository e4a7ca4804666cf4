//! Last activity (XEP-0012).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;

/// When an owner was last seen, and what status they left with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastActivity {
    /// Unix time (seconds) of the last logout, as MongooseIM stores it.
    pub seconds: i64,
    /// The status text of the last unavailable presence.
    pub status: String,
}

/// Handle on the `last` keyspace; from [`Store::last`].
pub struct Last<'a> {
    store: &'a Store,
}

impl Store {
    /// Last activity.
    pub fn last(&self) -> Last<'_> {
        Last { store: self }
    }
}

impl Last<'_> {
    /// Records the owner's last activity, replacing the previous record.
    pub fn set(&self, owner: &BareJid, seconds: i64, status: &str) -> Result<()> {
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        self.store.put(
            Keyspace::Last,
            &keys::owner(owner),
            &LastActivity {
                seconds,
                status: status.to_owned(),
            },
        )
    }

    /// The owner's last activity.
    pub fn get(&self, owner: &BareJid) -> Result<Option<LastActivity>> {
        self.store.get(Keyspace::Last, &keys::owner(owner))
    }

    /// Removes the owner's last activity; returns whether there was one.
    pub fn remove(&self, owner: &BareJid) -> Result<bool> {
        let _w = self.store.remover();
        Ok(self
            .store
            .tree(Keyspace::Last)
            .remove(keys::owner(owner))?
            .is_some())
    }
}

/// Checks one stored entry: the key parses as this keyspace's layout and the value decodes
/// as its record type. Used by [`crate::verify()`].
pub(crate) fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
    let mut r = keys::KeyReader::new(Keyspace::Last, key);
    r.part()?;
    r.end()?;
    crate::codec::decode::<LastActivity>(Keyspace::Last, key, value).map(|_| ())
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "last.csv",
    // The stored Unix seconds, exported as an RFC 3339 time like every other time column.
    header: &["jid", "timestamp", "status"],
}];

impl Extension for Class {
    fn verify_entry(&self, _ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        verify_entry(key, value)
    }

    fn name(&self) -> &'static str {
        "last"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Last]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(&self, store: &Store, subject: &BareJid, _table: usize, emit: Emit<'_>) -> Result<()> {
        if let Some(last) = store.last().get(subject)? {
            emit(vec![
                subject.to_string(),
                crate::Timestamp::from_secs(last.seconds).to_rfc3339(),
                last.status,
            ])?;
        }
        Ok(())
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        let key = keys::owner(subject);
        if store.tree(Keyspace::Last).contains_key(&key)? {
            plan.remove(Keyspace::Last, key);
            plan.count("last", 1);
        }
        Ok(())
    }
}
