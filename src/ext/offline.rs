//! Offline messages: stored for delivery, popped on login, dropped when expired.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ext::owner_keyed::{Held, OwnerKeyed, Shape};
use crate::ext::stored_time::StoredTimestamp;
use crate::ext::{Emit, Table};
use crate::jid::{BareJid, Jid};
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;
use crate::xml;

/// A message held for an owner who was offline when it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineMessage {
    /// The sender.
    pub from: Jid,
    /// The addressee as the stanza named it.
    pub to: Jid,
    /// When the message arrived.
    pub timestamp: Timestamp,
    /// When it stops being worth delivering, if ever.
    pub expires: Option<Timestamp>,
    /// The message stanza (XML).
    pub stanza: String,
}

impl OfflineMessage {
    /// A message that never expires.
    pub fn new(
        from: Jid,
        to: Jid,
        timestamp: Timestamp,
        stanza: impl Into<String>,
    ) -> OfflineMessage {
        OfflineMessage {
            from,
            to,
            timestamp,
            expires: None,
            stanza: stanza.into(),
        }
    }

    /// Whether the message has expired at `now` (its expiry is at or before `now`).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    from: String,
    to: String,
    timestamp: StoredTimestamp,
    expires: Option<StoredTimestamp>,
    stanza: String,
}

impl Stored {
    fn into_message(self) -> OfflineMessage {
        OfflineMessage {
            from: Jid::from_stored(self.from),
            to: Jid::from_stored(self.to),
            timestamp: self.timestamp.into(),
            expires: self.expires.map(Into::into),
            stanza: self.stanza,
        }
    }
}

/// Handle on the `offline` keyspace; from [`Store::offline`].
pub struct Offline<'a> {
    store: &'a Store,
}

impl Store {
    /// Offline messages.
    pub fn offline(&self) -> Offline<'_> {
        Offline { store: self }
    }
}

impl Offline<'_> {
    /// Stores a message for `owner`, after every message stored before it.
    pub fn store(&self, owner: &BareJid, message: &OfflineMessage) -> Result<()> {
        xml::check_element("stanza", &message.stanza)?;
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        let key = keys::owner_seq(owner, self.store.generate_id()?);
        self.store.put(
            Keyspace::Offline,
            &key,
            &Stored {
                from: message.from.as_str().to_owned(),
                to: message.to.as_str().to_owned(),
                timestamp: message.timestamp.into(),
                expires: message.expires.map(Into::into),
                stanza: message.stanza.clone(),
            },
        )
    }

    /// The owner's messages in arrival order, expired ones included.
    pub fn list(&self, owner: &BareJid) -> Result<Vec<OfflineMessage>> {
        self.store
            .scan::<Stored>(Keyspace::Offline, &keys::owner(owner))
            .map(|entry| Ok(entry?.1.into_message()))
            .collect()
    }

    /// How many messages are held for the owner, expired ones included.
    pub fn count(&self, owner: &BareJid) -> Result<u64> {
        let mut n = 0;
        for key in self.store.scan_keys(Keyspace::Offline, &keys::owner(owner)) {
            key?;
            n += 1;
        }
        Ok(n)
    }

    /// Deletes every message of the owner and returns those not expired at `now`, in arrival
    /// order. The deletion is one transaction that removes only keys still present, so two
    /// concurrent pops never deliver the same message twice.
    pub fn pop_all(&self, owner: &BareJid, now: Timestamp) -> Result<Vec<OfflineMessage>> {
        let _w = self.store.remover();
        let found: Vec<_> = self
            .store
            .scan_keys(Keyspace::Offline, &keys::owner(owner))
            .collect::<Result<_>>()?;
        let popped = self.store.transaction(&[Keyspace::Offline], |tx| {
            let mut out = Vec::with_capacity(found.len());
            for key in &found {
                if let Some(s) = tx.get::<Stored>(Keyspace::Offline, key)? {
                    tx.remove(Keyspace::Offline, key)?;
                    out.push(s);
                }
            }
            Ok(out)
        })?;
        Ok(popped
            .into_iter()
            .map(Stored::into_message)
            .filter(|m| !m.is_expired(now))
            .collect())
    }

    /// Deletes the owner's messages that arrived before `before` (retention), in
    /// transactions of at most [`crate::ext::mam::TRIM_CHUNK`] messages; returns how many
    /// were deleted. A message popped meanwhile is not counted twice.
    pub fn remove_before(&self, owner: &BareJid, before: Timestamp) -> Result<u64> {
        let _w = self.store.remover();
        let old = self.arrived_before(owner, before)?;
        let mut n = 0;
        for chunk in old.chunks(crate::ext::mam::TRIM_CHUNK) {
            n += self.store.transaction(&[Keyspace::Offline], |tx| {
                let mut n = 0u64;
                for key in chunk {
                    if tx.contains(Keyspace::Offline, key)? {
                        tx.remove(Keyspace::Offline, key)?;
                        n += 1;
                    }
                }
                Ok(n)
            })?;
        }
        Ok(n)
    }

    /// How many of the owner's messages arrived before `before`; writes nothing.
    pub fn count_before(&self, owner: &BareJid, before: Timestamp) -> Result<u64> {
        Ok(self.arrived_before(owner, before)?.len() as u64)
    }

    /// Keys of the owner's messages that arrived before `before`.
    fn arrived_before(&self, owner: &BareJid, before: Timestamp) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        for entry in self
            .store
            .scan::<Stored>(Keyspace::Offline, &keys::owner(owner))
        {
            let (key, s) = entry?;
            if Timestamp::from(s.timestamp) < before {
                keys.push(key.to_vec());
            }
        }
        Ok(keys)
    }

    /// Deletes every owner's messages expired at `now`; returns how many were deleted.
    pub fn expire(&self, now: Timestamp) -> Result<u64> {
        let _w = self.store.remover();
        let tree = self.store.tree(Keyspace::Offline);
        let mut n = 0;
        for entry in self.store.scan::<Stored>(Keyspace::Offline, &[]) {
            let (key, s) = entry?;
            // Keys are never reused (sequence ids), so a key still present is this message.
            if s.expires.is_some_and(|e| Timestamp::from(e) <= now) && tree.remove(&key)?.is_some()
            {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "offline.csv",
    title: "Messages waiting to be delivered",
    header: &["timestamp", "from", "to", "packet", "expires"],
}];

impl OwnerKeyed for Class {
    const SHAPE: Shape = Shape::new("offline", Keyspace::Offline, TABLES, Held::Range);
    fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
        let mut r = keys::KeyReader::new(Keyspace::Offline, key);
        r.part()?;
        r.u64()?;
        r.end()?;
        crate::codec::decode::<Stored>(Keyspace::Offline, key, value).map(|_| ())
    }
    fn rows(store: &Store, subject: &BareJid, emit: Emit<'_>) -> Result<()> {
        for entry in store.scan::<Stored>(Keyspace::Offline, &keys::owner(subject)) {
            let s = entry?.1;
            emit(vec![
                Timestamp::from(s.timestamp).to_rfc3339(),
                s.from,
                s.to,
                s.stanza,
                s.expires
                    .map(|t| Timestamp::from(t).to_rfc3339())
                    .unwrap_or_default(),
            ])?;
        }
        Ok(())
    }
}
