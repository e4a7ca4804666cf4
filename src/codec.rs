//! Value encoding: the only module that calls bincode.
//!
//! Every stored value is `[VALUE_VERSION: u8] [payload] [crc32 of version+payload: u32 BE]`.
//! The payload is bincode 2 (serde, standard config, length limit). Swapping bincode for
//! postcard is a change to this file alone; bumping [`VALUE_VERSION`] is how such a change
//! is told apart on disk.
//!
//! A **block** holds several seq-numbered values of one type under one key (bulk-ingested
//! archive records and their `with` entries):
//! `[BLOCK_TAG: u8] [count: u16 BE] count x ([seq: u64 BE] [len: u32 BE]) [payloads] [crc32]`,
//! each payload the bincode of one value, seqs strictly increasing. [`entries`] reads a block
//! and a single value alike, so readers of archive keyspaces take either.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::keys::{Keyspace, escape_key};

/// Version byte written in front of every value.
pub const VALUE_VERSION: u8 = 1;

/// Refuse to decode any length prefix claiming more than this: a flipped bit in a length must
/// not turn into a multi-gigabyte allocation.
const DECODE_LIMIT: usize = 64 * 1024 * 1024;

const OVERHEAD: usize = 1 + 4;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a value with version byte and CRC-32.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VALUE_VERSION);
    // Encoding plain data structs into a Vec cannot fail: there is no I/O and no limit on
    // the encode side. Should a future type make it fail, store an empty payload that the
    // CRC still covers, so decode reports it rather than writing garbage.
    if let Ok(payload) = bincode::serde::encode_to_vec(value, config()) {
        out.extend_from_slice(&payload);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a value written by [`encode`], checking version, checksum and that every byte was
/// consumed. `keyspace` and `key` name the entry in the error.
pub fn decode<T: DeserializeOwned>(keyspace: Keyspace, key: &[u8], bytes: &[u8]) -> Result<T> {
    let corrupt = |reason| Error::Corrupt {
        keyspace: keyspace.name(),
        key: escape_key(key),
        reason,
    };
    let payload = checked_payload(bytes).map_err(corrupt)?;
    decode_exact(payload).map_err(corrupt)
}

/// Decodes a payload that must be consumed whole; strings may borrow from it.
fn decode_exact<'de, T: serde::Deserialize<'de>>(
    payload: &'de [u8],
) -> std::result::Result<T, &'static str> {
    match bincode::serde::borrow_decode_from_slice::<T, _>(payload, config()) {
        Ok((value, used)) if used == payload.len() => Ok(value),
        Ok(_) => Err("trailing bytes after value"),
        Err(_) => Err("value does not decode"),
    }
}

/// Checks framing and CRC and returns the payload.
fn checked_payload(bytes: &[u8]) -> std::result::Result<&[u8], &'static str> {
    if bytes.len() < OVERHEAD {
        return Err("value too short");
    }
    let (body, crc_bytes) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes(crc_bytes.try_into().map_err(|_| "value too short")?);
    if crc32fast::hash(body) != stored {
        return Err("checksum mismatch");
    }
    match body.split_first() {
        Some((&VALUE_VERSION, payload)) => Ok(payload),
        Some(_) => Err("unknown value version"),
        None => Err("value too short"),
    }
}

/// First byte of a block of values (see the module docs).
pub const BLOCK_TAG: u8 = 2;

/// Encodes values with their seqs as one block (seqs must be strictly increasing); a single
/// value is written as a plain value, so [`decode`] still reads it.
pub fn encode_block<T: Serialize>(items: &[(u64, &T)]) -> Vec<u8> {
    if let [(_, one)] = items {
        return encode(*one);
    }
    encode_block_frame(items)
}

/// Encodes values with their seqs as a block frame, even a single one (for entries whose
/// items differ from a single value's type).
pub fn encode_block_frame<T: Serialize>(items: &[(u64, &T)]) -> Vec<u8> {
    let payloads: Vec<(u64, Vec<u8>)> = items
        .iter()
        .map(|(seq, v)| {
            (
                *seq,
                bincode::serde::encode_to_vec(*v, config()).unwrap_or_default(),
            )
        })
        .collect();
    block_from(payloads.iter().map(|(s, p)| (*s, p.as_slice())))
}

