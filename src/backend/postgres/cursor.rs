//! Range reads in bounded chunks: keyset pagination from either end, so that a scan of a
//! whole archive holds at most one chunk per end in memory and the connection only while a
//! chunk is fetched.
//!
//! Invariant: every key fetched from the front is below `lo`'s bound and every key fetched
//! from the back above `hi`'s, so the two buffers hold disjoint keys and the middle range
//! `(lo, hi)` holds everything not yet fetched. Once a fetch comes back short the middle is
//! empty (`drained`) and each end yields what the other end's buffer still holds.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::Arc;

use postgres::types::ToSql;

use super::conn::Shared;
use super::schema::table;
use crate::backend::{Bytes, KeyRange, empty_range};
use crate::error::Result;
use crate::keys::Keyspace;

/// Rows fetched first: short reads (one page, the newest message) stay cheap.
const FIRST_CHUNK: i64 = 16;
/// Rows fetched at most per query: the memory bound of a long scan.
pub(super) const MAX_CHUNK: i64 = 512;

type Entry = (Bytes, Bytes);

/// A double-ended iterator over one keyspace's range.
pub(super) struct Cursor {
    shared: Arc<Shared>,
    ks: Keyspace,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    /// Fetched from the front, ascending.
    front: VecDeque<Entry>,
    /// Fetched from the back, descending.
    back: VecDeque<Entry>,
    /// Rows the next fetch asks for (doubles up to [`MAX_CHUNK`]).
    chunk: i64,
    drained: bool,
    failed: bool,
}

impl Cursor {
    pub(super) fn new(shared: Arc<Shared>, ks: Keyspace, range: KeyRange) -> Self {
        let drained = empty_range(&range.0, &range.1);
        Cursor {
            shared,
            ks,
            lo: range.0,
            hi: range.1,
            front: VecDeque::new(),
            back: VecDeque::new(),
            chunk: FIRST_CHUNK,
            drained,
            failed: false,
        }
    }

    /// Fetches the next chunk of the middle range from one end into that end's buffer.
    fn fetch(&mut self, back: bool) -> Result<()> {
        let mut sql = format!("SELECT key, value FROM {} WHERE true", table(self.ks));
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (bound, incl, excl) in [(&self.lo, ">=", ">"), (&self.hi, "<=", "<")] {
            let (op, key) = match bound {
                Bound::Included(k) => (incl, k),
                Bound::Excluded(k) => (excl, k),
                Bound::Unbounded => continue,
            };
            params.push(key);
            let _ = write!(sql, " AND key {op} ${}", params.len());
        }
        let limit = self.chunk;
        params.push(&limit);
        let order = if back { "DESC" } else { "ASC" };
        let _ = write!(sql, " ORDER BY key {order} LIMIT ${}", params.len());
        let action = format!("read keyspace {}", self.ks.name());
        let rows = self.shared.run(&action, |s| s.query(&sql, &params))?;
        let fetched = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let mut last = None;
        for row in rows {
            let k: Vec<u8> = row
                .try_get(0)
                .map_err(|e| super::error::storage(&action, &e))?;
            let v: Vec<u8> = row
                .try_get(1)
                .map_err(|e| super::error::storage(&action, &e))?;
            last = Some(k.clone());
            let entry = (Bytes::from(k), Bytes::from(v));
            if back {
                self.back.push_back(entry);
            } else {
                self.front.push_back(entry);
            }
        }
        if let Some(k) = last {
            if back {
                self.hi = Bound::Excluded(k);
            } else {
                self.lo = Bound::Excluded(k);
            }
        }
        if fetched < limit {
            self.drained = true;
        }
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        Ok(())
    }

    fn step(&mut self, back: bool) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        let own = |c: &mut Self| {
            if back {
                c.back.pop_front()
            } else {
                c.front.pop_front()
            }
        };
        if let Some(e) = own(self) {
            return Some(Ok(e));
        }
        if !self.drained {
            if let Err(e) = self.fetch(back) {
                self.failed = true;
                return Some(Err(e));
            }
            if let Some(e) = own(self) {
                return Some(Ok(e));
            }
        }
        // The middle is empty: the nearest entry left is at the far end of the other buffer.
        let other = if back {
            self.front.pop_back()
        } else {
            self.back.pop_back()
        };
        other.map(Ok)
    }
}

impl Iterator for Cursor {
    type Item = Result<Entry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for Cursor {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}
