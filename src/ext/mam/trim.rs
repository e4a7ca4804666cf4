//! Deleting the oldest messages of one archive: retention expiry (by age, by count), a
//! user's own "delete my archive before T" and a room's history.
//!
//! **Always a prefix.** Archive time never decreases in seq order (module docs of
//! [`super`]), so "archived before T" is a prefix of the archive, and so is "all but the
//! newest N": a trim removes messages from the oldest on and stops at the first one it keeps.
//! It never leaves a hole, and a trim cut short by a crash has removed a shorter prefix.
//!
//! **Chunks.** At most [`TRIM_CHUNK`] messages per transaction (records, their `with` / nick
//! / by-sender index entries and imported-id mappings together), so a crash leaves whole
//! messages only, and appends and queries get the archive between chunks (the appenders'
//! lock is held for one chunk at a time).
//!
//! **Ids.** Seqs come from the store-wide generator and are never handed out again, so the
//! id of a trimmed message never names another one: an id field naming it answers
//! [`crate::Error::NotFound`] (XMPP's item-not-found), as after [`Mam::remove`].

use std::collections::BTreeMap;

use crate::codec;
use crate::error::Result;
use crate::jid::{BareJid, Jid};
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;

use super::archive::{Archive, Pm, Room};
use super::id::StoredId;
use super::records;
use super::stored::peer;
use super::{Mam, MucArchive};

/// Messages removed per transaction by a trim.
pub const TRIM_CHUNK: usize = 1_000;

/// Which of an archive's oldest messages a trim removes: those archived before a time, and
/// any more beyond the newest `keep_newest`. With neither set it removes nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trim {
    /// Remove messages whose archive time (the message's time or, if later, that of the
    /// message archived before it) is before this.
    pub before: Option<Timestamp>,
    /// Keep at most this many messages, the newest.
    pub keep_newest: Option<u64>,
}

impl Trim {
    /// Messages archived before `t`.
    pub fn before(t: Timestamp) -> Trim {
        Trim {
            before: Some(t),
            keep_newest: None,
        }
    }

    /// Everything but the newest `n` messages.
    pub fn keep_newest(n: u64) -> Trim {
        Trim {
            before: None,
            keep_newest: Some(n),
        }
    }

    /// The whole archive.
    pub fn all() -> Trim {
        Trim::keep_newest(0)
    }

    /// This trim, and also everything but the newest `n`.
    #[must_use]
    pub fn and_keep_newest(self, n: u64) -> Trim {
        Trim {
            keep_newest: Some(n),
            ..self
        }
    }

    fn is_noop(&self) -> bool {
        self.before.is_none() && self.keep_newest.is_none()
    }

    /// How many of the oldest messages go whatever their time: all beyond the newest
    /// `keep_newest` of `total`.
    fn by_count(&self, total: u64) -> u64 {
        self.keep_newest.map_or(0, |k| total.saturating_sub(k))
    }

    /// Whether the message at `position` (0 = oldest) with archive time `at` goes.
    fn selects(&self, position: u64, by_count: u64, at: i64) -> bool {
        position < by_count || self.before.is_some_and(|t| at < t.as_micros())
    }
}

impl Mam<'_> {
    /// Removes the oldest messages of the owner's archive that `trim` selects, in
    /// transactions of at most [`TRIM_CHUNK`] messages (see the module docs); returns how
    /// many were removed. Durable at the next flush, like [`Mam::remove`]. An archive that
    /// does not exist has nothing to trim.
    pub fn trim(&self, owner: &BareJid, trim: &Trim) -> Result<u64> {
        self.trim_or_count(owner, trim, false)
    }

    /// How many messages [`Mam::trim`] would remove now; writes nothing.
    pub fn count_trim(&self, owner: &BareJid, trim: &Trim) -> Result<u64> {
        self.trim_or_count(owner, trim, true)
    }

    fn trim_or_count(&self, owner: &BareJid, trim: &Trim, dry_run: bool) -> Result<u64> {
        if trim.is_noop() {
            return Ok(0);
        }
        let Some(archive) = self.archive_of(owner)? else {
            return Ok(0);
        };
        let by_count = match trim.keep_newest {
            Some(_) => trim.by_count(self.count(owner)?),
            None => 0,
        };
        let a = Pm(archive);
        trim_archive(self.store, &a, trim, by_count, dry_run, |edits, seq, s| {
            edits.remove_value(Keyspace::MamPm, &a.records_prefix(), seq)?;
            let with = Jid::from_stored(peer(s.direction, &s.from, &s.to));
            let with_prefix = keys::archive_with(archive, with.to_bare().as_str());
            edits.remove_value(Keyspace::MamPm, &with_prefix, seq)?;
            if let StoredId::Foreign(id) = &s.id {
                edits.remove_key(Keyspace::MamPmIds, a.id_key(id));
            }
            Ok(())
        })
    }
}

