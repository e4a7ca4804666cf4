//! Reading archive entries that may be blocks of records (see [`crate::codec`]): a
//! bulk-ingested chunk stores up to [`RECORDS_PER_BLOCK`] consecutive records under the key
//! of the first one, and its `with` entries in blocks per peer. A key names the smallest seq
//! of its entry; entries under one prefix never overlap, so the only entry below a seq that
//! can hold it is the one right before it.
//!
//! Long scans ([`Scan`], [`for_each_entry`]) read through the engine's long-scan path
//! ([`crate::backend::Engine::scan`]), so memory stays flat over any archive.

use std::collections::{HashMap, VecDeque};

use serde::de::DeserializeOwned;

use crate::backend::{Bytes, KvIter, Tree, prefix_range};
use crate::codec;
use crate::error::Result;
use crate::keys::{self, Keyspace};
use crate::store::Store;

/// Records per block written by [`crate::ext::mam::Mam::append_bulk`].
pub const RECORDS_PER_BLOCK: usize = 8;
/// A block is closed early once its stanzas reach this many bytes, so a sled leaf of 16
/// entries stays well under sled's blob threshold (a quarter of its 512 KiB segment).
pub const BLOCK_BYTES: usize = 3 * 1024;
/// `with` entries per block.
pub const WITH_PER_BLOCK: usize = 32;

/// The entry with the greatest key at or below `prefix seq`.
pub(crate) fn entry_at_or_before(
    tree: Tree<'_>,
    prefix: &[u8],
    seq: u64,
) -> Result<Option<(Bytes, Bytes)>> {
    let range = keys::prefix_seq(prefix, 0)..=keys::prefix_seq(prefix, seq);
    tree.range(range).next_back().transpose()
}

/// The value numbered `seq` under `prefix` (alone or in a block), read and checked.
pub(crate) fn find<T: DeserializeOwned>(
    store: &Store,
    ks: Keyspace,
    prefix: &[u8],
    seq: u64,
) -> Result<Option<T>> {
    let Some((k, v)) = entry_at_or_before(store.tree(ks), prefix, seq)? else {
        return Ok(None);
    };
    codec::find_in_entry(ks, &k, &v, keys::trailing_seq(ks, &k)?, seq)
}

/// The value numbered `seq` in the entry at exactly `key` (one direct lookup), if there.
pub(crate) fn find_at<T: DeserializeOwned>(
    store: &Store,
    ks: Keyspace,
    key: &[u8],
    seq: u64,
) -> Result<Option<T>> {
    let Some(v) = store.tree(ks).get(key)? else {
        return Ok(None);
    };
    codec::find_in_entry(ks, key, &v, keys::trailing_seq(ks, key)?, seq)
}

/// For each `(key, seq)` of `wanted`, in order, the value numbered `seq` in the entry at
/// exactly `key`, if there: what [`find_at`] gives for each, from one batched read
/// ([`Tree::get_many`]) that fetches each entry once (a block holds several values).
pub(crate) fn find_many_at<T: DeserializeOwned>(
    store: &Store,
    ks: Keyspace,
    wanted: &[(Vec<u8>, u64)],
) -> Result<Vec<Option<T>>> {
    // Each distinct key once, in first-seen order; `at[j]` is where wanted `j`'s key is.
    let mut first: HashMap<&[u8], usize> = HashMap::new();
    let mut distinct: Vec<&[u8]> = Vec::new();
    let mut at = Vec::with_capacity(wanted.len());
    for (key, _) in wanted {
        let n = *first.entry(key.as_slice()).or_insert_with(|| {
            distinct.push(key.as_slice());
            distinct.len() - 1
        });
        at.push(n);
    }
    let values = store.tree(ks).get_many(&distinct)?;
    debug_assert_eq!(values.len(), distinct.len(), "one answer per key");
    let mut out = Vec::with_capacity(wanted.len());
    for ((key, seq), n) in wanted.iter().zip(at) {
        out.push(match values.get(n).and_then(Option::as_ref) {
            None => None,
            Some(v) => codec::find_in_entry(ks, key, v, keys::trailing_seq(ks, key)?, *seq)?,
        });
    }
    Ok(out)
}

/// Whether some entry under `prefix` holds `seq` (the entry is checked, not decoded).
pub(crate) fn holds(store: &Store, ks: Keyspace, prefix: &[u8], seq: u64) -> Result<bool> {
    let Some((k, v)) = entry_at_or_before(store.tree(ks), prefix, seq)? else {
        return Ok(false);
    };
    let e = codec::entries(ks, &k, &v, keys::trailing_seq(ks, &k)?)?;
    Ok(e.position(seq).is_some())
}

