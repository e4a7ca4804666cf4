//! Every key layout on disk: keyspace names, owner prefixes, big-endian integers.
//!
//! No other module slices stored keys or writes separators. A string component is followed
//! by `0x00`, which cannot occur in a JID, a node id or XML, so the prefix for `al@x` never
//! matches `al@x.org`. Integers are big-endian so that byte order is numeric order. The last
//! component of a key may be a bare string (no terminator).
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `meta` | `magic` / `format` | store identity and format version |
//! | `accounts` | owner `\0` | account (SCRAM verifiers, archive id) |
//! | `roster` | owner `\0` `V` / owner `\0` `I` contact | roster version / item |
//! | `vcard` | owner `\0` | vCard XML |
//! | `private` | owner `\0` namespace | private XML |
//! | `offline` | owner `\0` seq:u64 | offline message |
//! | `inbox` | owner `\0` remote | inbox entry |
//! | `mam_pm` | archive:u64 `m` seq:u64 | archived 1-1 message, with its archive time, or a block of consecutive ones keyed by the first |
//! | `mam_pm` | archive:u64 `w` with-bare `\0` seq:u64 | `with` index entry: with (full JID), or a block of them for one peer |
//! | `mam_pm_ids` | archive:u64 foreign-id | seq (imported ids only) |
//! | `mam_muc` | room `\0` seq:u64 | archived group-chat message, with its archive time |
//! | `mam_muc_ids` | room `\0` foreign-id | seq (imported ids only) |
//! | `mam_muc_by_sender` | sender `\0` room `\0` seq:u64 | index marker |
//! | `mam_muc_nick` | room `\0` nick `\0` seq:u64 | index marker |
//! | `pubsub_nodes` | service `\0` node | node |
//! | `pubsub_nodes_by_owner` | owner `\0` service `\0` node | index marker |
//! | `pubsub_items` | service `\0` node `\0` item | item |
//! | `pubsub_items_by_publisher` | publisher `\0` service `\0` node `\0` item | index marker |
//! | `pubsub_subs` | service `\0` node `\0` subscriber | subscription |
//! | `pubsub_subs_by_subscriber` | subscriber `\0` service `\0` node | index marker |
//! | `pubsub_affs` | service `\0` node `\0` jid | affiliation |
//! | `pubsub_affs_by_jid` | jid `\0` service `\0` node | index marker |
//! | `last` | owner `\0` | last activity |
//! | `privacy` | owner `\0` `D` / owner `\0` `L` list | default list name / list |
//! | `blocklist` | owner `\0` blocked | marker |
//! | `sweep` | archive:u64 | marker: archive left to delete after an erasure |
//! | `sweep` | `0xFF` `range` `\0` keyspace-name `\0` prefix | erased subject: a range left to delete after an erasure (a tombstone) |
//! | `sweep` | `0xFF` `redact` `\0` subject | pseudonym: the subject's kept rows left to pseudonymise after an erasure (`unregister --redact-kept`) |
//!
//! Archive time is kept in the message record, not in a key: it never decreases in seq order
//! within an archive, so a time bound is found by binary search over the records. The
//! `with` entries of `mam_pm`, `mam_muc_nick` and `mam_muc_by_sender` keys all end in the
//! seq, so a seq range inside one index prefix is one contiguous key range. A 1-1 archive's
//! records (tag `m`) and its `with` index (tag `w`) share one tree and the archive prefix, so
//! that a live append is one atomic batch of two new keys in one tree and a sweep is one key
//! range.

use crate::error::{Error, Result};
use crate::jid::BareJid;

/// Magic bytes stored in `meta` under [`META_MAGIC`].
pub const MAGIC: &[u8] = b"jidstore";
/// Key of the magic bytes in `meta`.
pub const META_MAGIC: &[u8] = b"magic";
/// Key of the format version in `meta`.
pub const META_FORMAT: &[u8] = b"format";
/// Key of the newest flush generation in `meta` (see `src/witness.rs`).
pub const META_FLUSHED: &[u8] = b"flushed";
/// Key in `meta` of a store that `jidstore migrate` is still writing (value: empty). Written
/// with the magic bytes, deleted last, once the copy is verified; a store that holds it is
/// refused at open (see `src/migrate.rs`).
pub const META_MIGRATING: &[u8] = b"migrating";
/// The on-disk format this build writes. Format 2 added blocks of archive records (see
/// `src/codec.rs`); a format 1 store holds none and is marked 2 when opened.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this build opens (and upgrades by rewriting the version alone).
pub const OLDEST_FORMAT: u32 = 1;

