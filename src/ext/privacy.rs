//! Privacy lists (XEP-0016).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ext::stored_enum::stored_enum;
use crate::ext::{Emit, Extension, RemovalPlan, Swept, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::{Store, abort};

/// Tag of the default-list key inside an owner's range.
const DEFAULT: u8 = b'D';
/// Tag of list keys inside an owner's range.
const LIST: u8 = b'L';

/// What an item matches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivacyType {
    /// A JID (`value` is the JID).
    Jid,
    /// A roster group (`value` is the group name).
    Group,
    /// A subscription state (`value` is `none`, `to`, `from` or `both`).
    Subscription,
}

impl PrivacyType {
    /// The attribute value: `jid`, `group` or `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyType::Jid => "jid",
            PrivacyType::Group => "group",
            PrivacyType::Subscription => "subscription",
        }
    }
}

/// What happens to a stanza an item matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivacyAction {
    /// Let it through.
    Allow,
    /// Block it.
    Deny,
}

impl PrivacyAction {
    /// The attribute value: `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyAction::Allow => "allow",
            PrivacyAction::Deny => "deny",
        }
    }
}

/// One rule of a privacy list. When none of the four stanza flags is set the item applies
/// to every stanza kind, as an `<item/>` without children does in XEP-0016.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one flag per XEP-0016 stanza kind (message, iq, presence-in, presence-out)"
)]
pub struct PrivacyItem {
    /// Position in the list; unique within a list, lowest first.
    pub order: u32,
    /// What the item matches on; `None` for a fall-through item matching everything.
    pub kind: Option<PrivacyType>,
    /// The JID, group or subscription matched; present exactly when `kind` is.
    pub value: Option<String>,
    /// Allow or deny.
    pub action: PrivacyAction,
    /// Applies to messages.
    pub message: bool,
    /// Applies to IQ stanzas.
    pub iq: bool,
    /// Applies to inbound presence.
    pub presence_in: bool,
    /// Applies to outbound presence.
    pub presence_out: bool,
}

impl PrivacyItem {
    /// A fall-through item (no type, so it matches every sender) for every stanza kind (no
    /// kind flag set); set `kind`, `value` and the flags directly to narrow it.
    pub fn new(order: u32, action: PrivacyAction) -> PrivacyItem {
        PrivacyItem {
            order,
            kind: None,
            value: None,
            action,
            message: false,
            iq: false,
            presence_in: false,
            presence_out: false,
        }
    }

    /// The stanza kinds the item names, space-separated (empty: all kinds).
    fn matches(&self) -> String {
        [
            (self.message, "message"),
            (self.iq, "iq"),
            (self.presence_in, "presence-in"),
            (self.presence_out, "presence-out"),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect::<Vec<_>>()
        .join(" ")
    }
}

// The stored forms below are the on-disk layout of `privacy` values, pinned in
// `src/golden.rs`: field order and variant order change only with a format version bump.

/// A [`PrivacyItem`] as stored (a list's value is a sequence of these, sorted by order).
/// Change only with a format version bump.
#[derive(Serialize, Deserialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the layout of PrivacyItem: one flag per XEP-0016 stanza kind"
)]
struct StoredItem {
    order: u32,
    kind: Option<StoredType>,
    value: Option<String>,
    action: StoredAction,
    message: bool,
    iq: bool,
    presence_in: bool,
    presence_out: bool,
}

stored_enum! {
    /// The on-disk form of a [`PrivacyType`]: the variant index is written. Change only
    /// with a format version bump.
    enum StoredType mirrors PrivacyType { Jid, Group, Subscription }
}

stored_enum! {
    /// The on-disk form of a [`PrivacyAction`]: the variant index is written. Change only
    /// with a format version bump.
    enum StoredAction mirrors PrivacyAction { Allow, Deny }
}

impl From<PrivacyItem> for StoredItem {
    fn from(i: PrivacyItem) -> Self {
        StoredItem {
            order: i.order,
            kind: i.kind.map(Into::into),
            value: i.value,
            action: i.action.into(),
            message: i.message,
            iq: i.iq,
            presence_in: i.presence_in,
            presence_out: i.presence_out,
        }
    }
}