/// Visits the values with seqs in `[lo, hi]` of the entries under `prefix`, in seq order or
/// (with `backward`) reversed; `visit` gets the entry, the value's index and its seq, and
/// returns `false` to stop. One short range: for pages, not for whole-archive scans.
pub(crate) fn visit(
    store: &Store,
    ks: Keyspace,
    prefix: &[u8],
    (lo, hi): (u64, u64),
    backward: bool,
    mut visit: impl FnMut(&codec::Entries<'_>, usize, u64) -> Result<bool>,
) -> Result<()> {
    if lo > hi {
        return Ok(());
    }
    let tree = store.tree(ks);
    let start = match entry_at_or_before(tree, prefix, lo)? {
        Some((k, _)) => k.to_vec(),
        None => keys::prefix_seq(prefix, lo),
    };
    let it = tree.range(start..=keys::prefix_seq(prefix, hi));
    let it: Box<dyn Iterator<Item = Result<(Bytes, Bytes)>>> = if backward {
        Box::new(it.rev())
    } else {
        Box::new(it)
    };
    for kv in it {
        let (k, v) = kv?;
        let e = codec::entries(ks, &k, &v, keys::trailing_seq(ks, &k)?)?;
        let mut idx: Vec<(usize, u64)> = e.seqs().enumerate().collect();
        if backward {
            idx.reverse();
        }
        for (i, s) in idx {
            if (lo..=hi).contains(&s) && !visit(&e, i, s)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Calls `f` with every entry (key, value) under `prefix` in key order, read as a long scan
/// (see the module docs), until `f` returns `false`.
pub(crate) fn for_each_entry(
    store: &Store,
    ks: Keyspace,
    prefix: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    for kv in store.tree(ks).scan(prefix_range(prefix)) {
        let (k, v) = kv?;
        if !f(&k, &v)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Every value under a prefix in seq order, from both ends, decoded entry by entry, read as
/// a long scan (see the module docs).
pub(crate) struct Scan<T> {
    entries: KvIter,
    ks: Keyspace,
    front_buf: VecDeque<Result<(u64, T)>>,
    back_buf: VecDeque<Result<(u64, T)>>,
    done: bool,
}

impl<T: DeserializeOwned> Scan<T> {
    pub(crate) fn new(store: &Store, ks: Keyspace, prefix: &[u8]) -> Self {
        Scan {
            entries: store.tree(ks).scan(prefix_range(prefix)),
            ks,
            front_buf: VecDeque::new(),
            back_buf: VecDeque::new(),
            done: false,
        }
    }

    /// The next entry from the front or the back of what is left, decoded.
    fn step(&mut self, from_back: bool) -> Option<VecDeque<Result<(u64, T)>>> {
        if self.done {
            return None;
        }
        let kv = if from_back {
            self.entries.next_back()
        } else {
            self.entries.next()
        };
        match kv {
            None => {
                self.done = true;
                None
            }
            Some(Err(e)) => {
                self.done = true;
                Some(VecDeque::from([Err(e)]))
            }
            Some(Ok((k, v))) => Some(decode_all(self.ks, &k, &v)),
        }
    }
}

fn decode_all<T: DeserializeOwned>(ks: Keyspace, k: &[u8], v: &[u8]) -> VecDeque<Result<(u64, T)>> {
    let entries = keys::trailing_seq(ks, k).and_then(|seq| codec::entries(ks, k, v, seq));
    match entries {
        Err(e) => VecDeque::from([Err(e)]),
        Ok(e) => (0..e.len()).map(|i| e.decode::<T>(i)).collect(),
    }
}

impl<T: DeserializeOwned> Iterator for Scan<T> {
    type Item = Result<(u64, T)>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.front_buf.pop_front() {
                return Some(x);
            }
            match self.step(false) {
                Some(buf) => self.front_buf = buf,
                None => return self.back_buf.pop_front(),
            }
        }
    }
}

impl<T: DeserializeOwned> DoubleEndedIterator for Scan<T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.back_buf.pop_back() {
                return Some(x);
            }
            match self.step(true) {
                Some(buf) => self.back_buf = buf,
                None => return self.front_buf.pop_back(),
            }
        }
    }
}