const SEP: u8 = 0;

macro_rules! keyspaces {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A sled tree. Every tree the store opens is one of these.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Keyspace {
            $($(#[$doc])* $variant,)*
        }

        impl Keyspace {
            /// All keyspaces, in the order the store opens them.
            pub const ALL: &'static [Keyspace] = &[$(Keyspace::$variant,)*];

            /// The sled tree name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Keyspace::$variant => $name,)*
                }
            }
        }
    };
}

keyspaces! {
    /// Store identity and format version.
    Meta => "meta",
    /// Accounts and their SCRAM verifiers.
    Accounts => "accounts",
    /// Roster items and roster versions.
    Roster => "roster",
    /// vCards.
    Vcard => "vcard",
    /// XEP-0049 private XML.
    Private => "private",
    /// Offline messages.
    Offline => "offline",
    /// Inbox entries.
    Inbox => "inbox",
    /// 1-1 message archives, keyed by archive id.
    MamPm => "mam_pm",
    /// Imported (foreign) message ids of 1-1 archives.
    MamPmIds => "mam_pm_ids",
    /// Group-chat archives, keyed by room.
    MamMuc => "mam_muc",
    /// Imported (foreign) message ids of room archives.
    MamMucIds => "mam_muc_ids",
    /// Group-chat messages by sender's real bare JID.
    MamMucBySender => "mam_muc_by_sender",
    /// Group-chat messages by occupant nick (MAM `with` on a room).
    MamMucNick => "mam_muc_nick",
    /// Pubsub nodes.
    PubsubNodes => "pubsub_nodes",
    /// Pubsub nodes by owner.
    PubsubNodesByOwner => "pubsub_nodes_by_owner",
    /// Pubsub items.
    PubsubItems => "pubsub_items",
    /// Pubsub items by publisher.
    PubsubItemsByPublisher => "pubsub_items_by_publisher",
    /// Pubsub subscriptions.
    PubsubSubs => "pubsub_subs",
    /// Pubsub subscriptions by subscriber.
    PubsubSubsBySubscriber => "pubsub_subs_by_subscriber",
    /// Pubsub affiliations.
    PubsubAffs => "pubsub_affs",
    /// Pubsub affiliations by affiliated JID.
    PubsubAffsByJid => "pubsub_affs_by_jid",
    /// Last activity.
    Last => "last",
    /// XEP-0016 privacy lists.
    Privacy => "privacy",
    /// XEP-0191 blocklist.
    Blocklist => "blocklist",
    /// Generic per-owner key-value records (a server's stores with no class of their own).
    GenericKv => "generic_kv",
    /// Generic per-owner archives (a server's archive stores with no class of their own).
    GenericArchive => "generic_archive",
    /// Archives whose records are left to delete after an erasure committed.
    Sweep => "sweep",
    /// The audit log (no personal data: subjects as keyed hashes) and its hash key.
    Audit => "audit",
}

impl Keyspace {
    /// Position in [`Keyspace::ALL`], used to index the store's tree array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The keyspace named `name`.
    pub fn from_name(name: &str) -> Option<Keyspace> {
        Keyspace::ALL.iter().copied().find(|ks| ks.name() == name)
    }
}

/// Renders a key for error messages: printable ASCII as is, other bytes as `\xNN`.
pub fn escape_key(key: &[u8]) -> String {
    key.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

/// The error for a stored entry whose key or value is wrong in `keyspace`.
pub fn corrupt(keyspace: Keyspace, key: &[u8], reason: &'static str) -> Error {
    Error::Corrupt {
        keyspace: keyspace.name(),
        key: escape_key(key),
        reason,
    }
}

/// Checks that a string used as a key component holds no separator byte.
pub fn check_component<'a>(what: &str, s: &'a str) -> Result<&'a str> {
    if s.as_bytes().contains(&SEP) {
        return Err(Error::InvalidInput(format!("{what} must not contain NUL")));
    }
    Ok(s)
}

/// Builds a key from components. Private: callers use the named layouts below.
#[derive(Default)]
struct KeyBuf(Vec<u8>);

