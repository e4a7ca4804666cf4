//! Long scans: every step starts a new sled range. sled 0.34 evicts cached pages only as it
//! counts page accesses, and one long-lived iterator touches each leaf once, so a scan of a
//! large archive would otherwise keep all of it resident.

use std::ops::Bound;

use crate::backend::{Bytes, KeyRange};
use crate::error::Result;

/// A range read one entry per sled range, from both ends.
pub(super) struct Scan {
    tree: sled::Tree,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    done: bool,
}

impl Scan {
    pub(super) fn new(tree: sled::Tree, (lo, hi): KeyRange) -> Self {
        Scan {
            tree,
            lo,
            hi,
            done: false,
        }
    }

    fn step(&mut self, back: bool) -> Option<Result<(Bytes, Bytes)>> {
        if self.done || crate::backend::empty_range(&self.lo, &self.hi) {
            return None;
        }
        let mut range = self
            .tree
            .range::<Vec<u8>, _>((self.lo.clone(), self.hi.clone()));
        let kv = if back {
            range.next_back()
        } else {
            range.next()
        };
        match kv {
            None => {
                self.done = true;
                None
            }
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e.into()))
            }
            Some(Ok((k, v))) => {
                if back {
                    self.hi = Bound::Excluded(k.to_vec());
                } else {
                    self.lo = Bound::Excluded(k.to_vec());
                }
                Some(Ok((Bytes::from_sled(k), Bytes::from_sled(v))))
            }
        }
    }
}

impl Iterator for Scan {
    type Item = Result<(Bytes, Bytes)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for Scan {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}
