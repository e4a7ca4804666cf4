//! Pseudonymisation of the rows an erasure keeps (`unregister --redact-kept`): when an
//! objection to the kept data is upheld, the subject's group-chat messages and the items it
//! published on nodes that stay are rewritten under a stable pseudonym instead of its JID.
//!
//! The pseudonym is `erased-<h>@erased.invalid` (nick `erased-<h>`), where `<h>` is the first
//! 16 hex digits of HMAC-SHA-256, under the store's audit key ([`super::audit`]), of
//! `pseudonym\0` and the subject's bare JID: the same every time for one subject in one
//! store, unlinkable to the JID without the key, and distinct from the ledger's hash.
//!
//! Durability: the erasure's commit transaction (or, when there is nothing to remove, a
//! transaction of its own) writes a pending record in the `sweep` keyspace
//! (`0xFF redact \0 subject`, value the pseudonym). The rows are then rewritten in chunks of
//! [`REDACT_CHUNK`], each one transaction that moves a record and all its index entries to
//! the pseudonym, so every index agrees after every chunk; the record is deleted at the end.
//! Each chunk holds the store's erase lock for writing from its scan to its commit, so a
//! writer that reads a record before rewriting its index entries (a removal, a trim, a
//! node's deletion) never sees it half moved; writers wait for one chunk at most.
//! If the process dies in between, the next [`crate::Store`] open finishes it (after the
//! sweeps). Each chunk picks up what still is under the JID, so a rerun is idempotent.

use std::collections::BTreeMap;

use crate::codec;
use crate::error::Result;
use crate::ext::EXTENSIONS;
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;

/// Rows rewritten per transaction by the pseudonymisation: bounded memory and transaction
/// size (each row moves a record and two index entries).
pub const REDACT_CHUNK: usize = 500;

/// The reserved domain of pseudonyms (`.invalid`, RFC 2606: never a real domain).
pub const PSEUDONYM_DOMAIN: &str = "erased.invalid";

/// The stable pseudonym that stands for an erased subject in the rows kept about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pseudonym {
    jid: BareJid,
}

impl Pseudonym {
    /// `erased-<h>@erased.invalid` for the keyed hash `hex`.
    fn from_hash(hex: &str) -> Result<Pseudonym> {
        let token = hex.get(..16).unwrap_or(hex);
        Ok(Pseudonym {
            jid: BareJid::parse(&format!("erased-{token}@{PSEUDONYM_DOMAIN}"))?,
        })
    }

    /// The JID that replaces the subject's.
    pub fn jid(&self) -> &BareJid {
        &self.jid
    }

    /// The nick that replaces the subject's in rooms (the JID's localpart).
    pub fn nick(&self) -> &str {
        self.jid.node().unwrap_or_default()
    }
}

impl std::fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.jid.as_str())
    }
}

/// The pseudonym of `subject` in this store. With `create`, makes the store's key if it has
/// none; without, `Ok(None)` then (a dry run writes nothing).
pub fn pseudonym(store: &Store, subject: &BareJid, create: bool) -> Result<Option<Pseudonym>> {
    super::audit::tagged_hash(store, b"pseudonym\0", subject, create)?
        .map(|h| Pseudonym::from_hash(&h))
        .transpose()
}

/// The kept rows pseudonymised, or (dry run) that would be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pseudonymised {
    /// The pseudonym used; `None` only in a dry run on a store that has no key yet (the
    /// erasure creates it).
    pub pseudonym: Option<Pseudonym>,
    /// Rows rewritten per table (CSV file stem): `mam_muc`, `pubsub_items`.
    pub rows: BTreeMap<&'static str, u64>,
}