impl KeyBuf {
    fn with(cap: usize) -> Self {
        KeyBuf(Vec::with_capacity(cap))
    }
    /// A string followed by the separator.
    fn part(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(SEP);
        self
    }
    /// A trailing string, no separator.
    fn tail(mut self, s: &str) -> Self {
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn byte(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }
    fn u64(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

/// Reads components back out of a stored key; every failure is `Corrupt`.
pub struct KeyReader<'a> {
    keyspace: Keyspace,
    key: &'a [u8],
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// Starts reading `key` from `keyspace`.
    pub fn new(keyspace: Keyspace, key: &'a [u8]) -> Self {
        KeyReader {
            keyspace,
            key,
            rest: key,
        }
    }

    fn corrupt(&self, reason: &'static str) -> Error {
        corrupt(self.keyspace, self.key, reason)
    }

    fn utf8(&self, b: &'a [u8]) -> Result<&'a str> {
        std::str::from_utf8(b).map_err(|_| self.corrupt("key is not UTF-8"))
    }

    /// A separator-terminated string.
    pub fn part(&mut self) -> Result<&'a str> {
        let pos = self
            .rest
            .iter()
            .position(|b| *b == SEP)
            .ok_or_else(|| self.corrupt("missing key separator"))?;
        let (s, rest) = self.rest.split_at(pos);
        self.rest = rest.get(1..).unwrap_or_default();
        self.utf8(s)
    }

    /// The remaining bytes as a string.
    pub fn tail(&mut self) -> Result<&'a str> {
        let s = self.utf8(self.rest)?;
        self.rest = &[];
        Ok(s)
    }

    /// One tag byte.
    pub fn byte(&mut self) -> Result<u8> {
        let (b, rest) = self
            .rest
            .split_first()
            .ok_or_else(|| self.corrupt("key too short"))?;
        self.rest = rest;
        Ok(*b)
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> Result<u64> {
        if self.rest.len() < 8 {
            return Err(self.corrupt("key too short"));
        }
        let (n, rest) = self.rest.split_at(8);
        self.rest = rest;
        Ok(u64::from_be_bytes(
            n.try_into().map_err(|_| self.corrupt("key too short"))?,
        ))
    }

    /// Fails unless the whole key was consumed.
    pub fn end(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("unexpected trailing key bytes"))
        }
    }
}

/// `owner \0`: the prefix of everything an owner-keyed keyspace holds about `owner`, and the
/// whole key of single-record classes (accounts, vcard, last).
pub fn owner(owner: &BareJid) -> Vec<u8> {
    KeyBuf::with(owner.as_str().len() + 1)
        .part(owner.as_str())
        .done()
}

/// `owner \0 name`: records keyed by owner and a string (private ns, inbox remote, blocklist).
pub fn owner_and(owner: &BareJid, name: &str) -> Vec<u8> {
    KeyBuf::default().part(owner.as_str()).tail(name).done()
}

/// `owner \0 tag`: the prefix of one record kind inside an owner's range.
pub fn owner_tag(owner: &BareJid, tag: u8) -> Vec<u8> {
    KeyBuf::default().part(owner.as_str()).byte(tag).done()
}

/// `owner \0 tag name`: a tagged record inside an owner's range (roster item, privacy list).
pub fn owner_tag_and(owner: &BareJid, tag: u8, name: &str) -> Vec<u8> {
    KeyBuf::default()
        .part(owner.as_str())
        .byte(tag)
        .tail(name)
        .done()
}

/// `owner \0 seq`: sequenced records of an owner (offline messages).
pub fn owner_seq(owner: &BareJid, seq: u64) -> Vec<u8> {
    KeyBuf::default().part(owner.as_str()).u64(seq).done()
}

/// `owner \0 name \0`: the prefix of one named sequence of an owner (generic archives).
pub fn owner_part(owner: &BareJid, name: &str) -> Vec<u8> {
    KeyBuf::default().part(owner.as_str()).part(name).done()
}

/// `owner \0 name \0 seq`: one record of a named sequence of an owner (generic archives).
pub fn owner_part_seq(owner: &BareJid, name: &str, seq: u64) -> Vec<u8> {
    KeyBuf::default()
        .part(owner.as_str())
        .part(name)
        .u64(seq)
        .done()
}

/// `archive`: the prefix of a 1-1 archive.
pub fn archive(archive: u64) -> Vec<u8> {
    KeyBuf::with(8).u64(archive).done()
}

/// The start of a range tombstone's key in `sweep`. An archive marker's key is its 8-byte id;
/// a tombstone's key is longer than 8 bytes (this, then a keyspace name and a separator).
pub const SWEEP_RANGE: &[u8] = b"\xFFrange\0";

