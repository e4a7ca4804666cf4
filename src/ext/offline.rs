//! Offline messages: stored for delivery, popped on login, dropped when expired.

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "offline.csv",
    header: &["timestamp", "from", "to", "packet", "expires"],
}];

impl Extension for Class {
    fn name(&self) -> &'static str {
        "offline"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Offline]
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
