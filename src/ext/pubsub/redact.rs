//! Pseudonymisation of the items a subject published on nodes that stay (`unregister
//! --redact-kept`): each item's publisher (and the subject's JID in its payload) and its
//! by-publisher entry move to the pseudonym, in one transaction per chunk.

use crate::backend::Bytes;
use crate::error::Result;
use crate::ext::Gone;
use crate::gdpr::{Pseudonym, REDACT_CHUNK, redact};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;

use super::stored::{StoredItem, quad_of};

/// The item a by-publisher key names, and whether it is erased (being swept, or in a dry
/// run's planned ranges).
fn item_key(store: &Store, key: &[u8], gone: Option<Gone<'_>>) -> Result<(Vec<u8>, bool)> {
    let (_, service, node, item) = quad_of(key)?;
    let ikey = keys::triple_tail(&service, &node, &item);
    let swept = match gone {
        Some(gone) => gone(Keyspace::PubsubItems, &ikey),
        None => store.hidden(Keyspace::PubsubItems, &ikey),
    };
    Ok((ikey, swept))
}

/// Rewrites (or with `count_only` counts) every item `subject` published that no erasure
/// deletes; returns the number.
pub(super) fn redact_items(
    store: &Store,
    subject: &BareJid,
    p: &Pseudonym,
    count_only: Option<Gone<'_>>,
) -> Result<u64> {
    let dry_run = count_only.is_some();
    let prefix = keys::owner(subject);
    let mut total = 0;
    loop {
        // Writers that read an item before rewriting its index entries (a node's deletion)
        // hold the erase lock for reading: none runs between this scan and the write.
        let _writers_out = if dry_run { None } else { Some(store.eraser()?) };
        // What is still under the JID, less what a sweep deletes (left where it is).
        let mut chunk: Vec<(Bytes, Vec<u8>)> = Vec::new();
        for key in store.scan_keys(Keyspace::PubsubItemsByPublisher, &prefix) {
            let key = key?;
            let (ikey, swept) = item_key(store, &key, count_only)?;
            if !swept {
                chunk.push((key, ikey));
            }
            if !dry_run && chunk.len() == REDACT_CHUNK {
                break;
            }
        }
        if dry_run || chunk.is_empty() {
            return Ok(total + chunk.len() as u64);
        }
        let moved = store.transaction(
            &[Keyspace::PubsubItems, Keyspace::PubsubItemsByPublisher],
            |tx| {
                let mut moved = 0u64;
                for (key, ikey) in &chunk {
                    if !tx.contains(Keyspace::PubsubItemsByPublisher, key)? {
                        continue;
                    }
                    let Some(old) = tx.get::<StoredItem>(Keyspace::PubsubItems, ikey)? else {
                        continue;
                    };
                    if old.publisher != subject.as_str() {
                        continue;
                    }
                    let (_, service, node, item) =
                        quad_of(key).map_err(crate::backend::TxError::Abort)?;
                    let payload = redact::rewrite(&old.payload, subject, p, &[]).into_owned();
                    tx.remove(Keyspace::PubsubItemsByPublisher, key)?;
                    tx.put(
                        Keyspace::PubsubItems,
                        ikey,
                        &StoredItem {
                            publisher: p.jid().as_str().to_owned(),
                            payload,
                            published_at: old.published_at,
                        },
                    )?;
                    tx.mark(
                        Keyspace::PubsubItemsByPublisher,
                        &keys::quad_tail(p.jid().as_str(), &service, &node, &item),
                    )?;
                    moved += 1;
                }
                Ok(moved)
            },
        )?;
        if moved == 0 {
            // Nothing movable in a whole chunk (index entries without their item, which
            // `verify` reports): stop rather than loop.
            return Ok(total);
        }
        total += moved;
        crate::progress::advance(moved);
    }
}
