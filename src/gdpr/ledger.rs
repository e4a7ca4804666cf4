//! The erasure ledger: who was erased and when, without personal data, so that an erasure
//! sticks.
//!
//! Every committed erasure ([`super::remove`]) writes, **in its own commit transaction**, one
//! entry in the `audit` keyspace: key `l` and the subject's keyed hash
//! ([`super::audit::subject_hash`]: HMAC-SHA-256 under the store's random key, never the
//! JID), value the time of the erasure (the latest one when a name is erased again). So an
//! erasure that returned is in the ledger, and a crash cannot leave one without the other.
//!
//! What reads it: `register` refuses an erased name for a period unless forced
//! ([`erased_at`]); `import` skips users erased here, reported, unless told to import them
//! ([`crate::pie::ImportOptions::import_erased`]); `restore` re-applies every erasure the
//! backup it restores does not know ([`crate::maintenance::restore`]).

use crate::codec;
use crate::error::Result;
use crate::ext::stored_time::StoredTimestamp;
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;

use super::audit::subject_hash;

/// The time of the latest erasure of `subject` recorded in this store's ledger, if any.
pub fn erased_at(store: &Store, subject: &BareJid) -> Result<Option<Timestamp>> {
    let key = keys::audit_ledger(&subject_hash(store, subject)?);
    Ok(store
        .get::<StoredTimestamp>(Keyspace::Audit, &key)?
        .map(Timestamp::from))
}

/// Every ledger entry: (subject's keyed hash, time of its latest erasure), in hash order.
pub fn entries(store: &Store) -> impl Iterator<Item = Result<(String, Timestamp)>> + use<> {
    store
        .scan::<StoredTimestamp>(Keyspace::Audit, &[keys::AUDIT_LEDGER])
        .map(|e| {
            let (key, at) = e?;
            Ok((keys::read_audit_ledger_key(&key)?.to_owned(), at.into()))
        })
}

/// The entry an erasure of `subject` at `at` writes: key and encoded value.
pub(crate) fn entry(store: &Store, subject: &BareJid, at: Timestamp) -> Result<(Vec<u8>, Vec<u8>)> {
    Ok((
        keys::audit_ledger(&subject_hash(store, subject)?),
        codec::encode(&StoredTimestamp::from(at)),
    ))
}

/// Checks one ledger entry (for [`crate::verify()`]).
pub(crate) fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
    keys::read_audit_ledger_key(key)?;
    codec::decode::<StoredTimestamp>(Keyspace::Audit, key, value).map(drop)
}
