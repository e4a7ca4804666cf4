//! The PostgreSQL engine: the only module that names `postgres`. Selected by a connection
//! URL ([`Config::database`](crate::Config::database)).
//!
//! **Layout: one table per keyspace**, `jidstore_<keyspace>` with `key bytea PRIMARY KEY,
//! value bytea NOT NULL` ([`schema`]), rather than one table with a keyspace column: each
//! keyspace is its own B-tree, so a range read touches only its own index and a prefix
//! never needs a compound key; an erasure's sweep bloats, and `VACUUM` cleans, only the
//! tables it deletes from; sizes and keyspace names come straight from the catalog, and
//! an operator sees `jidstore_mam_pm` in `psql`. `bytea` compares as unsigned bytes (memcmp,
//! then length), so PostgreSQL's order is the contract's.
//!
//! How the contracts of [`crate::backend`] hold here:
//! - **Ordering**: `ORDER BY key` on the primary key; ranges are read in chunks of at most
//!   [`cursor::MAX_CHUNK`] rows with keyset pagination from either end ([`cursor`]).
//! - **Atomicity**: a [`WriteBatch`] is one transaction of batched statements ([`mod@write`]);
//!   single-key operations are one statement each.
//! - **Isolation**: every transaction of the session is SERIALIZABLE (set at connect), the
//!   engine's own and each autocommit statement, and each runs again after a serialization
//!   failure or deadlock (SQLSTATE 40001/40P01); why SERIALIZABLE is in [`tx`]. This holds
//!   between processes sharing the database, not only between threads.
//! - **Durability**: a commit that returned is durable (PostgreSQL writes and flushes its
//!   WAL at commit; the session raises `synchronous_commit` from `off` to `on`). So
//!   [`Engine::flush`] has nothing to do and a [`Durability::Flushed`] transaction is
//!   durable when it returns, as every other; PostgreSQL's WAL replay never recovers to a
//!   state before a commit it acknowledged, which is what sled's flush witness checks for.
//! - **Erasure across processes**: writers of owner data and erasures also take an advisory
//!   lock, shared and exclusive ([`lock`]), so that a write from another process can never
//!   land between an erasure's key collection and the end of its sweep.
//! - **Ids**: a sequence (`nextval` is never rolled back and never repeats, also across
//!   restarts and between connections).
//!
//! Errors become [`Error::Storage`] with PostgreSQL's one-line message and SQLSTATE, never
//! row contents ([`error`]). No free-space reserve: the database's disk is the server's.

mod conn;
mod cursor;
mod error;
mod lock;
mod schema;
mod tx;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use self::conn::Shared;
use self::error::storage;
use self::schema::table;
use super::{Bytes, Changed, Durability, Engine, Held, KeyRange, KvIter, TxBody, WriteBatch};
use crate::database_url::DatabaseUrl;
use crate::error::{Error, Result};
use crate::keys::Keyspace;

/// A store in a PostgreSQL database.
pub(crate) struct PgEngine {
    shared: Arc<Shared>,
}

impl PgEngine {
    /// Connects and creates the tables that are missing; with `must_exist`, refuses a
    /// database where no store was created instead.
    pub(crate) fn open(url: &DatabaseUrl, must_exist: bool) -> Result<PgEngine> {
        let mut conn = conn::connect(url)?;
        if must_exist {
            let row = conn
                .client
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&table(Keyspace::Meta)],
                )
                .map_err(|e| storage("look for the store", &e))?;
            let exists: bool = row
                .try_get(0)
                .map_err(|e| storage("look for the store", &e))?;
            if !exists {
                return Err(Error::NotAStore {
                    path: PathBuf::from(url.redacted()),
                    reason: "no store has been created in this database".into(),
                });
            }
        }
        schema::create(&mut conn.client)?;
        Ok(PgEngine {
            shared: Arc::new(Shared::new(url.clone(), conn)),
        })
    }
}

/// Keys per query of [`PgEngine::get_many`]: a long list is read in several queries.
const GET_MANY_CHUNK: usize = 1000;

fn value(rows: &[postgres::Row], action: &str) -> Result<Option<Bytes>> {
    match rows.first() {
        None => Ok(None),
        Some(row) => {
            let v: Vec<u8> = row.try_get(0).map_err(|e| storage(action, &e))?;
            Ok(Some(Bytes::from(v)))
        }
    }
}

