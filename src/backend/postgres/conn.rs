//! The one connection of an engine, its prepared statements, and the retry of statements
//! that lost a serialization race.
//!
//! One `postgres::Client` behind a mutex: every call of the engine (and each chunk of an
//! iterator) takes it for its statements, a transaction for its whole run. Calls of one
//! process are therefore serial on the database side; concurrency between processes is
//! PostgreSQL's. A pool of connections is a later step.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{GenericClient, NoTls, Row, Statement};

use super::error::{is_conflict, storage};
use crate::database_url::DatabaseUrl;
use crate::error::{Error, Result};

/// Attempts of a statement or transaction that keeps losing serialization races before the
/// engine gives up with an error.
pub(super) const MAX_ATTEMPTS: u32 = 1000;

/// Prepared statements by SQL text (a statement is prepared once per connection).
pub(super) type Statements = HashMap<String, Statement>;

/// The connection and its prepared statements.
pub(super) struct Conn {
    pub(super) client: postgres::Client,
    pub(super) statements: Statements,
}

/// Statements through a client (the connection, or a transaction on it), prepared once.
pub(super) struct Session<'a, C: GenericClient> {
    pub(super) client: &'a mut C,
    pub(super) statements: &'a mut Statements,
}

impl<C: GenericClient> Session<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.query(&s, params)
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.execute(&s, params)
    }
}

impl Conn {
    pub(super) fn session(&mut self) -> Session<'_, postgres::Client> {
        Session {
            client: &mut self.client,
            statements: &mut self.statements,
        }
    }
}

/// Connects and sets the session up: every transaction SERIALIZABLE (see the engine docs),
/// and commits durable when they return (`synchronous_commit` raised from `off` to `on`;
/// stronger server settings such as `remote_apply` are kept).
pub(super) fn connect(url: &DatabaseUrl) -> Result<Conn> {
    let fail = |e: postgres::Error| storage(&format!("connect to {}", url.redacted()), &e);
    let mut client = postgres::Client::connect(url.secret(), NoTls).map_err(fail)?;
    client
        .batch_execute("SET default_transaction_isolation = 'serializable'")
        .map_err(fail)?;
    let row = client
        .query_one("SELECT current_setting('synchronous_commit')", &[])
        .map_err(fail)?;
    let sync: String = row.try_get(0).map_err(fail)?;
    if sync == "off" {
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(fail)?;
    }
    Ok(Conn {
        client,
        statements: Statements::new(),
    })
}

/// The connection of one engine, shared with its iterators.
pub(super) struct Shared {
    pub(super) url: DatabaseUrl,
    conn: Mutex<Conn>,
}

impl Shared {
    pub(super) fn new(url: DatabaseUrl, conn: Conn) -> Self {
        Shared {
            url,
            conn: Mutex::new(conn),
        }
    }

    /// The connection, connected again first if the server closed it (a restart): what ran
    /// before either committed or not, as PostgreSQL says; nothing is replayed.
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Conn>> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if conn.client.is_closed() {
            *conn = connect(&self.url)?;
        }
        Ok(conn)
    }

    /// Runs `f` on the connection (statements in autocommit, each its own serializable
    /// transaction), again after a serialization failure.
    pub(super) fn run<T>(
        &self,
        action: &str,
        mut f: impl FnMut(&mut Session<'_, postgres::Client>) -> Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut conn = self.lock()?;
        let mut attempt = 0;
        loop {
            match f(&mut conn.session()) {
                Ok(t) => return Ok(t),
                Err(e) if is_conflict(&e) && attempt < MAX_ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt);
                }
                Err(e) => return Err(storage(action, &e)),
            }
        }
    }
}

/// A short random pause before attempt `attempt` runs again, growing with it (at most about
/// 10 ms), so that two processes that keep colliding drift apart.
pub(super) fn backoff(attempt: u32) {
    let cap = u64::from(attempt.min(10)) * 1000;
    std::thread::sleep(Duration::from_micros(rand::random_range(0..=cap)));
}

/// The error after [`MAX_ATTEMPTS`] lost races.
pub(super) fn gave_up(action: &str) -> Error {
    Error::Storage(format!(
        "PostgreSQL: {action}: still losing serialization races after {MAX_ATTEMPTS} attempts"
    ))
}