/// `0xFF range \0 keyspace \0 prefix`: the `sweep` key of a range tombstone.
pub fn sweep_range(ks: Keyspace, prefix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(SWEEP_RANGE.len() + ks.name().len() + prefix.len() + 1);
    k.extend_from_slice(SWEEP_RANGE);
    k = KeyBuf(k).part(ks.name()).done();
    k.extend_from_slice(prefix);
    k
}

/// The start of a pending redaction's key in `sweep` (8 bytes, so the whole key is longer
/// than an archive marker's).
pub const SWEEP_REDACT: &[u8] = b"\xFFredact\0";

/// `0xFF redact \0 subject`: the `sweep` key of a pending redaction of `subject`'s kept rows.
pub fn sweep_redact(subject: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(SWEEP_REDACT.len() + subject.len());
    k.extend_from_slice(SWEEP_REDACT);
    k.extend_from_slice(subject.as_bytes());
    k
}

/// A key of the `sweep` keyspace, read back.
#[derive(Debug, PartialEq, Eq)]
pub enum SweepKey {
    /// A 1-1 archive left to delete.
    Archive(u64),
    /// A range of a keyspace left to delete.
    Range(Keyspace, Vec<u8>),
    /// A subject whose kept rows are left to pseudonymise.
    Redact(String),
}

/// Reads a `sweep` key ([`archive`] or [`sweep_range`]).
pub fn read_sweep_key(key: &[u8]) -> Result<SweepKey> {
    let mut r = KeyReader::new(Keyspace::Sweep, key);
    if key.len() != 8 {
        if let Some(subject) = key.strip_prefix(SWEEP_REDACT) {
            return match std::str::from_utf8(subject) {
                Ok(s) if !s.is_empty() && !s.contains('\0') => Ok(SweepKey::Redact(s.to_owned())),
                _ => Err(corrupt(Keyspace::Sweep, key, "a redaction of no subject")),
            };
        }
        let Some(rest) = key.strip_prefix(SWEEP_RANGE) else {
            return Err(corrupt(
                Keyspace::Sweep,
                key,
                "neither an archive nor a range",
            ));
        };
        r.rest = rest;
        let ks = Keyspace::from_name(r.part()?)
            .ok_or_else(|| corrupt(Keyspace::Sweep, key, "unknown keyspace in a tombstone"))?;
        return Ok(SweepKey::Range(ks, r.rest.to_vec()));
    }
    let archive = r.u64()?;
    r.end()?;
    Ok(SweepKey::Archive(archive))
}

/// Tag of a message record in `mam_pm`, after the archive id.
pub const PM_RECORD: u8 = b'm';
/// Tag of a `with` index entry in `mam_pm`, after the archive id.
pub const PM_WITH: u8 = b'w';

/// `archive m`: the prefix of the message records of a 1-1 archive.
pub fn archive_records(archive: u64) -> Vec<u8> {
    KeyBuf::with(9).u64(archive).byte(PM_RECORD).done()
}

/// `archive m seq`: one message of a 1-1 archive.
pub fn archive_seq(archive: u64, seq: u64) -> Vec<u8> {
    KeyBuf::with(17)
        .u64(archive)
        .byte(PM_RECORD)
        .u64(seq)
        .done()
}

/// `archive foreign-id`: an imported message id of a 1-1 archive.
pub fn archive_foreign_id(archive: u64, id: &str) -> Vec<u8> {
    KeyBuf::with(8 + id.len()).u64(archive).tail(id).done()
}

/// `a \0 b \0`: prefix of a two-part range (service+node, sender+room).
pub fn pair(a: &str, b: &str) -> Vec<u8> {
    KeyBuf::default().part(a).part(b).done()
}

/// `a \0 b`: a two-part key whose last part is a bare string (service+node).
pub fn pair_tail(a: &str, b: &str) -> Vec<u8> {
    KeyBuf::default().part(a).tail(b).done()
}

/// `a \0 b \0 c`: a three-part key (service+node+item, owner+service+node).
pub fn triple_tail(a: &str, b: &str, c: &str) -> Vec<u8> {
    KeyBuf::default().part(a).part(b).tail(c).done()
}

/// `a \0 b \0 c \0 d`: a four-part key (publisher+service+node+item).
pub fn quad_tail(a: &str, b: &str, c: &str, d: &str) -> Vec<u8> {
    KeyBuf::default().part(a).part(b).part(c).tail(d).done()
}

