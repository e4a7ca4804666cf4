//! Blocking command (XEP-0191): blocked JIDs.

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "blocklist.csv",
    header: &["jid"],
}];

impl Extension for Class {
    fn name(&self) -> &'static str {
        "blocklist"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Blocklist]
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
