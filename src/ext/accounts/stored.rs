//! The stored account record: the on-disk layout of a value in the `accounts` keyspace.
//!
//! These types, not the public [`Verifier`] and [`Mechanism`], are what the codec writes:
//! a change to a public type cannot silently change the format. Field order and variant
//! order are the on-disk layout (pinned in `src/golden.rs`): change them only with a format
//! version bump (README "On-disk format").

use serde::{Deserialize, Serialize};

use crate::ext::scram::{Mechanism, Verifier};
use crate::ext::stored_enum::stored_enum;
use crate::ext::stored_time::StoredTimestamp;

/// The on-disk account record (value of `accounts`, keyed by the owner). Change only with a
/// format version bump.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredAccount {
    /// When the account was created.
    pub(crate) created_at: StoredTimestamp,
    /// One verifier per SCRAM mechanism.
    pub(crate) verifiers: Vec<StoredVerifier>,
    /// The account's 1-1 archive id. A fresh id for every account, so a name registered again
    /// after an erasure never sees the old archive, even before its sweep finished.
    pub(crate) archive: u64,
}

/// The on-disk form of a [`Verifier`]. Change only with a format version bump.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredVerifier {
    mechanism: StoredMechanism,
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

stored_enum! {
    /// The on-disk form of a [`Mechanism`]: the variant index is written. Change only with a
    /// format version bump.
    pub(crate) enum StoredMechanism mirrors Mechanism { Sha1, Sha256, Sha512 }
}

impl StoredVerifier {
    /// The mechanism of this verifier.
    pub(crate) fn mechanism(&self) -> Mechanism {
        self.mechanism.into()
    }
}

impl From<Verifier> for StoredVerifier {
    fn from(v: Verifier) -> Self {
        StoredVerifier {
            mechanism: v.mechanism.into(),
            salt: v.salt,
            iterations: v.iterations,
            stored_key: v.stored_key,
            server_key: v.server_key,
        }
    }
}

impl From<StoredVerifier> for Verifier {
    fn from(v: StoredVerifier) -> Self {
        Verifier {
            mechanism: v.mechanism.into(),
            salt: v.salt,
            iterations: v.iterations,
            stored_key: v.stored_key,
            server_key: v.server_key,
        }
    }
}
