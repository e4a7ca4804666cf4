//! The group-chat (room) archive: [`super::MucArchive`].

use crate::backend::Bytes;

use crate::codec;
use crate::error::Result;
use crate::jid::BareJid;
use crate::keys::{self, KeyReader, Keyspace};
use crate::xml;

use super::MucArchive;
use super::archive::{Archive, Room, archive_time, insert, last_archive_time, resolve};
use super::id::{StoredId, check_foreign_id};
use super::query::{self, Metadata, Page, Query};
use super::stored::{StoredMuc, corrupt};
use super::types::{ArchivedMucMessage, MucMessage};

fn muc_message(room: BareJid, seq: u64, s: StoredMuc) -> ArchivedMucMessage {
    ArchivedMucMessage {
        id: s.id.public(seq),
        room,
        timestamp: s.timestamp.into(),
        sender: BareJid::from_stored(s.sender),
        nick: s.nick,
        stanza: s.stanza,
    }
}

/// Reads a by-sender index key back into (room, seq).
fn parse_sender_key(key: &[u8]) -> Result<(BareJid, u64)> {
    let mut r = KeyReader::new(Keyspace::MamMucBySender, key);
    r.part()?;
    let room = r.part()?.to_owned();
    let seq = r.u64()?;
    r.end()?;
    Ok((BareJid::from_stored(room), seq))
}

impl MucArchive<'_> {
    /// Appends a message to a room's archive (rooms need no account) and indexes it by the
    /// sender's real JID, in one transaction. Returns its id.
    pub fn append(&self, room: &BareJid, msg: &MucMessage) -> Result<String> {
        xml::check_element("stanza", &msg.stanza)?;
        if let Some(id) = &msg.id {
            check_foreign_id(id)?;
        }
        keys::check_component("nick", &msg.nick)?;
        let _w = self.store.writer()?;
        let a = Room(room);
        let mut tails = self.store.archive_appender();
        let seq = self.store.generate_id()?;
        let cached = tails.get(Keyspace::MamMuc, &a.records_prefix());
        let at = archive_time(last_archive_time(self.store, &a, cached)?, msg.timestamp);
        let id = StoredId::new(msg.id.as_ref());
        let stored = StoredMuc {
            id: id.clone(),
            timestamp: msg.timestamp.into(),
            at,
            sender: msg.sender.as_str().to_owned(),
            nick: msg.nick.clone(),
            stanza: msg.stanza.clone(),
        };
        let marker = codec::marker();
        let indexes = [
            (
                Keyspace::MamMucBySender,
                keys::sender_room_seq(msg.sender.as_str(), room.as_str(), seq),
                marker.clone(),
            ),
            (
                Keyspace::MamMucNick,
                keys::room_nick_seq(room.as_str(), &msg.nick, seq),
                marker,
            ),
        ];
        let public = insert(self.store, &a, &stored, &id, &indexes, seq)?;
        tails.set(Keyspace::MamMuc, a.records_prefix(), Some(at));
        Ok(public)
    }

    /// One page of a room's archive; see [`Query`] for the filters. `with` on a room: `room@service/nick` matches what that occupant nick
    /// sent; the bare room JID matches every message; another bare JID matches what that
    /// real JID sent (for moderators; the server decides who may ask); any other full JID
    /// matches nothing.
    pub fn query(&self, room: &BareJid, q: &Query) -> Result<Page<ArchivedMucMessage>> {
        query::run(self.store, &Room(room), q, |seq, s| {
            muc_message(room.clone(), seq, s)
        })
    }

    /// First and last message of a room's archive.
    pub fn metadata(&self, room: &BareJid) -> Result<Metadata> {
        query::metadata(self.store, &Room(room))
    }

    /// One message of a room by id.
    pub fn get(&self, room: &BareJid, id: &str) -> Result<Option<ArchivedMucMessage>> {
        Ok(resolve(self.store, &Room(room), id)?
            .map(|(seq, _, s)| muc_message(room.clone(), seq, s)))
    }

    /// A room's whole archive in archive order.
    pub fn list(&self, room: &BareJid) -> Result<Vec<ArchivedMucMessage>> {
        self.store
            .scan::<StoredMuc>(Keyspace::MamMuc, &keys::owner(room))
            .map(|entry| {
                let (k, s) = entry?;
                let mut r = KeyReader::new(Keyspace::MamMuc, &k);
                r.part()?;
                let seq = r.u64()?;
                r.end()?;
                Ok(muc_message(room.clone(), seq, s))
            })
            .collect()
    }

    /// Lazily, every group-chat message `sender` sent, by room then archive order.
    pub(super) fn iter_by_sender(
        &self,
        sender: &BareJid,
    ) -> impl Iterator<Item = Result<ArchivedMucMessage>> + use<'_> {
        self.store
            .scan_keys(Keyspace::MamMucBySender, &keys::owner(sender))
            .map(|key| {
                let key: Bytes = key?;
                let (room, seq) = parse_sender_key(&key)?;
                let s = self
                    .store
                    .get::<StoredMuc>(Keyspace::MamMuc, &keys::room_seq(room.as_str(), seq))?
                    .ok_or_else(|| {
                        corrupt(
                            Keyspace::MamMucBySender,
                            &key,
                            "index entry without message",
                        )
                    })?;
                Ok(muc_message(room, seq, s))
            })
    }

    /// Every group-chat message `sender` sent, in any room, by room then archive order.
    pub fn by_sender(&self, sender: &BareJid) -> Result<Vec<ArchivedMucMessage>> {
        self.iter_by_sender(sender).collect()
    }

    /// Removes one message of a room, with its index entries; returns whether it was there
    /// (an embedding server's archive expiry and deletions; erasure never removes these).
    pub fn remove(&self, room: &BareJid, id: &str) -> Result<bool> {
        let _w = self.store.remover();
        let a = Room(room);
        let Some((seq, foreign, stored)) = resolve(self.store, &a, id)? else {
            return Ok(false);
        };
        let mut tails = self.store.archive_appender();
        tails.forget(Keyspace::MamMuc, &a.records_prefix());
        let record = a.record_key(seq);
        let sender = keys::sender_room_seq(&stored.sender, room.as_str(), seq);
        let nick = keys::room_nick_seq(room.as_str(), &stored.nick, seq);
        let id_key = foreign.then(|| a.id_key(id));
        let spaces = [
            Keyspace::MamMuc,
            Keyspace::MamMucIds,
            Keyspace::MamMucBySender,
            Keyspace::MamMucNick,
        ];
        self.store.transaction(&spaces, |tx| {
            tx.remove(Keyspace::MamMuc, &record)?;
            tx.remove(Keyspace::MamMucBySender, &sender)?;
            tx.remove(Keyspace::MamMucNick, &nick)?;
            if let Some(k) = &id_key {
                tx.remove(Keyspace::MamMucIds, k)?;
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// Number of messages in a room's archive.
    pub fn count(&self, room: &BareJid) -> Result<u64> {
        let mut n = 0;
        for k in self.store.scan_keys(Keyspace::MamMuc, &keys::owner(room)) {
            k?;
            n += 1;
        }
        Ok(n)
    }
}