impl MucArchive<'_> {
    /// Removes the oldest messages of a room's archive that `trim` selects (with
    /// [`Trim::all`], the room's whole history), in transactions of at most [`TRIM_CHUNK`]
    /// messages with their index entries; returns how many were removed. Durable at the next
    /// flush, like [`MucArchive::remove`].
    pub fn trim(&self, room: &BareJid, trim: &Trim) -> Result<u64> {
        self.trim_or_count(room, trim, false)
    }

    /// How many messages [`MucArchive::trim`] would remove now; writes nothing.
    pub fn count_trim(&self, room: &BareJid, trim: &Trim) -> Result<u64> {
        self.trim_or_count(room, trim, true)
    }

    fn trim_or_count(&self, room: &BareJid, trim: &Trim, dry_run: bool) -> Result<u64> {
        if trim.is_noop() {
            return Ok(0);
        }
        let by_count = match trim.keep_newest {
            Some(_) => trim.by_count(self.count(room)?),
            None => 0,
        };
        let a = Room(room);
        trim_archive(self.store, &a, trim, by_count, dry_run, |edits, seq, s| {
            edits.remove_value(Keyspace::MamMuc, &a.records_prefix(), seq)?;
            let sender = keys::sender_room_seq(&s.sender, room.as_str(), seq);
            edits.remove_key(Keyspace::MamMucBySender, sender);
            edits.remove_key(
                Keyspace::MamMucNick,
                keys::room_nick_seq(room.as_str(), &s.nick, seq),
            );
            if let StoredId::Foreign(id) = &s.id {
                edits.remove_key(Keyspace::MamMucIds, a.id_key(id));
            }
            Ok(())
        })
    }

    /// Every room that has an archive, in JID order, read lazily (one seek per room).
    pub fn rooms(&self) -> impl Iterator<Item = Result<BareJid>> + '_ {
        let mut from: Option<Vec<u8>> = Some(Vec::new());
        std::iter::from_fn(move || {
            let start = from.take()?;
            let first = self.store.tree(Keyspace::MamMuc).range(start..).next();
            let (key, _) = match first? {
                Ok(kv) => kv,
                Err(e) => return Some(Err(e)),
            };
            let room = match keys::KeyReader::new(Keyspace::MamMuc, &key).part() {
                Ok(r) => r.to_owned(),
                Err(e) => return Some(Err(e)),
            };
            let jid = BareJid::from_stored(room);
            from = keys::prefix_end(&keys::owner(&jid));
            Some(Ok(jid))
        })
    }
}

/// The stored form and index layout of one archive kind, as a trim needs them.
trait Trimmed: Archive {
    /// The keyspaces one chunk's transaction writes.
    const SPACES: &'static [Keyspace];
}

impl Trimmed for Pm {
    const SPACES: &'static [Keyspace] = &[Keyspace::MamPm, Keyspace::MamPmIds];
}

impl Trimmed for Room<'_> {
    const SPACES: &'static [Keyspace] = &[
        Keyspace::MamMuc,
        Keyspace::MamMucIds,
        Keyspace::MamMucBySender,
        Keyspace::MamMucNick,
    ];
}

