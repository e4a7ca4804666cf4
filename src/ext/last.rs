//! Last activity (XEP-0012).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ext::owner_keyed::{Held, OwnerKeyed, Shape, verify_one};
use crate::ext::{Emit, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;

/// When an owner was last seen, and what status they left with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastActivity {
    /// Unix time (seconds) of the last logout, as MongooseIM stores it.
    pub seconds: i64,
    /// The status text of the last unavailable presence.
    pub status: String,
}

/// A [`LastActivity`] as stored (value of `last`, keyed by the owner): the on-disk layout,
/// pinned in `src/golden.rs`. Change only with a format version bump.
#[derive(Serialize, Deserialize)]
struct Stored {
    seconds: i64,
    status: String,
}

impl From<Stored> for LastActivity {
    fn from(s: Stored) -> Self {
        LastActivity {
            seconds: s.seconds,
            status: s.status,
        }
    }
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
            &Stored {
                seconds,
                status: status.to_owned(),
            },
        )
    }

    /// The owner's last activity.
    pub fn get(&self, owner: &BareJid) -> Result<Option<LastActivity>> {
        Ok(self
            .store
            .get::<Stored>(Keyspace::Last, &keys::owner(owner))?
            .map(LastActivity::from))
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

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "last.csv",
    title: "Last activity",
    // The stored Unix seconds, exported as an RFC 3339 time like every other time column.
    header: &["jid", "timestamp", "status"],
}];

impl OwnerKeyed for Class {
    const SHAPE: Shape = Shape::new("last", Keyspace::Last, TABLES, Held::One);
    fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
        verify_one::<Stored>(Keyspace::Last, key, value)
    }
    fn rows(store: &Store, subject: &BareJid, emit: Emit<'_>) -> Result<()> {
        if let Some(last) = store.last().get(subject)? {
            emit(vec![
                subject.to_string(),
                crate::Timestamp::from_secs(last.seconds).to_rfc3339(),
                last.status,
            ])?;
        }
        Ok(())
    }
}
