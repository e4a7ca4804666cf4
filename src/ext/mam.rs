//! Message archives (XEP-0313): 1-1 archives per account, group-chat archives per room.

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[
    Table {
        file: "mam_pm.csv",
        header: &["id", "from", "message", "timestamp", "to", "direction"],
    },
    Table {
        file: "mam_muc.csv",
        header: &["id", "message", "room", "timestamp", "nick"],
    },
];

impl Extension for Class {
    fn name(&self) -> &'static str {
        "mam"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[
            Keyspace::MamPm,
            Keyspace::MamPmIds,
            Keyspace::MamMuc,
            Keyspace::MamMucIds,
            Keyspace::MamMucBySender,
        ]
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