/// A block frame around already encoded payloads.
fn block_from<'a>(items: impl ExactSizeIterator<Item = (u64, &'a [u8])> + Clone) -> Vec<u8> {
    let count = items.len();
    let body: usize = items.clone().map(|(_, p)| p.len()).sum();
    let mut out = Vec::with_capacity(3 + count * 12 + body + 4);
    out.push(BLOCK_TAG);
    // Blocks are built by this crate with at most a few dozen items.
    out.extend_from_slice(&u16::try_from(count).unwrap_or(u16::MAX).to_be_bytes());
    for (seq, p) in items.clone() {
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&u32::try_from(p.len()).unwrap_or(u32::MAX).to_be_bytes());
    }
    for (_, p) in items {
        out.extend_from_slice(p);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The values of one entry: a block's items, or a single value numbered `key_seq`.
pub struct Entries<'a> {
    keyspace: Keyspace,
    key: &'a [u8],
    items: Vec<(u64, &'a [u8])>,
    block: bool,
}

/// Reads an entry that may be a block or a single value (numbered `key_seq`, the seq its key
/// ends with). Checks framing and CRC, and for a block that its seqs are strictly increasing
/// and none is below `key_seq`; values are decoded one by one with [`Entries::decode`].
pub fn entries<'a>(
    keyspace: Keyspace,
    key: &'a [u8],
    bytes: &'a [u8],
    key_seq: u64,
) -> Result<Entries<'a>> {
    let corrupt = |reason| Error::Corrupt {
        keyspace: keyspace.name(),
        key: escape_key(key),
        reason,
    };
    if bytes.first() != Some(&BLOCK_TAG) {
        let payload = checked_payload(bytes).map_err(corrupt)?;
        return Ok(Entries {
            keyspace,
            key,
            items: vec![(key_seq, payload)],
            block: false,
        });
    }
    let items = block_items(bytes, key_seq).map_err(corrupt)?;
    Ok(Entries {
        keyspace,
        key,
        items,
        block: true,
    })
}

fn block_items(bytes: &[u8], key_seq: u64) -> std::result::Result<Vec<(u64, &[u8])>, &'static str> {
    let mut items = Vec::with_capacity(8);
    walk_block(bytes, key_seq, |seq, item| items.push((seq, item)))?;
    Ok(items)
}

/// Checks a block frame (CRC, header, seq order, lengths) and calls `f` with every item.
fn walk_block<'a>(
    bytes: &'a [u8],
    key_seq: u64,
    mut f: impl FnMut(u64, &'a [u8]),
) -> std::result::Result<(), &'static str> {
    if bytes.len() < 3 + 4 {
        return Err("block too short");
    }
    let (body, crc_bytes) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes(crc_bytes.try_into().map_err(|_| "block too short")?);
    if crc32fast::hash(body) != stored {
        return Err("checksum mismatch");
    }
    let count = usize::from(u16::from_be_bytes(
        body.get(1..3)
            .ok_or("block too short")?
            .try_into()
            .map_err(|_| "block too short")?,
    ));
    if count == 0 {
        return Err("empty block");
    }
    let header_end = count
        .checked_mul(12)
        .and_then(|h| h.checked_add(3))
        .ok_or("block header too long")?;
    let header = body.get(3..header_end).ok_or("block header truncated")?;
    let mut payload = body.get(header_end..).ok_or("block header truncated")?;
    let mut prev: Option<u64> = None;
    for h in header.chunks_exact(12) {
        let (seq, len) = h.split_at(8);
        let seq = u64::from_be_bytes(seq.try_into().map_err(|_| "block header truncated")?);
        let len = u32::from_be_bytes(len.try_into().map_err(|_| "block header truncated")?);
        let len = usize::try_from(len).map_err(|_| "block item too long")?;
        if seq < key_seq || prev.is_some_and(|p| seq <= p) {
            return Err("block seqs out of order");
        }
        prev = Some(seq);
        if len > payload.len() {
            return Err("block item truncated");
        }
        let (item, rest) = payload.split_at(len);
        f(seq, item);
        payload = rest;
    }
    if !payload.is_empty() {
        return Err("trailing bytes after block");
    }
    Ok(())
}