impl From<StoredItem> for PrivacyItem {
    fn from(i: StoredItem) -> Self {
        PrivacyItem {
            order: i.order,
            kind: i.kind.map(Into::into),
            value: i.value,
            action: i.action.into(),
            message: i.message,
            iq: i.iq,
            presence_in: i.presence_in,
            presence_out: i.presence_out,
        }
    }
}

/// A stored list's items, as public items.
fn from_stored(items: Vec<StoredItem>) -> Vec<PrivacyItem> {
    items.into_iter().map(PrivacyItem::from).collect()
}

#[derive(Serialize, Deserialize)]
struct StoredDefault {
    name: String,
}

/// The key of one list; the name must be non-empty and hold no NUL.
fn list_key(owner: &BareJid, name: &str) -> Result<Vec<u8>> {
    if name.is_empty() {
        return Err(Error::InvalidInput(
            "privacy list name must not be empty".into(),
        ));
    }
    Ok(keys::owner_tag_and(
        owner,
        LIST,
        keys::check_component("privacy list name", name)?,
    ))
}

/// The list name a list key names.
fn name_of(key: &[u8]) -> Result<String> {
    let mut r = keys::KeyReader::new(Keyspace::Privacy, key);
    r.part()?;
    r.byte()?;
    Ok(r.tail()?.to_owned())
}

/// Checks items against XEP-0016 and returns them sorted by order.
fn checked(items: &[PrivacyItem]) -> Result<Vec<PrivacyItem>> {
    let mut items = items.to_vec();
    items.sort_by_key(|i| i.order);
    if items
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.order == b.order))
    {
        return Err(Error::InvalidInput(
            "privacy list items must have unique orders".into(),
        ));
    }
    for item in &items {
        match (item.kind, item.value.as_deref()) {
            (None, None)
            | (Some(PrivacyType::Jid | PrivacyType::Group), Some(_))
            | (Some(PrivacyType::Subscription), Some("none" | "to" | "from" | "both")) => {}
            (Some(PrivacyType::Subscription), Some(v)) => {
                return Err(Error::InvalidInput(format!(
                    "privacy item {}: subscription value '{v}' is not none, to, from or both",
                    item.order
                )));
            }
            _ => {
                return Err(Error::InvalidInput(format!(
                    "privacy item {}: a type needs a value and a value needs a type",
                    item.order
                )));
            }
        }
    }
    Ok(items)
}

/// CSV rows a list gives: one per item, or one when it has none.
fn row_count(items: &[PrivacyItem]) -> u64 {
    (items.len() as u64).max(1)
}

/// Handle on the `privacy` keyspace; from [`Store::privacy`].
pub struct Privacy<'a> {
    store: &'a Store,
}

impl Store {
    /// Privacy lists.
    pub fn privacy(&self) -> Privacy<'_> {
        Privacy { store: self }
    }
}

