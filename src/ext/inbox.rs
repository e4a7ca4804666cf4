//! Inbox (XEP-0430): one entry per conversation of the owner.

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "inbox.csv",
    header: &[
        "jid",
        "content",
        "unread_count",
        "timestamp",
        "box",
        "muted_until",
    ],
}];

impl Extension for Class {
    fn name(&self) -> &'static str {
        "inbox"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Inbox]
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