/// The value numbered `seq` in one entry (a block, or a single value numbered `key_seq`),
/// checked like [`entries`] but without collecting the items: for point lookups.
pub fn find_in_entry<T: DeserializeOwned>(
    keyspace: Keyspace,
    key: &[u8],
    bytes: &[u8],
    key_seq: u64,
    seq: u64,
) -> Result<Option<T>> {
    let corrupt = |reason| Error::Corrupt {
        keyspace: keyspace.name(),
        key: escape_key(key),
        reason,
    };
    let payload = if bytes.first() == Some(&BLOCK_TAG) {
        let mut found = None;
        walk_block(bytes, key_seq, |s, item| {
            if s == seq {
                found = Some(item);
            }
        })
        .map_err(corrupt)?;
        found
    } else {
        let payload = checked_payload(bytes).map_err(corrupt)?;
        (key_seq == seq).then_some(payload)
    };
    match payload {
        Some(p) => decode_exact(p).map(Some).map_err(corrupt),
        None => Ok(None),
    }
}

impl Entries<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none (never, for an entry that read back).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The seqs, in order.
    pub fn seqs(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.items.iter().map(|(s, _)| *s)
    }

    /// Whether the entry is a block frame (rather than a single value).
    pub fn is_block(&self) -> bool {
        self.block
    }

    /// The seq of value `i`.
    pub fn seq(&self, i: usize) -> Option<u64> {
        self.items.get(i).map(|(s, _)| *s)
    }

    /// The first and last seq.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        Some((self.items.first()?.0, self.items.last()?.0))
    }

    /// The index of the value numbered `seq`.
    pub fn position(&self, seq: u64) -> Option<usize> {
        self.items.binary_search_by_key(&seq, |(s, _)| *s).ok()
    }

    /// Decodes value `i` (its seq and the value).
    pub fn decode<T: DeserializeOwned>(&self, i: usize) -> Result<(u64, T)> {
        self.decode_borrowed(i)
    }

    /// Decodes value `i` borrowing from the stored bytes (strings as `&str`); same layout as
    /// [`Entries::decode`] of the owned type.
    pub fn decode_borrowed<'de, T: serde::Deserialize<'de>>(
        &'de self,
        i: usize,
    ) -> Result<(u64, T)> {
        let corrupt = |reason| Error::Corrupt {
            keyspace: self.keyspace.name(),
            key: escape_key(self.key),
            reason,
        };
        let (seq, payload) = *self
            .items
            .get(i)
            .ok_or_else(|| corrupt("no such block item"))?;
        Ok((seq, decode_exact(payload).map_err(corrupt)?))
    }

    /// The entry without the value numbered `seq`, re-encoded; `None` when nothing is left.
    pub fn without(&self, seq: u64) -> Option<Vec<u8>> {
        let rest: Vec<(u64, &[u8])> = self
            .items
            .iter()
            .copied()
            .filter(|(s, _)| *s != seq)
            .collect();
        // Still a block when one value is left: it keeps its own seq, which may be above the
        // key's.
        match rest.as_slice() {
            [] => None,
            left => Some(block_from(left.iter().copied())),
        }
    }
}

/// How many values an entry holds, read from its frame without checking it (1 for anything
/// that is not a block): for counting what a sweep deletes.
pub fn entry_count(bytes: &[u8]) -> u64 {
    match bytes {
        [BLOCK_TAG, a, b, ..] => u64::from(u16::from_be_bytes([*a, *b])),
        _ => 1,
    }
}

