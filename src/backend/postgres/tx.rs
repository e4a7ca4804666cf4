//! [`Engine::transaction`](crate::backend::Engine::transaction) on PostgreSQL: the body runs
//! in one SERIALIZABLE transaction and runs again after a serialization failure.
//!
//! Why SERIALIZABLE rather than REPEATABLE READ with row locks: a body often reads a key that
//! is absent and then creates it (an account, a roster version), and an absent row cannot be
//! locked. Serializable snapshot isolation also tracks those reads (predicate locks on the
//! index), so two processes racing to create the same key, or any read-then-write race, end
//! with one commit and one SQLSTATE 40001, and the loser's body runs again on the new state:
//! exactly [`TxError::Conflict`]'s contract. Reads go to the server inside the transaction;
//! writes are staged (reads see them) and sent at commit as batched statements
//! ([`super::write`]).

use std::cell::{Cell, RefCell};

use postgres::{IsolationLevel, Transaction};

use super::conn::{Conn, MAX_ATTEMPTS, Session, backoff, gave_up};
use super::error::{is_conflict, storage};
use super::schema::table;
use super::write::{self, NetWrites};
use crate::backend::{Bytes, TxBody, TxError, TxResult, TxView};
use crate::error::{Error, Result};
use crate::keys::Keyspace;

/// How a statement inside the body failed (the transaction is then unusable, whatever the
/// body does with the error).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failed {
    No,
    Conflict,
    Other,
}

/// The view of one attempt.
struct PgTx<'a, 's, 't> {
    tx: RefCell<&'a mut Transaction<'t>>,
    statements: RefCell<&'s mut super::conn::Statements>,
    spaces: &'a [Keyspace],
    staged: RefCell<NetWrites>,
    failed: Cell<Failed>,
}

impl PgTx<'_, '_, '_> {
    fn check(&self, ks: Keyspace) -> TxResult<()> {
        if self.spaces.contains(&ks) {
            Ok(())
        } else {
            Err(TxError::Abort(Error::InvalidInput(format!(
                "internal: keyspace {} not part of this transaction",
                ks.name()
            ))))
        }
    }
}

impl TxView for PgTx<'_, '_, '_> {
    fn get(&self, ks: Keyspace, key: &[u8]) -> TxResult<Option<Bytes>> {
        self.check(ks)?;
        if let Some(v) = self.staged.borrow().get(&(ks, key.to_vec())) {
            return Ok(v.as_deref().map(Bytes::from));
        }
        let mut tx = self.tx.borrow_mut();
        let mut statements = self.statements.borrow_mut();
        let mut s = Session {
            client: &mut **tx,
            statements: &mut statements,
        };
        let sql = format!("SELECT value FROM {} WHERE key = $1", table(ks));
        match s.query(&sql, &[&key]) {
            Ok(rows) => match rows.first() {
                None => Ok(None),
                Some(row) => {
                    let v: Vec<u8> = row
                        .try_get(0)
                        .map_err(|e| TxError::Abort(storage("read in a transaction", &e)))?;
                    Ok(Some(Bytes::from(v)))
                }
            },
            Err(e) if is_conflict(&e) => {
                self.failed.set(Failed::Conflict);
                Err(TxError::Conflict)
            }
            Err(e) => {
                self.failed.set(Failed::Other);
                Err(TxError::Abort(storage("read in a transaction", &e)))
            }
        }
    }

    fn insert(&self, ks: Keyspace, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.check(ks)?;
        self.staged
            .borrow_mut()
            .insert((ks, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn remove(&self, ks: Keyspace, key: &[u8]) -> TxResult<()> {
        self.check(ks)?;
        self.staged.borrow_mut().insert((ks, key.to_vec()), None);
        Ok(())
    }
}

/// How one attempt ended.
enum Attempt {
    Committed,
    Again,
}

/// Runs `body` over `spaces` until an attempt commits or aborts.
pub(super) fn run(conn: &mut Conn, spaces: &[Keyspace], body: &TxBody<'_>) -> Result<()> {
    for attempt in 1..=MAX_ATTEMPTS {
        match once(conn, spaces, body)? {
            Attempt::Committed => return Ok(()),
            Attempt::Again => backoff(attempt),
        }
    }
    Err(gave_up("commit a transaction"))
}

fn once(conn: &mut Conn, spaces: &[Keyspace], body: &TxBody<'_>) -> Result<Attempt> {
    let action = "commit a transaction";
    let Conn { client, statements } = conn;
    let again = |e: postgres::Error| {
        if is_conflict(&e) {
            Ok(Attempt::Again)
        } else {
            Err(storage(action, &e))
        }
    };
    let mut tx = match client
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
    {
        Ok(tx) => tx,
        Err(e) => return again(e),
    };
    let view = PgTx {
        tx: RefCell::new(&mut tx),
        statements: RefCell::new(statements),
        spaces,
        staged: RefCell::new(NetWrites::new()),
        failed: Cell::new(Failed::No),
    };
    let res = body(&view);
    // Taking the view apart ends its borrow of `tx`.
    let PgTx {
        statements,
        staged,
        failed,
        ..
    } = view;
    let (statements, staged, failed) = (statements.into_inner(), staged.into_inner(), failed.get());
    // Dropping `tx` without commit rolls it back.
    match (res, failed) {
        (Err(TxError::Abort(e)), _) => Err(e),
        // A statement failed and the body carried on: PostgreSQL would turn the COMMIT
        // into a ROLLBACK, silently dropping the body's writes.
        (_, Failed::Conflict) | (Err(TxError::Conflict), _) => Ok(Attempt::Again),
        (Ok(()), Failed::Other) => Err(Error::Storage(
            "PostgreSQL: a statement in a transaction failed and the transaction was rolled back"
                .into(),
        )),
        (Ok(()), Failed::No) => {
            let mut s = Session {
                client: &mut tx,
                statements,
            };
            if let Err(e) = write::write(&mut s, &staged) {
                return again(e);
            }
            match tx.commit() {
                Ok(()) => Ok(Attempt::Committed),
                Err(e) => again(e),
            }
        }
    }
}
