//! Rosters (RFC 6121): items, pending inbound subscription requests, roster version.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::Result;
use crate::ext::stored_enum::stored_enum;
use crate::ext::{Emit, Extension, RemovalPlan, Swept, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::{Store, Tx};

/// Tag of the roster version key inside an owner's range.
const VERSION: u8 = b'V';
/// Tag of roster item keys inside an owner's range.
const ITEM: u8 = b'I';

/// The subscription state of a roster item (RFC 6121 section 2.1.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Neither side is subscribed to the other's presence.
    None,
    /// The owner is subscribed to the contact's presence.
    To,
    /// The contact is subscribed to the owner's presence.
    From,
    /// Both are subscribed to each other's presence.
    Both,
}

impl Subscription {
    /// The attribute value: `none`, `to`, `from` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }
}

/// Subscription requests awaiting an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Nothing pending.
    None,
    /// The owner asked to subscribe to the contact.
    Out,
    /// The contact asked to subscribe to the owner (a pending inbound request).
    In,
    /// Requests pending in both directions.
    Both,
}

impl Ask {
    /// The stored value: `none`, `out`, `in` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ask::None => "none",
            Ask::Out => "out",
            Ask::In => "in",
            Ask::Both => "both",
        }
    }
}

/// One contact in an owner's roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact.
    pub jid: BareJid,
    /// The name the owner gave the contact.
    pub name: Option<String>,
    /// Presence subscription state.
    pub subscription: Subscription,
    /// Pending subscription requests.
    pub ask: Ask,
    /// Roster groups the contact is in.
    pub groups: Vec<String>,
    /// The message sent with a pending subscription request.
    pub askmessage: Option<String>,
}

impl RosterItem {
    /// A contact with no name, no groups, no subscription and nothing pending; set the other
    /// fields directly (`RosterItem { name: Some(..), ..RosterItem::new(jid) }`).
    pub fn new(jid: BareJid) -> RosterItem {
        RosterItem {
            jid,
            name: None,
            subscription: Subscription::None,
            ask: Ask::None,
            groups: Vec::new(),
            askmessage: None,
        }
    }
}

/// An item as stored (the value of a roster item key; the contact lives in the key): the
/// on-disk layout, pinned in `src/golden.rs`. Change only with a format version bump.
#[derive(Serialize, Deserialize)]
struct Stored {
    name: Option<String>,
    subscription: StoredSubscription,
    ask: StoredAsk,
    groups: Vec<String>,
    askmessage: Option<String>,
}

stored_enum! {
    /// The on-disk form of a [`Subscription`]: the variant index is written. Change only with
    /// a format version bump.
    enum StoredSubscription mirrors Subscription { None, To, From, Both }
}

stored_enum! {
    /// The on-disk form of an [`Ask`]: the variant index is written. Change only with a format
    /// version bump.
    enum StoredAsk mirrors Ask { None, Out, In, Both }
}

impl Stored {
    fn from_item(item: &RosterItem) -> Stored {
        Stored {
            name: item.name.clone(),
            subscription: item.subscription.into(),
            ask: item.ask.into(),
            groups: item.groups.clone(),
            askmessage: item.askmessage.clone(),
        }
    }

    fn into_item(self, jid: BareJid) -> RosterItem {
        RosterItem {
            jid,
            name: self.name,
            subscription: self.subscription.into(),
            ask: self.ask.into(),
            groups: self.groups,
            askmessage: self.askmessage,
        }
    }
}

/// Handle on the `roster` keyspace; from [`Store::roster`].
pub struct Roster<'a> {
    store: &'a Store,
}

impl Store {
    /// Rosters.
    pub fn roster(&self) -> Roster<'_> {
        Roster { store: self }
    }
}

/// Increments the owner's roster version inside a transaction and returns the new one.
fn bump_version(tx: &Tx<'_>, key: &[u8]) -> crate::store::TxResult<u64> {
    let version = tx
        .get::<u64>(Keyspace::Roster, key)?
        .unwrap_or(0)
        .saturating_add(1);
    tx.put(Keyspace::Roster, key, &version)?;
    Ok(version)
}

/// The contact named by an item key.
fn contact_of(key: &[u8]) -> Result<BareJid> {
    let mut r = keys::KeyReader::new(Keyspace::Roster, key);
    r.part()?;
    r.byte()?;
    Ok(BareJid::from_stored(r.tail()?.to_owned()))
}