/// The encoded form of an index entry: a value with no payload (version and CRC only), so
/// that index values are checked like any other.
pub fn marker() -> Vec<u8> {
    encode(&())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Sample {
        a: String,
        b: u64,
        c: Option<Vec<String>>,
    }

    proptest! {
        #[test]
        fn roundtrip(a in ".*", b in any::<u64>(), c in proptest::option::of(proptest::collection::vec(".*", 0..4))) {
            let s = Sample { a, b, c };
            let bytes = encode(&s);
            prop_assert_eq!(decode::<Sample>(Keyspace::Vcard, b"k", &bytes).unwrap(), s);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Sample>(Keyspace::Vcard, b"k", &bytes);
        }

        #[test]
        fn any_single_bit_flip_is_detected(a in ".{0,20}", b in any::<u64>(), bit in any::<usize>()) {
            let mut bytes = encode(&Sample { a, b, c: None });
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode::<Sample>(Keyspace::Vcard, b"k", &bytes).is_err());
        }
    }

    #[test]
    fn error_names_keyspace_and_key() {
        let err = decode::<Sample>(Keyspace::Roster, b"alice@x\0bob@y", b"\x01junk")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'roster'"), "{err}");
        assert!(err.contains("alice@x\\x00bob@y"), "{err}");
    }

    proptest! {
        #[test]
        fn blocks_roundtrip_and_shrink(
            vals in proptest::collection::vec((1u64..5, ".{0,12}"), 1..20),
            drop in any::<usize>(),
        ) {
            let mut seq = 10;
            let items: Vec<(u64, String)> = vals.into_iter().map(|(d, v)| { seq += d; (seq, v) }).collect();
            let refs: Vec<(u64, &String)> = items.iter().map(|(s, v)| (*s, v)).collect();
            let bytes = encode_block(&refs);
            let e = entries(Keyspace::MamPm, b"k", &bytes, items[0].0).unwrap();
            prop_assert_eq!(e.len(), items.len());
            for (i, (s, v)) in items.iter().enumerate() {
                prop_assert_eq!(&e.decode::<String>(i).unwrap(), &(*s, v.clone()));
                prop_assert_eq!(e.position(*s), Some(i));
                let found = find_in_entry::<String>(Keyspace::MamPm, b"k", &bytes, items[0].0, *s).unwrap();
                prop_assert_eq!(found.as_ref(), Some(v));
                prop_assert_eq!(find_in_entry::<String>(Keyspace::MamPm, b"k", &bytes, items[0].0, *s + 1000).unwrap(), None);
            }
            let gone = items[drop % items.len()].0;
            match e.without(gone) {
                None => prop_assert_eq!(items.len(), 1),
                Some(b) => {
                    let e2 = entries(Keyspace::MamPm, b"k", &b, items[0].0).unwrap();
                    let left: Vec<u64> = e2.seqs().collect();
                    let want: Vec<u64> = items.iter().map(|(s, _)| *s).filter(|s| *s != gone).collect();
                    prop_assert_eq!(left, want);
                    for i in 0..e2.len() {
                        e2.decode::<String>(i).unwrap();
                    }
                }
            }
        }

        #[test]
        fn any_single_bit_flip_in_a_block_is_detected(bit in any::<usize>()) {
            let (a, b) = ("one".to_owned(), "two".to_owned());
            let mut bytes = encode_block(&[(3, &a), (7, &b)]);
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(find_in_entry::<String>(Keyspace::MamPm, b"k", &bytes, 0, 7).is_err());
            let read = entries(Keyspace::MamPm, b"k", &bytes, 0)
                .and_then(|e| (0..e.len()).map(|i| e.decode::<String>(i).map(drop)).collect::<Result<Vec<()>>>());
            prop_assert!(read.is_err());
        }

        #[test]
        fn block_garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Some(b) = bytes.first_mut() { *b = BLOCK_TAG; }
            if let Ok(e) = entries(Keyspace::MamPm, b"k", &bytes, 0) {
                for i in 0..e.len() { let _ = e.decode::<String>(i); }
            }
        }
    }

    #[test]
    fn block_below_its_key_seq_is_refused() {
        let (a, b) = ("one".to_owned(), "two".to_owned());
        let bytes = encode_block(&[(3, &a), (7, &b)]);
        assert!(entries(Keyspace::MamPm, b"k", &bytes, 3).is_ok());
        let err = entries(Keyspace::MamPm, b"k", &bytes, 4)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("out of order"), "{err}");
        // A single value reads as one entry numbered by its key.
        let one = encode(&a);
        let e = entries(Keyspace::MamPm, b"k", &one, 9).unwrap();
        assert_eq!(e.decode::<String>(0).unwrap(), (9, a));
    }

    #[test]
    fn marker_decodes_as_unit() {
        decode::<()>(Keyspace::Vcard, b"k", &marker()).unwrap();
    }
}