impl Pseudonymised {
    /// Total rows rewritten.
    pub fn total(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// The pending record's key and value (written in a commit transaction).
pub(crate) fn pending_entry(subject: &BareJid, p: &Pseudonym) -> (Vec<u8>, Vec<u8>) {
    (
        keys::sweep_redact(subject.as_str()),
        codec::encode(&p.jid.as_str()),
    )
}

/// Writes the pending record alone (an erasure with nothing to remove), durably.
pub(crate) fn queue(store: &Store, subject: &BareJid, p: &Pseudonym) -> Result<()> {
    let (k, v) = pending_entry(subject, p);
    store.recorded_transaction(&[Keyspace::Sweep], |tx| tx.put_raw(Keyspace::Sweep, &k, &v))
}

/// Pseudonymises every kept row of `subject` through the registry, then deletes the pending
/// record. Idempotent. Returns the rows rewritten per table.
pub(crate) fn run(
    store: &Store,
    subject: &BareJid,
    p: &Pseudonym,
) -> Result<BTreeMap<&'static str, u64>> {
    let _progress = crate::progress::Phase::start("pseudonymisation", "rows", None);
    let mut rows = BTreeMap::new();
    for ext in EXTENSIONS {
        for (class, n) in ext.redact_kept(store, subject, p, None)? {
            *rows.entry(class).or_default() += n;
        }
    }
    store
        .tree(Keyspace::Sweep)
        .remove(keys::sweep_redact(subject.as_str()))?;
    store.flush()?;
    Ok(rows)
}

/// Counts what [`run`] would rewrite, writing nothing; `gone` as in a dry run's
/// `count_kept`.
pub(crate) fn count(
    store: &Store,
    subject: &BareJid,
    gone: crate::ext::Gone<'_>,
) -> Result<BTreeMap<&'static str, u64>> {
    let mut rows = BTreeMap::new();
    for ext in EXTENSIONS {
        for (class, n) in ext.redact_kept(store, subject, &placeholder()?, Some(gone))? {
            *rows.entry(class).or_default() += n;
        }
    }
    Ok(rows)
}

/// A pseudonym for counting only.
fn placeholder() -> Result<Pseudonym> {
    Pseudonym::from_hash("0000000000000000")
}

/// Finishes every pending redaction (run on open, after the sweeps).
pub(crate) fn finish(store: &Store) -> Result<u64> {
    let mut pending = Vec::new();
    for entry in store.tree(Keyspace::Sweep).scan_prefix(keys::SWEEP_REDACT) {
        let (key, value) = entry?;
        if let keys::SweepKey::Redact(subject) = keys::read_sweep_key(&key)? {
            let jid: String = codec::decode(Keyspace::Sweep, &key, &value)?;
            pending.push((BareJid::from_stored(subject), BareJid::from_stored(jid)));
        }
    }
    let mut total = 0;
    for (subject, jid) in pending {
        total += run(store, &subject, &Pseudonym { jid })?
            .values()
            .sum::<u64>();
    }
    Ok(total)
}

/// `text` with every occurrence of the subject's bare JID (ASCII case-insensitive, with any
/// `/resource` after it) replaced by the pseudonym's JID, and every `(from, to)` of `also`
/// replaced (room occupant JIDs). Borrowed when nothing matched.
pub(crate) fn rewrite<'t>(
    text: &'t str,
    subject: &BareJid,
    p: &Pseudonym,
    also: &[(String, String)],
) -> std::borrow::Cow<'t, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for (from, to) in also {
        if out.contains(from.as_str()) {
            out = std::borrow::Cow::Owned(replace_whole(&out, from, to));
        }
    }
    let needle = subject.as_str().to_ascii_lowercase();
    let lower = out.to_ascii_lowercase();
    if needle.is_empty() || !lower.contains(&needle) {
        return out;
    }
    let mut s = String::with_capacity(out.len());
    let mut at = 0;
    while let Some(found) = lower.get(at..).and_then(|rest| rest.find(&needle)) {
        let start = at + found;
        let mut end = start + needle.len();
        if !bounded(lower.as_bytes(), start, end) {
            // Part of a longer JID (another person's): left as it is.
            s.push_str(out.get(at..end).unwrap_or_default());
            at = end;
            continue;
        }
        s.push_str(out.get(at..start).unwrap_or_default());
        s.push_str(p.jid.as_str());
        // A resource after the JID goes too: it is the subject's device name.
        if lower.as_bytes().get(end) == Some(&b'/') {
            end += 1;
            while let Some(b) = lower.as_bytes().get(end) {
                if matches!(b, b'\'' | b'"' | b'<' | b'>' | b'&') || b.is_ascii_whitespace() {
                    break;
                }
                end += 1;
            }
        }
        at = end;
    }
    s.push_str(out.get(at..).unwrap_or_default());
    std::borrow::Cow::Owned(s)
}

