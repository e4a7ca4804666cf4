//! The on-disk form of a [`Timestamp`].
//!
//! A stored record holds a [`StoredTimestamp`], never the public [`Timestamp`], so a change
//! to the public type (a new representation, a serde attribute) cannot silently change the
//! bytes on disk. The codec (bincode, see [`crate::codec`]) writes this newtype as its `i64`
//! of microseconds since the Unix epoch (zig-zag varint); the golden-byte tests in
//! `src/golden.rs` pin it. Change it only with a format version bump (README "On-disk
//! format").

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A [`Timestamp`] as stored: microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredTimestamp(i64);

impl From<Timestamp> for StoredTimestamp {
    fn from(t: Timestamp) -> Self {
        StoredTimestamp(t.as_micros())
    }
}

impl From<StoredTimestamp> for Timestamp {
    fn from(t: StoredTimestamp) -> Self {
        Timestamp::from_micros(t.0)
    }
}
