//! Private XML storage (XEP-0049): one item per namespace.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ext::owner_keyed::{Held, OwnerKeyed, Shape};
use crate::ext::{Emit, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::xml;

#[derive(Serialize, Deserialize)]
struct Stored {
    xml: String,
}

/// Handle on the `private` keyspace; from [`Store::private`].
pub struct PrivateXml<'a> {
    store: &'a Store,
}

impl Store {
    /// Private XML storage.
    pub fn private(&self) -> PrivateXml<'_> {
        PrivateXml { store: self }
    }
}

/// The key of one namespace; the namespace must be non-empty and hold no NUL.
fn ns_key(owner: &BareJid, ns: &str) -> Result<Vec<u8>> {
    if ns.is_empty() {
        return Err(Error::InvalidInput("namespace must not be empty".into()));
    }
    Ok(keys::owner_and(
        owner,
        keys::check_component("namespace", ns)?,
    ))
}

/// The namespace named by a key.
fn ns_of(key: &[u8]) -> Result<String> {
    let mut r = keys::KeyReader::new(Keyspace::Private, key);
    r.part()?;
    Ok(r.tail()?.to_owned())
}

impl PrivateXml<'_> {
    /// Stores `xml` (one well-formed element) under namespace `ns`, replacing what was there.
    pub fn set(&self, owner: &BareJid, ns: &str, xml: &str) -> Result<()> {
        let key = ns_key(owner, ns)?;
        xml::check_element("private XML", xml)?;
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        self.store.put(
            Keyspace::Private,
            &key,
            &Stored {
                xml: xml.to_owned(),
            },
        )
    }

    /// The XML stored under `ns`.
    pub fn get(&self, owner: &BareJid, ns: &str) -> Result<Option<String>> {
        Ok(self
            .store
            .get::<Stored>(Keyspace::Private, &ns_key(owner, ns)?)?
            .map(|s| s.xml))
    }

    /// Every `(namespace, xml)` pair of the owner, by namespace.
    pub fn list(&self, owner: &BareJid) -> Result<Vec<(String, String)>> {
        self.store
            .scan::<Stored>(Keyspace::Private, &keys::owner(owner))
            .map(|entry| {
                let (key, s) = entry?;
                Ok((ns_of(&key)?, s.xml))
            })
            .collect()
    }

    /// Removes the XML under `ns`; returns whether there was any.
    pub fn remove(&self, owner: &BareJid, ns: &str) -> Result<bool> {
        let key = ns_key(owner, ns)?;
        let _w = self.store.remover();
        Ok(self.store.tree(Keyspace::Private).remove(key)?.is_some())
    }
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "private.csv",
    title: "Private storage (bookmarks and settings)",
    header: &["ns", "xml"],
}];

impl OwnerKeyed for Class {
    const SHAPE: Shape = Shape::new("private", Keyspace::Private, TABLES, Held::Range);
    fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
        if ns_of(key)?.is_empty() {
            return Err(keys::corrupt(Keyspace::Private, key, "empty namespace"));
        }
        crate::codec::decode::<Stored>(Keyspace::Private, key, value).map(|_| ())
    }
    fn rows(store: &Store, subject: &BareJid, emit: Emit<'_>) -> Result<()> {
        for entry in store.scan::<Stored>(Keyspace::Private, &keys::owner(subject)) {
            let (key, s) = entry?;
            emit(vec![ns_of(&key)?, s.xml])?;
        }
        Ok(())
    }
}