impl Privacy<'_> {
    /// Creates or replaces the list `name`; items are stored sorted by order. Fails with
    /// [`Error::InvalidInput`] on duplicate orders or a type without a value (or the reverse).
    pub fn set_list(&self, owner: &BareJid, name: &str, items: &[PrivacyItem]) -> Result<()> {
        let key = list_key(owner, name)?;
        let items: Vec<StoredItem> = checked(items)?.into_iter().map(Into::into).collect();
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        self.store.put(Keyspace::Privacy, &key, &items)
    }

    /// The items of list `name`.
    pub fn get_list(&self, owner: &BareJid, name: &str) -> Result<Option<Vec<PrivacyItem>>> {
        Ok(self
            .store
            .get::<Vec<StoredItem>>(Keyspace::Privacy, &list_key(owner, name)?)?
            .map(from_stored))
    }

    /// The names of the owner's lists, sorted.
    pub fn list_names(&self, owner: &BareJid) -> Result<Vec<String>> {
        self.store
            .scan_keys(Keyspace::Privacy, &keys::owner_tag(owner, LIST))
            .map(|key| name_of(&key?))
            .collect()
    }

    /// Removes list `name`, and the default if it named that list; returns whether the list
    /// existed.
    pub fn remove_list(&self, owner: &BareJid, name: &str) -> Result<bool> {
        let key = list_key(owner, name)?;
        let default_key = keys::owner_tag(owner, DEFAULT);
        let _w = self.store.remover();
        self.store.transaction(&[Keyspace::Privacy], |tx| {
            if !tx.contains(Keyspace::Privacy, &key)? {
                return Ok(false);
            }
            tx.remove(Keyspace::Privacy, &key)?;
            let default = tx.get::<StoredDefault>(Keyspace::Privacy, &default_key)?;
            if default.is_some_and(|d| d.name == name) {
                tx.remove(Keyspace::Privacy, &default_key)?;
            }
            Ok(true)
        })
    }

    /// Makes list `name` the default (`None` clears it). The list must exist, else
    /// [`Error::NotFound`].
    pub fn set_default(&self, owner: &BareJid, name: Option<&str>) -> Result<()> {
        let list = name.map(|n| list_key(owner, n)).transpose()?;
        let default_key = keys::owner_tag(owner, DEFAULT);
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        self.store.transaction(&[Keyspace::Privacy], |tx| {
            match (name, &list) {
                (Some(name), Some(list)) => {
                    if !tx.contains(Keyspace::Privacy, list)? {
                        return abort(Error::NotFound(format!("privacy list '{name}' of {owner}")));
                    }
                    let d = StoredDefault {
                        name: name.to_owned(),
                    };
                    tx.put(Keyspace::Privacy, &default_key, &d)?;
                }
                _ => tx.remove(Keyspace::Privacy, &default_key)?,
            }
            Ok(())
        })
    }

    /// The name of the owner's default list.
    pub fn default_list(&self, owner: &BareJid) -> Result<Option<String>> {
        Ok(self
            .store
            .get::<StoredDefault>(Keyspace::Privacy, &keys::owner_tag(owner, DEFAULT))?
            .map(|d| d.name))
    }
}

/// Checks one stored entry: the key parses as this keyspace's layout and the value decodes
/// as its record type. Used by [`crate::verify()`].
pub(crate) fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
    let ks = Keyspace::Privacy;
    let mut r = keys::KeyReader::new(ks, key);
    r.part()?;
    match r.byte()? {
        DEFAULT => {
            r.end()?;
            crate::codec::decode::<StoredDefault>(ks, key, value).map(|_| ())
        }
        LIST => {
            r.tail()?;
            crate::codec::decode::<Vec<StoredItem>>(ks, key, value).map(|_| ())
        }
        _ => Err(keys::corrupt(ks, key, "unknown privacy key tag")),
    }
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "privacy.csv",
    title: "Privacy lists",
    header: &[
        "list",
        "is_default",
        "order",
        "type",
        "value",
        "action",
        "match",
    ],
}];

impl Extension for Class {
    fn verify_entry(&self, _ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        verify_entry(key, value)
    }

    fn name(&self) -> &'static str {
        "privacy"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Privacy]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(&self, store: &Store, subject: &BareJid, _table: usize, emit: Emit<'_>) -> Result<()> {
        let default = store.privacy().default_list(subject)?;
        let lists =
            store.scan::<Vec<StoredItem>>(Keyspace::Privacy, &keys::owner_tag(subject, LIST));
        for entry in lists {
            let (key, items) = entry?;
            let items = from_stored(items);
            let name = name_of(&key)?;
            let is_default = (default.as_deref() == Some(name.as_str())).to_string();
            if items.is_empty() {
                let mut row = vec![name, is_default];
                row.resize(7, String::new());
                emit(row)?;
                continue;
            }
            for item in items {
                emit(vec![
                    name.clone(),
                    is_default.clone(),
                    item.order.to_string(),
                    item.kind
                        .map(PrivacyType::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    item.value.clone().unwrap_or_default(),
                    item.action.as_str().to_owned(),
                    item.matches(),
                ])?;
            }
        }
        Ok(())
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        plan.sweep_range(store, Keyspace::Privacy, keys::owner(subject))
    }
    fn swept(
        &self,
        ks: Keyspace,
        key: &[u8],
        value: &[u8],
        _: &BareJid,
        out: &mut Swept,
    ) -> Result<()> {
        let mut r = keys::KeyReader::new(ks, key);
        r.part()?;
        if r.byte()? == LIST {
            let items: Vec<StoredItem> = crate::codec::decode(ks, key, value)?;
            out.count("privacy", row_count(&from_stored(items)));
        }
        Ok(())
    }
}
