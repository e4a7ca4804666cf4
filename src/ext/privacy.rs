//! Privacy lists (XEP-0016).

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "privacy.csv",
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
    fn name(&self) -> &'static str {
        "privacy"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Privacy]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(
        &self,
        _store: &Store,
        _subject: &BareJid,
        _table: usize,
        _emit: Emit<'_>,
    ) -> Result<()> {
        Ok(())
    }
    fn plan_removal(
        &self,
        _store: &Store,
        _subject: &BareJid,
        _plan: &mut RemovalPlan,
    ) -> Result<()> {
        Ok(())
    }
}