impl Engine for PgEngine {
    fn get(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Bytes>> {
        let sql = format!("SELECT value FROM {} WHERE key = $1", table(ks));
        let action = format!("read keyspace {}", ks.name());
        let rows = self.shared.run(&action, |s| s.query(&sql, &[&key]))?;
        value(&rows, &action)
    }

    fn get_many(&self, ks: Keyspace, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>> {
        let sql = format!("SELECT key, value FROM {} WHERE key = ANY($1)", table(ks));
        let action = format!("read keyspace {}", ks.name());
        let mut found: HashMap<Vec<u8>, Bytes> = HashMap::new();
        // One query per chunk: the rows come back in no order and once per distinct key.
        for chunk in keys.chunks(GET_MANY_CHUNK) {
            let rows = self.shared.run(&action, |s| s.query(&sql, &[&chunk]))?;
            for row in &rows {
                let k: Vec<u8> = row.try_get(0).map_err(|e| storage(&action, &e))?;
                let v: Vec<u8> = row.try_get(1).map_err(|e| storage(&action, &e))?;
                found.insert(k, Bytes::from(v));
            }
        }
        Ok(keys.iter().map(|k| found.get(*k).cloned()).collect())
    }

    fn insert(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> Result<Option<Bytes>> {
        // One statement: the row locked and read, then overwritten or created. The CTEs
        // share one snapshot; the main query runs before the INSERT's CTE completes, and a
        // row another process creates or changes meanwhile fails the statement with 40001
        // (SERIALIZABLE), which runs it again.
        let sql = format!(
            "WITH old AS (SELECT value FROM {t} WHERE key = $1 FOR UPDATE), \
             new AS (INSERT INTO {t} (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value) \
             SELECT value FROM old",
            t = table(ks)
        );
        let action = format!("write keyspace {}", ks.name());
        let rows = self
            .shared
            .run(&action, |s| s.query(&sql, &[&key, &value]))?;
        self::value(&rows, &action)
    }

    fn remove(&self, ks: Keyspace, key: &[u8]) -> Result<Option<Bytes>> {
        let sql = format!("DELETE FROM {} WHERE key = $1 RETURNING value", table(ks));
        let action = format!("write keyspace {}", ks.name());
        let rows = self.shared.run(&action, |s| s.query(&sql, &[&key]))?;
        value(&rows, &action)
    }

    fn compare_and_swap(
        &self,
        ks: Keyspace,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), Changed>> {
        let t = table(ks);
        let action = format!("write keyspace {}", ks.name());
        let select = format!("SELECT value FROM {t} WHERE key = $1");
        // One conditional statement, which changes one row or none; on none, what is there.
        // Both run in one serializable transaction, so "none changed" and the value read
        // agree.
        let sql = match (old, new) {
            (Some(_), Some(_)) => {
                format!("UPDATE {t} SET value = $3 WHERE key = $1 AND value = $2")
            }
            (Some(_), None) => format!("DELETE FROM {t} WHERE key = $1 AND value = $2"),
            (None, Some(_)) => {
                format!("INSERT INTO {t} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            }
            (None, None) => String::new(),
        };
        let mut conn = self.shared.lock()?;
        let mut attempt = 0;
        loop {
            let res = (|| {
                let mut tx = conn
                    .client
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::Serializable)
                    .start()?;
                let n = match (old, new) {
                    (None, None) => 0,
                    (o, n) => {
                        let stmt = tx.prepare(&sql)?;
                        // Each form binds only the parameters it names.
                        let (o, n) = (o.unwrap_or_default(), n.unwrap_or_default());
                        match (old.is_some(), new.is_some()) {
                            (true, true) => tx.execute(&stmt, &[&key, &o, &n])?,
                            (true, false) => tx.execute(&stmt, &[&key, &o])?,
                            _ => tx.execute(&stmt, &[&key, &n])?,
                        }
                    }
                };
                let out = if n == 1 {
                    Ok(())
                } else {
                    let rows = tx.query(&select, &[&key])?;
                    let current: Option<Vec<u8>> = match rows.first() {
                        Some(r) => Some(r.try_get(0)?),
                        None => None,
                    };
                    if current.as_deref() == old {
                        Ok(())
                    } else {
                        Err(Changed {
                            current: current.map(Bytes::from),
                        })
                    }
                };
                tx.commit()?;
                Ok::<_, postgres::Error>(out)
            })();
            match res {
                Ok(out) => return Ok(out),
                Err(e) if error::is_conflict(&e) && attempt < conn::MAX_ATTEMPTS => {
                    attempt += 1;
                    conn::backoff(attempt);
                }
                Err(e) => return Err(storage(&action, &e)),
            }
        }
    }

    fn range(&self, ks: Keyspace, range: KeyRange) -> KvIter {
        Box::new(cursor::Cursor::new(Arc::clone(&self.shared), ks, range))
    }

    fn scan(&self, ks: Keyspace, range: KeyRange) -> KvIter {
        Box::new(cursor::Cursor::new(Arc::clone(&self.shared), ks, range))
    }

    fn apply(&self, batch: &WriteBatch) -> Result<()> {
        let writes = write::net(batch);
        let action = "apply a batch";
        match write::statement_count(&writes) {
            0 => Ok(()),
            // One statement is atomic by itself: no BEGIN/COMMIT round trips.
            1 => self.shared.run(action, |s| write::write(s, &writes)),
            _ => self.transaction(&batch.keyspaces(), Durability::Buffered, &|view| {
                batch.replay(view)
            }),
        }
    }

    fn transaction(
        &self,
        spaces: &[Keyspace],
        _durability: Durability,
        body: &TxBody<'_>,
    ) -> Result<()> {
        // Every commit is durable when it returns (module docs): both durabilities are one.
        let mut conn = self.shared.lock()?;
        tx::run(&mut conn, spaces, body)
    }

    fn generate_id(&self) -> Result<u64> {
        let sql = format!("SELECT nextval('{}')", schema::SEQUENCE);
        let rows = self.shared.run("take an id", |s| s.query(&sql, &[]))?;
        let id: i64 = rows
            .first()
            .ok_or_else(|| Error::Storage("PostgreSQL: take an id: no row".into()))?
            .try_get(0)
            .map_err(|e| storage("take an id", &e))?;
        u64::try_from(id).map_err(|_| Error::Storage("PostgreSQL: a negative id".into()))
    }

    fn advance_ids(&self, floor: u64) -> Result<()> {
        let floor = i64::try_from(floor).map_err(|_| {
            Error::InvalidInput(format!("id {floor} is beyond PostgreSQL's bigint"))
        })?;
        // The next nextval returns the greater of `floor` and what it would have returned.
        let sql = format!(
            "SELECT setval('{s}', greatest($1, (SELECT CASE WHEN is_called THEN last_value + 1 \
             ELSE last_value END FROM {s})), false)",
            s = schema::SEQUENCE
        );
        self.shared
            .run("advance the id sequence", |s| s.execute(&sql, &[&floor]))
            .map(drop)
    }

    fn clear(&self, ks: Keyspace) -> Result<()> {
        // One statement, however large the table: no dead tuples, the files start over.
        let sql = format!("TRUNCATE {}", table(ks));
        let action = format!("empty keyspace {}", ks.name());
        self.shared
            .run(&action, |s| s.client.batch_execute(&sql))
            .map(drop)
    }

    fn vacuum(&self, full: bool) -> Result<usize> {
        let mut conn = self.shared.lock()?;
        schema::vacuum(&mut conn.client, full)
    }

    fn flush(&self) -> Result<()> {
        // Every commit that returned is durable already (module docs).
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64> {
        let mut conn = self.shared.lock()?;
        schema::size(&mut conn.client)
    }

    fn keyspace_names(&self) -> Result<Vec<Vec<u8>>> {
        let mut conn = self.shared.lock()?;
        schema::keyspace_names(&mut conn.client)
    }

    fn check_space(&self, _logical: u64) -> Result<()> {
        Ok(())
    }

    fn shared_by_processes(&self) -> bool {
        true
    }

    fn erase_lock(&self, exclusive: bool) -> Result<Option<Box<dyn Held>>> {
        Ok(Some(Box::new(lock::EraseLock::take(
            &self.shared,
            exclusive,
        )?)))
    }
}