/// `text` with each occurrence of `from` that stands alone replaced by `to`: not preceded
/// by a JID character, and, unless `from` ends with its own quote, followed by the end of
/// an attribute value or text (a quote, `<`, `>`, white space, the end). So `room/Al` is
/// not found in `room/Alice`, nor `room@muc/Al` in `myroom@muc/Al`.
fn replace_whole(text: &str, from: &str, to: &str) -> String {
    let bytes = text.as_bytes();
    let quoted = from.ends_with(['\'', '"']);
    let mut s = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = text.get(at..).and_then(|rest| rest.find(from)) {
        let (start, end) = (at + found, at + found + from.len());
        let before = start
            .checked_sub(1)
            .and_then(|i| bytes.get(i))
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'));
        let after = !quoted
            && bytes.get(end).is_some_and(|b| {
                !matches!(b, b'\'' | b'"' | b'<' | b'>') && !b.is_ascii_whitespace()
            });
        s.push_str(text.get(at..start).unwrap_or_default());
        s.push_str(if before || after { from } else { to });
        at = end;
    }
    s.push_str(text.get(at..).unwrap_or_default());
    s
}

/// Whether `text[start..end]` stands alone: not inside a longer localpart or domain.
fn bounded(text: &[u8], start: usize, end: usize) -> bool {
    let before = start
        .checked_sub(1)
        .and_then(|i| text.get(i))
        .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'));
    let after = match text.get(end) {
        Some(b'.') => text.get(end + 1).is_some_and(u8::is_ascii_alphanumeric),
        Some(b) => b.is_ascii_alphanumeric() || *b == b'-',
        None => false,
    };
    !before && !after
}

/// The forms a string takes in XML text and attributes (raw, and escaped), for [`rewrite`].
pub(crate) fn xml_forms(s: &str) -> Vec<String> {
    let escaped = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;");
    let mut forms = vec![s.to_owned()];
    if escaped != s {
        forms.push(escaped);
    }
    forms
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rewrite_replaces_the_jid_any_case_with_its_resource() {
        let subject = BareJid::parse("alice@localhost").unwrap();
        let p = Pseudonym::from_hash("0123456789abcdef0123").unwrap();
        assert_eq!(p.jid().as_str(), "erased-0123456789abcdef@erased.invalid");
        assert_eq!(p.nick(), "erased-0123456789abcdef");
        let also = vec![(
            "room@muc/Al".to_owned(),
            "room@muc/erased-0123456789abcdef".to_owned(),
        )];
        let out = rewrite(
            "<message from='room@muc/Al'><x><item jid='Alice@LocalHost/phone'/></x>\
             <body>malice@localhost, alice@localhost.org and alice@localhost.</body></message>",
            &subject,
            &p,
            &also,
        );
        assert_eq!(
            out,
            "<message from='room@muc/erased-0123456789abcdef'><x><item \
             jid='erased-0123456789abcdef@erased.invalid'/></x><body>malice@localhost, \
             alice@localhost.org and erased-0123456789abcdef@erased.invalid.</body></message>"
        );
        assert!(matches!(
            rewrite("<m/>", &subject, &p, &also),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(xml_forms("a'b"), ["a'b", "a&apos;b"]);
        // Another occupant whose nick or room starts or ends the same is left alone.
        let out = rewrite(
            "<m from='room@muc/Al'><body>room@muc/Alice myroom@muc/Al room@muc/Al</body></m>",
            &subject,
            &p,
            &also,
        );
        assert_eq!(
            out,
            "<m from='room@muc/erased-0123456789abcdef'><body>room@muc/Alice myroom@muc/Al \
             room@muc/erased-0123456789abcdef</body></m>"
        );
        let nick = vec![("nick='Al'".to_owned(), "nick='x'".to_owned())];
        assert_eq!(
            rewrite("<i nick='Al'/>", &subject, &p, &nick),
            "<i nick='x'/>"
        );
    }
}
