//! PostgreSQL errors as jidstore errors: one line, no third-party type, no key or value.
//!
//! Only the server's primary message and SQLSTATE are kept: PostgreSQL's `DETAIL` can quote
//! row contents (`Key (key)=(...) already exists`), which are personal data.

use postgres::error::SqlState;

use crate::error::Error;

/// Whether the statement lost a serialization race and the transaction should run again:
/// SQLSTATE 40001 (serialization failure) or 40P01 (deadlock detected).
pub(super) fn is_conflict(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// `e` as [`Error::Storage`] (or [`Error::StorageFull`] for SQLSTATE 53100), saying what was
/// being done.
pub(super) fn storage(action: &str, e: &postgres::Error) -> Error {
    if e.code() == Some(&SqlState::DISK_FULL) {
        return Error::StorageFull { path: None };
    }
    let what = match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        // Connection and protocol errors: the client's own text names no data.
        None => e.to_string(),
    };
    Error::Storage(one_line(&format!("PostgreSQL: {action}: {what}")))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