/// `room \0 seq`: one group-chat message.
pub fn room_seq(room: &str, seq: u64) -> Vec<u8> {
    KeyBuf::default().part(room).u64(seq).done()
}

/// `sender \0 room \0 seq`: a group-chat by-sender index entry.
pub fn sender_room_seq(sender: &str, room: &str, seq: u64) -> Vec<u8> {
    KeyBuf::default().part(sender).part(room).u64(seq).done()
}

/// `archive w with \0`: the prefix of one `with` (bare JID) inside a 1-1 archive's index.
pub fn archive_with(archive: u64, with: &str) -> Vec<u8> {
    KeyBuf::with(10 + with.len())
        .u64(archive)
        .byte(PM_WITH)
        .part(with)
        .done()
}

/// `archive w with \0 seq`: one `with` entry of a 1-1 archive (in `mam_pm`).
pub fn archive_with_seq(archive: u64, with: &str, seq: u64) -> Vec<u8> {
    KeyBuf::with(18 + with.len())
        .u64(archive)
        .byte(PM_WITH)
        .part(with)
        .u64(seq)
        .done()
}

/// `room \0 nick \0`: the prefix of one occupant nick inside a room's nick index.
pub fn room_nick(room: &str, nick: &str) -> Vec<u8> {
    KeyBuf::default().part(room).part(nick).done()
}

/// `room \0 nick \0 seq`: one `mam_muc_nick` entry.
pub fn room_nick_seq(room: &str, nick: &str, seq: u64) -> Vec<u8> {
    KeyBuf::default().part(room).part(nick).u64(seq).done()
}

/// `prefix seq`: a key of any seq-suffixed layout, given its prefix (record ranges, index
/// ranges). Every such layout above ends in the big-endian seq.
pub fn prefix_seq(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = KeyBuf::with(prefix.len() + 8);
    k.0.extend_from_slice(prefix);
    k.u64(seq).done()
}

/// The seq that ends a seq-suffixed key (see [`prefix_seq`]).
pub fn trailing_seq(keyspace: Keyspace, key: &[u8]) -> Result<u64> {
    let start = key.len().checked_sub(8).unwrap_or(key.len());
    let mut r = KeyReader::new(keyspace, key.get(start..).unwrap_or_default());
    r.u64().map_err(|_| Error::Corrupt {
        keyspace: keyspace.name(),
        key: escape_key(key),
        reason: "key too short",
    })
}

/// Big-endian bytes of a u64 (stored as a value, e.g. the seq an imported id maps to).
pub fn u64_value(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads a u64 written by [`u64_value`].
pub fn read_u64_value(keyspace: Keyspace, key: &[u8], v: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = v.try_into().map_err(|_| Error::Corrupt {
        keyspace: keyspace.name(),
        key: escape_key(key),
        reason: "expected an 8-byte integer",
    })?;
    Ok(u64::from_be_bytes(arr))
}

/// The smallest key greater than every key starting with `prefix`, for reverse scans;
/// `None` when no such key exists (prefix of all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Tag of an audit log entry's key: `e`, then a sequence number (BE), in append order.
pub const AUDIT_ENTRY: u8 = b'e';

/// Tag of an erasure ledger entry's key: `l`, then the subject's keyed hash (64 lower-case
/// hex digits).
pub const AUDIT_LEDGER: u8 = b'l';

/// `l hash`: the erasure ledger's entry for one subject.
pub fn audit_ledger(hash: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + hash.len());
    k.push(AUDIT_LEDGER);
    k.extend_from_slice(hash.as_bytes());
    k
}

/// The keyed hash an erasure ledger key names.
pub fn read_audit_ledger_key(key: &[u8]) -> Result<&str> {
    match key.split_first() {
        Some((&AUDIT_LEDGER, hash))
            if hash.len() == 64 && hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            std::str::from_utf8(hash).map_err(|_| corrupt(Keyspace::Audit, key, "ledger key"))
        }
        _ => Err(corrupt(Keyspace::Audit, key, "not an erasure ledger key")),
    }
}

/// The key of the audit log's secret hash key.
pub const AUDIT_SECRET: &[u8] = b"k";

/// `e seq`: one audit log entry.
pub fn audit_entry(seq: u64) -> Vec<u8> {
    KeyBuf::with(9).byte(AUDIT_ENTRY).u64(seq).done()
}

