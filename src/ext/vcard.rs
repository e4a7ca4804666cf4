//! vCards (XEP-0054): one `vcard-temp` XML document per owner.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::xml;

#[derive(Serialize, Deserialize)]
struct Stored {
    xml: String,
}

/// Handle on the `vcard` keyspace; from [`Store::vcard`].
pub struct Vcards<'a> {
    store: &'a Store,
}

impl Store {
    /// vCards.
    pub fn vcard(&self) -> Vcards<'_> {
        Vcards { store: self }
    }
}

impl Vcards<'_> {
    /// Sets the owner's vCard (well-formed XML; the owner must have an account).
    pub fn set(&self, owner: &BareJid, vcard_xml: &str) -> Result<()> {
        xml::check_element("vCard", vcard_xml)?;
        let _w = self.store.writer()?;
        self.store.require_account(owner)?;
        self.store.put(
            Keyspace::Vcard,
            &keys::owner(owner),
            &Stored {
                xml: vcard_xml.to_owned(),
            },
        )
    }

    /// The owner's vCard XML.
    pub fn get(&self, owner: &BareJid) -> Result<Option<String>> {
        Ok(self
            .store
            .get::<Stored>(Keyspace::Vcard, &keys::owner(owner))?
            .map(|s| s.xml))
    }

    /// Removes the owner's vCard; returns whether there was one.
    pub fn remove(&self, owner: &BareJid) -> Result<bool> {
        let _w = self.store.remover();
        Ok(self
            .store
            .tree(Keyspace::Vcard)
            .remove(keys::owner(owner))?
            .is_some())
    }
}

/// Checks one stored entry: the key parses as this keyspace's layout and the value decodes
/// as its record type. Used by [`crate::verify()`].
pub(crate) fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
    let mut r = keys::KeyReader::new(Keyspace::Vcard, key);
    r.part()?;
    r.end()?;
    crate::codec::decode::<Stored>(Keyspace::Vcard, key, value).map(|_| ())
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "vcard.csv",
    header: &["jid", "vcard"],
}];

impl Extension for Class {
    fn verify_entry(&self, _ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        verify_entry(key, value)
    }

    fn name(&self) -> &'static str {
        "vcard"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Vcard]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(&self, store: &Store, subject: &BareJid, _table: usize, emit: Emit<'_>) -> Result<()> {
        if let Some(xml) = store.vcard().get(subject)? {
            emit(vec![subject.to_string(), xml])?;
        }
        Ok(())
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        let key = keys::owner(subject);
        if store.tree(Keyspace::Vcard).contains_key(&key)? {
            plan.remove(Keyspace::Vcard, key);
            plan.count("vcard", 1);
        }
        Ok(())
    }
}
