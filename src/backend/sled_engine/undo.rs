//! Batches of new keys without sled's batch machinery: an undo record in `meta` names the
//! keys, the writes go in as single-key inserts, and the record is removed at the end.
//!
//! Why: every sled batch or transaction seals and writes sled's current I/O buffer before
//! and after it (`PageCache::pin_log`, "HACK" in sled 0.34), two `pwrite` + two waited
//! `sync_file_range` calls per batch. A live append is one small batch, so that cost was
//! most of its CPU time (issue 18). Single-key inserts do not seal the buffer.
//!
//! Invariants this relies on:
//! - sled recovers a prefix of its log (it stops at the first missing or damaged write;
//!   its own batch atomicity rests on the same property), and a thread's writes enter the
//!   log in call order. So after a crash, if any write of the batch is present, its undo
//!   record is too, unless the record's removal (the batch's last write) is present, and
//!   then every write is.
//! - The caller guarantees every key of the batch was absent before it and is written by
//!   no one else until it returns (a fresh sequence number in each key). So removing the
//!   keys restores the state before the batch, and cannot remove anyone else's data.
//!
//! At open, [`roll_back`] removes the keys of every undo record left by a crash, then the
//! record: the interrupted batch is gone whole. Such a batch had not returned, or had not
//! been flushed, so no write that was durable is lost.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::WriteBatch;
use crate::error::{Error, Result};
use crate::keys::{self, Keyspace};

/// Key prefix of undo records in `meta`; the record number follows (8 bytes, big-endian).
pub(crate) const PREFIX: &[u8] = b"undo:";

/// Numbers undo records within one opening of the store (none survive an opening).
#[derive(Default)]
pub(super) struct Counter(AtomicU64);

impl Counter {
    /// The `meta` key of a new undo record.
    pub(super) fn next_key(&self) -> Vec<u8> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let mut key = PREFIX.to_vec();
        key.extend_from_slice(&keys::u64_value(n));
        key
    }
}

/// The undo record of `batch`: per write, its keyspace name (1-byte length) and key
/// (4-byte big-endian length).
pub(crate) fn encode(batch: &WriteBatch) -> Vec<u8> {
    let mut out = Vec::new();
    for (ks, key, _) in &batch.ops {
        let name = ks.name().as_bytes();
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name);
        out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// The keys an undo record names; an error for bytes [`encode`] did not write.
pub(super) fn decode(record_key: &[u8], value: &[u8]) -> Result<Vec<(Keyspace, Vec<u8>)>> {
    let bad = |reason| keys::corrupt(Keyspace::Meta, record_key, reason);
    let mut out = Vec::new();
    let mut rest = value;
    while let Some((&len, tail)) = rest.split_first() {
        let (name, tail) = tail
            .split_at_checked(usize::from(len))
            .ok_or_else(|| bad("undo record cut short"))?;
        let ks = Keyspace::ALL
            .iter()
            .find(|k| k.name().as_bytes() == name)
            .ok_or_else(|| bad("undo record names an unknown keyspace"))?;
        let (len, tail) = tail
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("undo record cut short"))?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| bad("key too long"))?;
        let (key, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| bad("undo record cut short"))?;
        out.push((*ks, key.to_vec()));
        rest = tail;
    }
    Ok(out)
}

/// Whether a `meta` entry is a well-formed undo record (for `verify`).
pub(crate) fn check(key: &[u8], value: &[u8]) -> Result<()> {
    if key.len() != PREFIX.len() + 8 {
        return Err(keys::corrupt(Keyspace::Meta, key, "undo record key"));
    }
    decode(key, value).map(|_| ())
}

/// Rolls back every batch an undo record is left for (see the module docs); returns how
/// many. `tree` gives each keyspace's sled tree.
pub(super) fn roll_back<'a>(
    meta: &sled::Tree,
    tree: impl Fn(Keyspace) -> Result<&'a sled::Tree>,
) -> Result<usize> {
    let mut n = 0;
    for entry in meta.scan_prefix(PREFIX) {
        let (key, value) = entry?;
        for (ks, k) in decode(&key, &value)? {
            tree(ks)?.remove(k)?;
        }
        meta.remove(key)?;
        n += 1;
    }
    if n > 0 {
        // Before any new write: the batches are gone on disk whatever happens next.
        meta.flush()?;
    }
    Ok(n)
}

/// Applies `batch` (every key new, see the module docs) with single-key writes, all or
/// nothing across a crash; readers may see its writes one by one, in batch order.
pub(super) fn apply(
    meta: &sled::Tree,
    counter: &Counter,
    batch: &WriteBatch,
    tree: impl Fn(Keyspace) -> Result<sled::Tree>,
) -> Result<()> {
    let record = counter.next_key();
    meta.insert(record.as_slice(), encode(batch))?;
    let res = batch.ops.iter().try_for_each(|(ks, key, value)| {
        let t = tree(*ks)?;
        match value {
            Some(v) => t.insert(key.as_slice(), v.as_slice()).map(|_| ()),
            None => t.remove(key.as_slice()).map(|_| ()),
        }
        .map_err(Error::from)
    });
    match res {
        Ok(()) => {
            meta.remove(record)?;
            Ok(())
        }
        Err(e) => {
            // Undo now; should that fail too, the record stays and the next open undoes.
            let undone = batch.ops.iter().try_for_each(|(ks, key, _)| {
                tree(*ks)?
                    .remove(key.as_slice())
                    .map(|_| ())
                    .map_err(Error::from)
            });
            if undone.is_ok() {
                let _ = meta.remove(record);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let mut b = WriteBatch::default();
        b.insert(Keyspace::MamPm, b"abc".to_vec(), b"v".to_vec());
        b.insert(Keyspace::Accounts, vec![0, 255], b"w".to_vec());
        let bytes = encode(&b);
        let got = decode(b"k", &bytes).unwrap();
        assert_eq!(
            got,
            vec![
                (Keyspace::MamPm, b"abc".to_vec()),
                (Keyspace::Accounts, vec![0, 255])
            ]
        );
        for cut in 1..bytes.len() {
            if let Ok(v) = decode(b"k", &bytes[..cut]) {
                // Only a cut at an entry boundary parses, and then to fewer entries.
                assert!(v.len() < 2, "cut at {cut}");
            }
        }
        let mut unknown = bytes.clone();
        unknown[1] = b'X';
        assert!(decode(b"k", &unknown).is_err());
    }
}
