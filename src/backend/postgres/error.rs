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
    let what = if let Some(db) = e.as_db_error() {
        format!("{} (SQLSTATE {})", db.message(), db.code().code())
    } else {
        // Connection and protocol errors: the client's own text and its cause (an I/O
        // error, an authentication failure), which name no data.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    };
    Error::Storage(one_line(&format!("PostgreSQL: {action}: {what}")))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
