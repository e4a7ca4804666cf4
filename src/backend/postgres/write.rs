//! Batched writes: the net effect of a [`WriteBatch`] or of a transaction's staged writes,
//! as one `INSERT ... ON CONFLICT DO UPDATE` from `unnest` arrays and one
//! `DELETE ... WHERE key = ANY(...)` per keyspace and chunk of [`ROWS`] keys, never one
//! round trip per key.

use std::collections::BTreeMap;

use postgres::GenericClient;

use super::conn::Session;
use super::schema::table;
use crate::backend::WriteBatch;
use crate::keys::Keyspace;

/// Keys per statement: bounds the size of one statement's arrays (an import writes
/// thousands of rows in one batch).
const ROWS: usize = 1000;

/// The final state of every key written, by keyspace then key (`None`: removed). Sorted, so
/// that concurrent writers lock rows in one order.
pub(super) type NetWrites = BTreeMap<(Keyspace, Vec<u8>), Option<Vec<u8>>>;

/// The net effect of `batch` (a later write of a key wins).
pub(super) fn net(batch: &WriteBatch) -> NetWrites {
    batch
        .ops
        .iter()
        .map(|(ks, k, v)| ((*ks, k.clone()), v.clone()))
        .collect()
}

/// One statement to run: inserts or deletes of one keyspace.
enum Stmt<'a> {
    Upsert(Keyspace, Vec<&'a [u8]>, Vec<&'a [u8]>),
    Delete(Keyspace, Vec<&'a [u8]>),
}

/// One keyspace's upserts (key, value) and deletes (key).
type Split<'a> = (Vec<(&'a [u8], &'a [u8])>, Vec<&'a [u8]>);

fn statements(writes: &NetWrites) -> Vec<Stmt<'_>> {
    let mut by_space: BTreeMap<Keyspace, Split<'_>> = BTreeMap::new();
    for ((ks, key), value) in writes {
        let (ins, del) = by_space.entry(*ks).or_default();
        match value {
            Some(v) => ins.push((key, v)),
            None => del.push(key),
        }
    }
    let mut out = Vec::new();
    for (ks, (ins, del)) in by_space {
        for chunk in ins.chunks(ROWS) {
            let (keys, values) = chunk.iter().copied().unzip();
            out.push(Stmt::Upsert(ks, keys, values));
        }
        for chunk in del.chunks(ROWS) {
            out.push(Stmt::Delete(ks, chunk.to_vec()));
        }
    }
    out
}

/// How many statements [`write()`] runs for `writes` (one needs no explicit transaction).
pub(super) fn statement_count(writes: &NetWrites) -> usize {
    statements(writes).len()
}

/// Runs the statements of `writes` through `s` (inside a transaction when more than one).
pub(super) fn write<C: GenericClient>(
    s: &mut Session<'_, C>,
    writes: &NetWrites,
) -> Result<(), postgres::Error> {
    for stmt in statements(writes) {
        match stmt {
            Stmt::Upsert(ks, keys, values) => {
                let sql = format!(
                    "INSERT INTO {} (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    table(ks)
                );
                s.execute(&sql, &[&keys, &values])?;
            }
            Stmt::Delete(ks, keys) => {
                let sql = format!("DELETE FROM {} WHERE key = ANY($1::bytea[])", table(ks));
                s.execute(&sql, &[&keys])?;
            }
        }
    }
    Ok(())
}
