//! Rosters (RFC 6121): items, pending inbound subscription requests, roster version.

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "roster.csv",
    header: &[
        "jid",
        "name",
        "subscription",
        "ask",
        "groups",
        "askmessage",
        "xs",
    ],
}];

impl Extension for Class {
    fn name(&self) -> &'static str {
        "roster"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Roster]
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
