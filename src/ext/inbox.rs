//! Inbox (XEP-0430): one entry per conversation of the owner.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ext::owner_keyed::{Held, OwnerKeyed, Shape};
use crate::ext::stored_time::StoredTimestamp;
use crate::ext::{Emit, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;
use crate::xml;

/// The box a new conversation lands in.
pub const DEFAULT_BOX: &str = "inbox";

/// One conversation in an owner's inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    /// The other side of the conversation (a user or a room).
    pub remote: BareJid,
    /// The last message stanza (XML).
    pub content: String,
    /// The last message's id.
    pub msg_id: Option<String>,
    /// Messages received since the owner last read the conversation.
    pub unread: u64,
    /// When the last message was sent or received.
    pub timestamp: Timestamp,
    /// The box the conversation is in, e.g. `inbox`, `archive`, `bin`.
    pub mailbox: String,
    /// Notifications are muted until then.
    pub muted_until: Option<Timestamp>,
}

/// An entry as stored; the remote JID lives in the key.
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    content: String,
    msg_id: Option<String>,
    unread: u64,
    timestamp: StoredTimestamp,
    mailbox: String,
    muted_until: Option<StoredTimestamp>,
}

impl Stored {
    fn into_entry(self, remote: BareJid) -> InboxEntry {
        InboxEntry {
            remote,
            content: self.content,
            msg_id: self.msg_id,
            unread: self.unread,
            timestamp: self.timestamp.into(),
            mailbox: self.mailbox,
            muted_until: self.muted_until.map(Into::into),
        }
    }
}

/// The remote JID named by a key.
fn remote_of(key: &[u8]) -> Result<BareJid> {
    let mut r = keys::KeyReader::new(Keyspace::Inbox, key);
    r.part()?;
    Ok(BareJid::from_stored(r.tail()?.to_owned()))
}

/// Handle on the `inbox` keyspace; from [`Store::inbox`].
pub struct Inbox<'a> {
    store: &'a Store,
}

impl Store {
    /// Inboxes.
    pub fn inbox(&self) -> Inbox<'_> {
        Inbox { store: self }
    }
}

impl Inbox<'_> {
    /// Records a message of the conversation with `remote`: the entry's content, id and time
    /// become this message's; an incoming message adds one unread, an outgoing one (sent by
    /// the owner, who has thus read the conversation) resets unread to 0. A new conversation
    /// lands in the `inbox` box.
    pub fn on_message(
        &self,
        owner: &BareJid,
        remote: &BareJid,
        stanza: &str,
        msg_id: Option<&str>,
        timestamp: Timestamp,
        incoming: bool,
    ) -> Result<()> {
        xml::check_element("stanza", stanza)?;
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        let key = keys::owner_and(owner, remote.as_str());
        self.store.transaction(&[Keyspace::Inbox], |tx| {
            let old = tx.get::<Stored>(Keyspace::Inbox, &key)?;
            let unread = match (&old, incoming) {
                (Some(o), true) => o.unread.saturating_add(1),
                (None, true) => 1,
                (_, false) => 0,
            };
            let entry = Stored {
                content: stanza.to_owned(),
                msg_id: msg_id.map(str::to_owned),
                unread,
                timestamp: timestamp.into(),
                mailbox: old
                    .as_ref()
                    .map_or_else(|| DEFAULT_BOX.to_owned(), |o| o.mailbox.clone()),
                muted_until: old.as_ref().and_then(|o| o.muted_until),
            };
            tx.put(Keyspace::Inbox, &key, &entry)
        })
    }

    /// The entry for the conversation with `remote`.
    pub fn get(&self, owner: &BareJid, remote: &BareJid) -> Result<Option<InboxEntry>> {
        Ok(self
            .store
            .get::<Stored>(Keyspace::Inbox, &keys::owner_and(owner, remote.as_str()))?
            .map(|s| s.into_entry(remote.clone())))
    }

    /// Every entry of the owner's inbox, by remote JID.
    pub fn list(&self, owner: &BareJid) -> Result<Vec<InboxEntry>> {
        self.store
            .scan::<Stored>(Keyspace::Inbox, &keys::owner(owner))
            .map(|entry| {
                let (key, s) = entry?;
                Ok(s.into_entry(remote_of(&key)?))
            })
            .collect()
    }

    /// Marks the conversation read; returns whether there is such an entry.
    pub fn reset_unread(&self, owner: &BareJid, remote: &BareJid) -> Result<bool> {
        self.update(owner, remote, |s| s.unread = 0)
    }

    /// Moves the conversation to `mailbox` (non-empty); returns whether there is such an entry.
    pub fn set_box(&self, owner: &BareJid, remote: &BareJid, mailbox: &str) -> Result<bool> {
        if mailbox.is_empty() {
            return Err(Error::InvalidInput(
                "inbox box name must not be empty".into(),
            ));
        }
        self.update(owner, remote, |s| mailbox.clone_into(&mut s.mailbox))
    }

    /// Mutes the conversation until `until` (`None` unmutes); returns whether there is such
    /// an entry.
    pub fn set_muted(
        &self,
        owner: &BareJid,
        remote: &BareJid,
        until: Option<Timestamp>,
    ) -> Result<bool> {
        self.update(owner, remote, |s| s.muted_until = until.map(Into::into))
    }

    /// Removes the conversation; returns whether there was one.
    pub fn remove(&self, owner: &BareJid, remote: &BareJid) -> Result<bool> {
        let _w = self.store.remover();
        Ok(self
            .store
            .tree(Keyspace::Inbox)
            .remove(keys::owner_and(owner, remote.as_str()))?
            .is_some())
    }

    /// Applies `change` to an existing entry in one transaction; `false` when there is none.
    fn update(
        &self,
        owner: &BareJid,
        remote: &BareJid,
        change: impl Fn(&mut Stored),
    ) -> Result<bool> {
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        let key = keys::owner_and(owner, remote.as_str());
        self.store
            .transaction(&[Keyspace::Inbox], |tx| -> crate::store::TxResult<bool> {
                let Some(mut s) = tx.get::<Stored>(Keyspace::Inbox, &key)? else {
                    return Ok(false);
                };
                change(&mut s);
                tx.put(Keyspace::Inbox, &key, &s)?;
                Ok(true)
            })
    }
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "inbox.csv",
    title: "Inbox",
    header: &[
        "jid",
        "content",
        "unread_count",
        "timestamp",
        "box",
        "muted_until",
    ],
}];

impl OwnerKeyed for Class {
    const SHAPE: Shape = Shape::new("inbox", Keyspace::Inbox, TABLES, Held::Range);
    fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
        remote_of(key)?;
        crate::codec::decode::<Stored>(Keyspace::Inbox, key, value).map(|_| ())
    }
    fn rows(store: &Store, subject: &BareJid, emit: Emit<'_>) -> Result<()> {
        for entry in store.scan::<Stored>(Keyspace::Inbox, &keys::owner(subject)) {
            let (key, s) = entry?;
            emit(vec![
                remote_of(&key)?.to_string(),
                s.content,
                s.unread.to_string(),
                Timestamp::from(s.timestamp).to_rfc3339(),
                s.mailbox,
                s.muted_until
                    .map(|t| Timestamp::from(t).to_rfc3339())
                    .unwrap_or_default(),
            ])?;
        }
        Ok(())
    }
}
