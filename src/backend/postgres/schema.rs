//! The tables: one per keyspace, `jidstore_<keyspace>` (`key bytea PRIMARY KEY, value bytea
//! NOT NULL`), and the id sequence `jidstore_ids`, all in the connection's current schema.
//!
//! Table names come from [`Keyspace::name`] (static, lowercase ASCII and `_`), never from
//! input, so formatting them into SQL is safe.

use std::fmt::Write as _;

use postgres::GenericClient;

use super::error::storage;
use crate::error::{Error, Result};
use crate::keys::Keyspace;

/// Prefix of every table and sequence jidstore creates.
const PREFIX: &str = "jidstore_";

/// The id sequence ([`crate::backend::Engine::generate_id`]). Starts at 0 like sled's ids;
/// `CACHE 1` (the default) so that ids from several connections still increase in the
/// order they are taken.
pub(super) const SEQUENCE: &str = "jidstore_ids";

/// Advisory lock key held while creating the schema, so two processes opening a fresh
/// database at once do not race on `CREATE TABLE` ("jidstore" in ASCII).
const CREATE_LOCK: i64 = 0x6a69_6473_746f_7265;

/// The table holding `ks`.
pub(super) fn table(ks: Keyspace) -> String {
    format!("{PREFIX}{}", ks.name())
}

/// Creates every missing table and the sequence, in one transaction.
pub(super) fn create(client: &mut postgres::Client) -> Result<()> {
    let fail = |e: postgres::Error| storage("create the tables", &e);
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
        .map_err(fail)?;
    let mut sql = String::new();
    for ks in Keyspace::ALL {
        let _ = write!(
            sql,
            "CREATE TABLE IF NOT EXISTS {} (key bytea PRIMARY KEY, value bytea NOT NULL);",
            table(*ks)
        );
    }
    let _ = write!(
        sql,
        "CREATE SEQUENCE IF NOT EXISTS {SEQUENCE} AS bigint MINVALUE 0 START 0;"
    );
    tx.batch_execute(&sql).map_err(fail)?;
    tx.commit().map_err(fail)
}

/// The keyspace names of every `jidstore_` table in the current schema, including ones this
/// build does not know.
pub(super) fn keyspace_names(client: &mut impl GenericClient) -> Result<Vec<Vec<u8>>> {
    let rows = client
        .query(
            "SELECT tablename::text FROM pg_tables \
             WHERE schemaname = current_schema() AND starts_with(tablename, $1) \
             ORDER BY tablename",
            &[&PREFIX],
        )
        .map_err(|e| storage("list the tables", &e))?;
    rows.iter()
        .map(|r| {
            let name: String = r.try_get(0).map_err(|e| storage("list the tables", &e))?;
            Ok(name
                .strip_prefix(PREFIX)
                .unwrap_or(&name)
                .as_bytes()
                .to_vec())
        })
        .collect()
}

/// Bytes of every `jidstore_` table, with its indexes and TOAST, and the sequence.
pub(super) fn size(client: &mut impl GenericClient) -> Result<u64> {
    let row = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'S') \
             AND starts_with(c.relname::text, $1)",
            &[&PREFIX],
        )
        .map_err(|e| storage("measure the tables", &e))?;
    let n: i64 = row
        .try_get(0)
        .map_err(|e| storage("measure the tables", &e))?;
    u64::try_from(n).map_err(|_| Error::Storage("PostgreSQL: a negative table size".into()))
}

/// `VACUUM` (with `full`: `VACUUM (FULL)`) of every `jidstore_` table of the current schema,
/// as one statement (VACUUM cannot run in a transaction block, and one statement of several
/// statements would be one); returns how many tables.
///
/// Plain VACUUM removes dead rows' tuples and index entries and makes their space reusable,
/// without a lock that blocks reads or writes; the pages it changed reach the table's files
/// at the next checkpoint. `FULL` writes each table (and its indexes and TOAST) into new
/// files and deletes the old ones, holding an ACCESS EXCLUSIVE lock on each table while it
/// is rewritten.
pub(super) fn vacuum(client: &mut postgres::Client, full: bool) -> Result<usize> {
    let names = keyspace_names(client)?;
    if names.is_empty() {
        return Ok(0);
    }
    let tables: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "\"{PREFIX}{}\"",
                String::from_utf8_lossy(n).replace('"', "\"\"")
            )
        })
        .collect();
    let sql = format!(
        "VACUUM {}{}",
        if full { "(FULL) " } else { "" },
        tables.join(", ")
    );
    client
        .batch_execute(&sql)
        .map_err(|e| storage("vacuum the tables", &e))?;
    Ok(tables.len())
}
