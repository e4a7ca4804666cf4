//! vCards (XEP-0054): one `vcard-temp` XML document per owner.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ext::owner_keyed::{Held, OwnerKeyed, Shape, verify_one};
use crate::ext::{Emit, Table};
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

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "vcard.csv",
    title: "Profile (vCard)",
    header: &["jid", "vcard"],
}];

impl OwnerKeyed for Class {
    const SHAPE: Shape = Shape::new("vcard", Keyspace::Vcard, TABLES, Held::One);
    fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
        verify_one::<Stored>(Keyspace::Vcard, key, value)
    }
    fn rows(store: &Store, subject: &BareJid, emit: Emit<'_>) -> Result<()> {
        if let Some(xml) = store.vcard().get(subject)? {
            emit(vec![subject.to_string(), xml])?;
        }
        Ok(())
    }
}
