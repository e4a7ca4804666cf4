//! What the store holds about a JID, per table, and what erasure would do with it, without
//! writing an export.

use super::Receipt;
use crate::error::{Error, Result};
use crate::ext::EXTENSIONS;
use crate::ext::accounts::AccountInfo;
use crate::jid::BareJid;
use crate::store::Store;

/// The answer of [`inspect`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Inspection {
    /// The JID looked at.
    pub subject: BareJid,
    /// Its account, if it has one (no salts or keys).
    pub account: Option<AccountInfo>,
    /// Rows held per table (CSV file stem), in export order: what
    /// [`super::retrieve()`] would write, every table listed.
    pub tables: Vec<(&'static str, u64)>,
    /// What erasing the subject would remove and keep: the receipt of
    /// [`super::dry_run()`].
    pub erasure: Receipt,
}

impl Inspection {
    /// Rows held over all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Counts what is held about `subject` in every table (the rows its export would hold, read
/// and counted, never written anywhere) and what erasing it would remove and keep (group-chat
/// messages, items on other users' nodes), with or without an account. Reads only. Fails
/// with [`Error::NoPersonalData`] when nothing is held.
pub fn inspect(store: &Store, subject: &BareJid) -> Result<Inspection> {
    let mut tables = Vec::new();
    for ext in EXTENSIONS {
        for (i, table) in ext.tables().iter().enumerate() {
            let mut rows = 0u64;
            ext.cells(store, subject, i, &mut |_| {
                rows += 1;
                Ok(())
            })?;
            tables.push((crate::ext::stem(table.file), rows));
        }
    }
    if tables.iter().all(|(_, n)| *n == 0) {
        return Err(Error::NoPersonalData(subject.to_string()));
    }
    Ok(Inspection {
        subject: subject.clone(),
        account: store.accounts().get(subject)?,
        tables,
        erasure: super::dry_run(store, subject)?,
    })
}
