//! Pseudonymisation of a subject's group-chat messages (`unregister --redact-kept`): each
//! message moves, with its by-sender and nick entries, from the subject's real JID and nick
//! to the pseudonym's, in one transaction per chunk (see [`crate::gdpr::Pseudonym`]).

use crate::backend::Bytes;
use crate::error::Result;
use crate::ext::Gone;
use crate::gdpr::{Pseudonym, REDACT_CHUNK, redact};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::{Store, abort};

use super::stored::{StoredMuc, corrupt, parse_sender_entry};

/// What the stanza text of a message by `nick` in `room` holds of the nick, and what each
/// becomes: the occupant JID `room/nick` and a `nick` attribute (XEP-0045 items), raw and
/// XML-escaped.
fn nick_forms(room: &str, nick: &str, to: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for form in redact::xml_forms(&format!("{room}/{nick}")) {
        out.push((form, format!("{room}/{to}")));
    }
    for form in redact::xml_forms(nick) {
        for q in ['\'', '"'] {
            out.push((format!("nick={q}{form}{q}"), format!("nick={q}{to}{q}")));
        }
    }
    out
}

/// Rewrites (or with `count_only` counts) every message `subject` sent in any room;
/// returns the number. No erasure sweeps room messages, so nothing is skipped.
pub(super) fn redact_messages(
    store: &Store,
    subject: &BareJid,
    p: &Pseudonym,
    count_only: Option<Gone<'_>>,
) -> Result<u64> {
    let prefix = keys::owner(subject);
    if count_only.is_some() {
        let mut n = 0;
        for key in store.scan_keys(Keyspace::MamMucBySender, &prefix) {
            key?;
            n += 1;
        }
        return Ok(n);
    }
    let mut total = 0;
    loop {
        // Writers that read a message before rewriting its index entries (a removal, a
        // trim) hold the erase lock for reading: none runs between this scan and the write.
        let _writers_out = store.eraser()?;
        // What is still under the JID: every chunk moves its entries out of this prefix.
        let chunk: Vec<Bytes> = store
            .scan_keys(Keyspace::MamMucBySender, &prefix)
            .take(REDACT_CHUNK)
            .collect::<Result<_>>()?;
        let Some(first) = chunk.first() else {
            return Ok(total);
        };
        let first = first.clone();
        let moved = store.transaction(
            &[
                Keyspace::MamMuc,
                Keyspace::MamMucBySender,
                Keyspace::MamMucNick,
            ],
            |tx| {
                let mut moved = 0u64;
                for key in &chunk {
                    // Removed since the scan (with its message): nothing to move.
                    if !tx.contains(Keyspace::MamMucBySender, key)? {
                        continue;
                    }
                    let (_, room, seq) =
                        parse_sender_entry(key).map_err(crate::backend::TxError::Abort)?;
                    let record = keys::room_seq(room, seq);
                    let Some(old) = tx.get::<StoredMuc>(Keyspace::MamMuc, &record)? else {
                        return abort(corrupt(
                            Keyspace::MamMucBySender,
                            key,
                            "index entry without message",
                        ));
                    };
                    let also = nick_forms(room, &old.nick, p.nick());
                    let stanza = redact::rewrite(&old.stanza, subject, p, &also).into_owned();
                    tx.remove(
                        Keyspace::MamMucNick,
                        &keys::room_nick_seq(room, &old.nick, seq),
                    )?;
                    tx.remove(Keyspace::MamMucBySender, key)?;
                    let new = StoredMuc {
                        sender: p.jid().as_str().to_owned(),
                        nick: p.nick().to_owned(),
                        stanza,
                        ..old
                    };
                    tx.put(Keyspace::MamMuc, &record, &new)?;
                    tx.mark(
                        Keyspace::MamMucBySender,
                        &keys::sender_room_seq(p.jid().as_str(), room, seq),
                    )?;
                    tx.mark(
                        Keyspace::MamMucNick,
                        &keys::room_nick_seq(room, p.nick(), seq),
                    )?;
                    moved += 1;
                }
                Ok(moved)
            },
        )?;
        if moved == 0 && store.contains(Keyspace::MamMucBySender, &first)? {
            // No progress on an entry still there: never loop on it.
            return Err(corrupt(
                Keyspace::MamMucBySender,
                &first,
                "index entry that cannot be pseudonymised",
            ));
        }
        total += moved;
        crate::progress::advance(moved);
    }
}