impl Roster<'_> {
    /// Adds or replaces the item for `item.jid` and returns the new roster version. The item
    /// and the version are written in one transaction.
    pub fn set(&self, owner: &BareJid, item: &RosterItem) -> Result<u64> {
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        let stored = Stored::from_item(item);
        let item_key = keys::owner_tag_and(owner, ITEM, item.jid.as_str());
        let version_key = keys::owner_tag(owner, VERSION);
        self.store.transaction(&[Keyspace::Roster], |tx| {
            tx.put(Keyspace::Roster, &item_key, &stored)?;
            bump_version(tx, &version_key)
        })
    }

    /// The item for `contact`.
    pub fn get(&self, owner: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>> {
        let key = keys::owner_tag_and(owner, ITEM, contact.as_str());
        Ok(self
            .store
            .get::<Stored>(Keyspace::Roster, &key)?
            .map(|s| s.into_item(contact.clone())))
    }

    /// Removes the item for `contact`, bumping the roster version; returns whether there was
    /// one (the version is left alone when there was not).
    pub fn remove(&self, owner: &BareJid, contact: &BareJid) -> Result<bool> {
        let _w = self.store.remover();
        let item_key = keys::owner_tag_and(owner, ITEM, contact.as_str());
        let version_key = keys::owner_tag(owner, VERSION);
        self.store.transaction(&[Keyspace::Roster], |tx| {
            if !tx.contains(Keyspace::Roster, &item_key)? {
                return Ok(false);
            }
            tx.remove(Keyspace::Roster, &item_key)?;
            bump_version(tx, &version_key)?;
            Ok(true)
        })
    }

    /// Every item of the owner's roster, in key order (by contact JID bytes).
    pub fn list(&self, owner: &BareJid) -> Result<Vec<RosterItem>> {
        self.store
            .scan::<Stored>(Keyspace::Roster, &keys::owner_tag(owner, ITEM))
            .map(|entry| {
                let (key, stored) = entry?;
                Ok(stored.into_item(contact_of(&key)?))
            })
            .collect()
    }

    /// Items with a pending inbound subscription request (`ask` is `In` or `Both`).
    pub fn pending_inbound(&self, owner: &BareJid) -> Result<Vec<RosterItem>> {
        let mut items = self.list(owner)?;
        items.retain(|i| matches!(i.ask, Ask::In | Ask::Both));
        Ok(items)
    }

    /// Sets the owner's roster version (imports keep the version clients have cached).
    pub fn set_version(&self, owner: &BareJid, version: u64) -> Result<()> {
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        self.store
            .put(Keyspace::Roster, &keys::owner_tag(owner, VERSION), &version)
    }

    /// The owner's roster version; 0 when the roster was never written.
    pub fn version(&self, owner: &BareJid) -> Result<u64> {
        Ok(self
            .store
            .get::<u64>(Keyspace::Roster, &keys::owner_tag(owner, VERSION))?
            .unwrap_or(0))
    }
}

/// Checks one stored entry: the key parses as this keyspace's layout and the value decodes
/// as its record type. Used by [`crate::verify()`].
pub(crate) fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
    let ks = Keyspace::Roster;
    let mut r = keys::KeyReader::new(ks, key);
    r.part()?;
    match r.byte()? {
        VERSION => {
            r.end()?;
            codec::decode::<u64>(ks, key, value).map(|_| ())
        }
        ITEM => {
            r.tail()?;
            codec::decode::<Stored>(ks, key, value).map(|_| ())
        }
        _ => Err(keys::corrupt(ks, key, "unknown roster key tag")),
    }
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "roster.csv",
    title: "Contacts",
    header: &[
        "jid",
        "name",
        "subscription",
        "ask",
        "groups",
        "askmessage",
        "xs",
        // The exact group list as a JSON array of strings: `groups` (MongooseIM's, joined
        // with ", ") cannot be split back when a name holds a comma.
        "groups_json",
    ],
}];

impl Extension for Class {
    fn verify_entry(&self, _ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        verify_entry(key, value)
    }

    fn name(&self) -> &'static str {
        "roster"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Roster]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(&self, store: &Store, subject: &BareJid, _table: usize, emit: Emit<'_>) -> Result<()> {
        for entry in store.scan::<Stored>(Keyspace::Roster, &keys::owner_tag(subject, ITEM)) {
            let (key, s) = entry?;
            emit(vec![
                contact_of(&key)?.to_string(),
                s.name.unwrap_or_default(),
                Subscription::from(s.subscription).as_str().to_owned(),
                Ask::from(s.ask).as_str().to_owned(),
                s.groups.join(", "),
                s.askmessage.unwrap_or_default(),
                String::new(),
                serde_json::Value::from(s.groups).to_string(),
            ])?;
        }
        Ok(())
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        plan.sweep_range(store, Keyspace::Roster, keys::owner(subject))
    }
    fn swept(&self, _: Keyspace, key: &[u8], _: &[u8], _: &BareJid, out: &mut Swept) -> Result<()> {
        let mut r = keys::KeyReader::new(Keyspace::Roster, key);
        r.part()?;
        if r.byte()? == ITEM {
            out.count("roster", 1);
        }
        Ok(())
    }
}