/// The sequence number of an audit entry key (`None`: the secret's key).
pub fn read_audit_key(key: &[u8]) -> Result<Option<u64>> {
    if key == AUDIT_SECRET {
        return Ok(None);
    }
    let mut r = KeyReader::new(Keyspace::Audit, key);
    if r.byte()? != AUDIT_ENTRY {
        return Err(corrupt(Keyspace::Audit, key, "unknown audit key"));
    }
    let seq = r.u64()?;
    r.end()?;
    Ok(Some(seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn j(s: &str) -> BareJid {
        BareJid::parse(s).unwrap()
    }

    #[test]
    fn owner_prefix_does_not_match_longer_jids() {
        let jids = ["a@h", "a@h.org", "ab@h", "a@hh"];
        for x in jids {
            for y in jids {
                let px = owner(&j(x));
                let ky = owner_and(&j(y), "k");
                assert_eq!(ky.starts_with(&px), x == y, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn keyspace_names_are_unique() {
        let mut names: Vec<_> = Keyspace::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Keyspace::ALL.len());
        for (i, k) in Keyspace::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }

    #[test]
    fn prefix_end_bounds() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    proptest! {
        #[test]
        fn archive_seq_order_is_numeric(a in any::<u64>(), s1 in any::<u64>(), s2 in any::<u64>()) {
            prop_assert_eq!(archive_seq(a, s1).cmp(&archive_seq(a, s2)), s1.cmp(&s2));
        }

        #[test]
        fn records_and_with_entries_do_not_mix(a in any::<u64>(), s in any::<u64>(), w in "[a-z@.]{0,12}") {
            let (r, e) = (archive_seq(a, s), archive_with_seq(a, &w, s));
            prop_assert!(r.starts_with(&archive_records(a)) && r.starts_with(&archive(a)));
            prop_assert!(!e.starts_with(&archive_records(a)) && e.starts_with(&archive(a)));
            prop_assert!(r < e);
        }

        #[test]
        fn with_prefix_is_exact(a in any::<u64>(), s in any::<u64>()) {
            let k = archive_with_seq(a, "bob@x.org", s);
            prop_assert!(k.starts_with(&archive_with(a, "bob@x.org")));
            prop_assert!(!k.starts_with(&archive_with(a, "bob@x")));
            prop_assert_eq!(prefix_seq(&archive_with(a, "bob@x.org"), s), k);
            let n = room_nick_seq("r@m", "ni", s);
            prop_assert!(!n.starts_with(&room_nick("r@m", "n")));
            prop_assert_eq!(trailing_seq(Keyspace::MamMucNick, &n).unwrap(), s);
        }

        #[test]
        fn room_seq_roundtrips(room in "[a-z]{1,8}@muc\\.[a-z]{1,5}", seq in any::<u64>()) {
            let k = room_seq(&room, seq);
            let mut r = KeyReader::new(Keyspace::MamMuc, &k);
            prop_assert_eq!(r.part().unwrap(), room.as_str());
            prop_assert_eq!(r.u64().unwrap(), seq);
            r.end().unwrap();
        }

        #[test]
        fn quad_roundtrips(a in "[^\0]{0,8}", b in "[^\0]{0,8}", c in "[^\0]{0,8}", d in "[^\0]{0,8}") {
            let k = quad_tail(&a, &b, &c, &d);
            let mut r = KeyReader::new(Keyspace::PubsubItemsByPublisher, &k);
            prop_assert_eq!(r.part().unwrap(), a.as_str());
            prop_assert_eq!(r.part().unwrap(), b.as_str());
            prop_assert_eq!(r.part().unwrap(), c.as_str());
            prop_assert_eq!(r.tail().unwrap(), d.as_str());
        }

        #[test]
        fn sweep_keys_roundtrip(prefix in proptest::collection::vec(any::<u8>(), 0..20), a in 0u64..(1 << 62)) {
            for ks in Keyspace::ALL {
                prop_assert_eq!(
                    read_sweep_key(&sweep_range(*ks, &prefix)).unwrap(),
                    SweepKey::Range(*ks, prefix.clone())
                );
            }
            prop_assert_eq!(read_sweep_key(&archive(a)).unwrap(), SweepKey::Archive(a));
            prop_assert_eq!(
                read_sweep_key(&sweep_redact("al@example.org")).unwrap(),
                SweepKey::Redact("al@example.org".to_owned())
            );
        }

        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut r = KeyReader::new(Keyspace::PubsubItems, &bytes);
            let _ = r.part();
            let _ = r.u64();
            let _ = r.byte();
            let _ = r.tail();
            let _ = r.end();
        }
    }
}