/// The writes of one chunk: entries rewritten without some of their values (blocks) or
/// removed, and keys removed.
struct Edits<'s> {
    store: &'s Store,
    /// (keyspace, key) -> what is left of the entry, `None` when nothing.
    entries: BTreeMap<(Keyspace, Vec<u8>), Option<Vec<u8>>>,
}

impl Edits<'_> {
    /// Removes the value numbered `seq` under `prefix` from the entry holding it, alone or
    /// in a block (an entry already edited in this chunk is edited again); nothing when no
    /// entry holds it.
    fn remove_value(&mut self, ks: Keyspace, prefix: &[u8], seq: u64) -> Result<()> {
        // Keys never change within a chunk (only values), so the tree still finds the key.
        let Some((k, v)) = records::entry_at_or_before(self.store.tree(ks), prefix, seq)? else {
            return Ok(());
        };
        let key = (ks, k.to_vec());
        let current = match self.entries.get(&key) {
            Some(Some(edited)) => edited.clone(),
            Some(None) => return Ok(()),
            None => v.to_vec(),
        };
        let rest = {
            let e = codec::entries(ks, &key.1, &current, keys::trailing_seq(ks, &key.1)?)?;
            if e.position(seq).is_none() {
                return Ok(());
            }
            e.without(seq)
        };
        self.entries.insert(key, rest);
        Ok(())
    }

    fn remove_key(&mut self, ks: Keyspace, key: Vec<u8>) {
        self.entries.insert((ks, key), None);
    }
}

/// Walks the archive from its oldest message and removes what `trim` selects, at most
/// [`TRIM_CHUNK`] messages per transaction, until a message is kept or the archive ends;
/// with `dry_run`, only counts. `plan` adds one message's writes to its chunk.
fn trim_archive<A: Trimmed>(
    store: &Store,
    a: &A,
    trim: &Trim,
    by_count: u64,
    dry_run: bool,
    plan: impl Fn(&mut Edits<'_>, u64, &A::Stored) -> Result<()>,
) -> Result<u64> {
    let prefix = a.records_prefix();
    if dry_run {
        let mut n = 0u64;
        walk::<A>(store, &prefix, |_, s| {
            let go = trim.selects(n, by_count, A::archive_time(s));
            n += u64::from(go);
            Ok(go)
        })?;
        return Ok(n);
    }
    let mut removed = 0u64;
    loop {
        // Held for one chunk: appends wait for it (the newest archive time may change).
        let _w = store.remover();
        let mut tails = store.archive_appender();
        let (mut edits, mut picked, mut kept) = (
            Edits {
                store,
                entries: BTreeMap::new(),
            },
            0usize,
            false,
        );
        // The chunks before this one are gone, so the walk starts at the next candidate.
        walk::<A>(store, &prefix, |seq, s| {
            if !trim.selects(removed + picked as u64, by_count, A::archive_time(s)) {
                kept = true;
                return Ok(false);
            }
            plan(&mut edits, seq, s)?;
            picked += 1;
            Ok(picked < TRIM_CHUNK)
        })?;
        if picked == 0 {
            return Ok(removed);
        }
        tails.forget(A::RECORDS, &prefix);
        store.transaction(A::SPACES, |tx| {
            for ((ks, k), rest) in &edits.entries {
                match rest {
                    Some(v) => tx.put_raw(*ks, k, v)?,
                    None => tx.remove(*ks, k)?,
                }
            }
            Ok(())
        })?;
        removed += picked as u64;
        if kept || picked < TRIM_CHUNK {
            return Ok(removed);
        }
    }
}

/// Calls `f` with the archive's messages in seq order (records alone or in blocks, read as
/// a long scan) until it returns `false`.
fn walk<A: Archive>(
    store: &Store,
    prefix: &[u8],
    mut f: impl FnMut(u64, &A::Stored) -> Result<bool>,
) -> Result<()> {
    let ks = A::RECORDS;
    records::for_each_entry(store, ks, prefix, |k, v| {
        let e = codec::entries(ks, k, v, keys::trailing_seq(ks, k)?)?;
        for i in 0..e.len() {
            let (seq, s) = e.decode::<A::Stored>(i)?;
            if !f(seq, &s)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
}
