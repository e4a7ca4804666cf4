//! The GDPR side of the archives: export tables, removal plan (the 1-1 archive is swept)
//! and the group-chat messages kept.

use crate::codec;
use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;

use super::id::{StoredIdRef, push_native_id};
use super::records;
use super::stored::StoredPmRef;
use super::types::Direction;

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[
    Table {
        file: "mam_pm.csv",
        title: "Messages",
        header: &["id", "from", "message", "timestamp", "to", "direction"],
    },
    Table {
        file: "mam_muc.csv",
        title: "Group-chat messages you sent",
        header: &["id", "message", "room", "timestamp", "nick"],
    },
];

impl Extension for Class {
    fn verify_entry(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        if ks == Keyspace::MamMucNick {
            super::indexes::verify_entry(ks, key, value)
        } else {
            super::verify::verify_entry(ks, key, value)
        }
    }

    fn repack(
        &self,
        ks: Keyspace,
        src: &Store,
        write: &mut dyn FnMut(crate::store::Batch, u64, u64) -> Result<()>,
    ) -> Option<Result<(u64, u64)>> {
        // 1-1 archives are repacked into blocks, however they were written.
        (ks == Keyspace::MamPm).then(|| super::blocks::repack(src, write))
    }

    fn sweep_archive(
        &self,
        store: &Store,
        id: u64,
        dry_run: bool,
    ) -> Option<Result<(&'static str, u64)>> {
        let n = if dry_run {
            super::sweep::count(store, id)
        } else {
            super::sweep::sweep(store, id)
        };
        Some(n.map(|n| ("mam_pm", n)))
    }

    fn links(&self) -> Option<Box<dyn crate::verify::Links>> {
        Some(Box::new(super::verify::Links::default()))
    }

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
            Keyspace::MamMucNick,
        ]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    /// The 1-1 table straight from the stored bytes (one reused id buffer, cells borrowed);
    /// the same rows as [`Extension::rows`] (a test compares them).
    fn cells(
        &self,
        store: &Store,
        subject: &BareJid,
        table: usize,
        emit: crate::ext::EmitCells<'_>,
    ) -> Result<()> {
        if table != 0 {
            return self.rows(store, subject, table, &mut |row| {
                crate::ext::emit_owned(emit, &row)
            });
        }
        let Some(archive) = store.mam().archive_of(subject)? else {
            return Ok(());
        };
        let ks = Keyspace::MamPm;
        let mut id = String::with_capacity(32);
        records::for_each_entry(store, ks, &keys::archive_records(archive), |k, v| {
            let e = codec::entries(ks, k, v, keys::trailing_seq(ks, k)?)?;
            for i in 0..e.len() {
                let (seq, m) = e.decode_borrowed::<StoredPmRef<'_>>(i)?;
                id.clear();
                match m.id {
                    StoredIdRef::Native(r) => push_native_id(&mut id, seq, r),
                    StoredIdRef::Foreign(f) => id.push_str(f),
                }
                let ts = Timestamp::from(m.timestamp).to_rfc3339();
                emit(&[
                    &id,
                    m.from,
                    m.stanza,
                    &ts,
                    m.to,
                    Direction::from(m.direction).as_str(),
                ])?;
            }
            Ok(true)
        })
    }

    fn rows(&self, store: &Store, subject: &BareJid, table: usize, emit: Emit<'_>) -> Result<()> {
        if table == 0 {
            for m in store.mam().iter(subject)? {
                let m = m?;
                emit(vec![
                    m.id,
                    m.from.into_string(),
                    m.stanza,
                    m.timestamp.to_rfc3339(),
                    m.to.into_string(),
                    m.direction.as_str().to_owned(),
                ])?;
            }
        } else {
            for m in store.muc().iter_by_sender(subject) {
                let m = m?;
                emit(vec![
                    m.id,
                    m.stanza,
                    m.room.to_string(),
                    m.timestamp.to_rfc3339(),
                    m.nick,
                ])?;
            }
        }
        Ok(())
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        // The sweep deletes the archive and counts its messages after the commit.
        if let Some(archive) = store.mam().archive_of(subject)? {
            plan.sweeps.push(archive);
        }
        // Counted after the sweep (`count_kept`): a scan of every message sent is no part
        // of the commit.
        let by_sender = keys::owner(subject);
        if store
            .scan_keys(Keyspace::MamMucBySender, &by_sender)
            .next()
            .transpose()?
            .is_some()
        {
            plan.keep("mam_muc", None, MUC_KEPT);
        }
        Ok(())
    }
    fn redact_kept(
        &self,
        store: &Store,
        subject: &BareJid,
        p: &crate::gdpr::Pseudonym,
        count_only: Option<crate::ext::Gone<'_>>,
    ) -> Result<Vec<(&'static str, u64)>> {
        let n = super::redact::redact_messages(store, subject, p, count_only)?;
        Ok(vec![("mam_muc", n)])
    }
    fn count_kept(
        &self,
        store: &Store,
        subject: &BareJid,
        _gone: crate::ext::Gone<'_>,
        kept: &mut Vec<crate::ext::Kept>,
    ) -> Result<()> {
        if let Some(k) = kept.iter_mut().find(|k| k.reason == MUC_KEPT) {
            let mut sent = 0u64;
            for key in store.scan_keys(Keyspace::MamMucBySender, &keys::owner(subject)) {
                key?;
                sent += 1;
            }
            k.rows = Some(sent);
        }
        Ok(())
    }
}

/// Why an erasure keeps the subject's group-chat messages.
const MUC_KEPT: &str = "group-chat history belongs to every participant";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ext::mam::{Direction, PmMessage};
    use crate::jid::Jid;
    use crate::time::Timestamp;

    /// The export's borrowed cells of the 1-1 table are exactly the owned rows: native and
    /// imported ids, blocks (bulk) and single records (live), a removal inside a block.
    #[test]
    fn cells_are_the_rows() {
        let store = Store::temporary().unwrap();
        let alice = BareJid::parse("alice@localhost").unwrap();
        store.accounts().create(&alice, "pw").unwrap();
        let msg = |i: i64| PmMessage {
            id: (i % 5 == 0).then(|| format!("imported-{i}")),
            timestamp: Timestamp::from_secs(1_700_000_000 + i),
            from: Jid::parse(if i % 2 == 0 {
                "bob@localhost/a"
            } else {
                "alice@localhost/b"
            })
            .unwrap(),
            to: Jid::parse(if i % 2 == 0 {
                "alice@localhost"
            } else {
                "bob@localhost"
            })
            .unwrap(),
            direction: if i % 2 == 0 {
                Direction::Incoming
            } else {
                Direction::Outgoing
            },
            origin_id: (i % 3 == 0).then(|| format!("o{i}")),
            stanza: format!("<message><body>\"{i}\", ok</body></message>"),
        };
        store.mam().append_bulk(&alice, (0..30).map(msg)).unwrap();
        for i in 30..35 {
            store.mam().append(&alice, &msg(i)).unwrap();
        }
        let third = store.mam().list(&alice).unwrap()[3].id.clone();
        assert!(store.mam().remove(&alice, &third).unwrap());
        let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
        Class
            .rows(&store, &alice, 0, &mut |row| {
                owned.push(row);
                Ok(())
            })
            .unwrap();
        Class
            .cells(&store, &alice, 0, &mut |cells| {
                borrowed.push(cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>());
                Ok(())
            })
            .unwrap();
        assert_eq!(owned.len(), 34);
        assert_eq!(owned, borrowed);
    }
}
