//! The store-wide erase lock across processes: a PostgreSQL session-level advisory lock,
//! taken shared by every writer that adds owner data ([`crate::Store`]'s `writer`) and
//! exclusive by an erasure, from before it collects keys until its sweep has ended.
//!
//! Why a lock and not SERIALIZABLE alone: a writer checks that the account exists and then
//! writes, in separate statements (and a process caches what it checked), so no one
//! transaction spans the check and the write that an erasure could conflict with. The lock
//! makes that pair exclusive with an erasure in another process, as the store's in-process
//! `RwLock` does between threads. Why the exclusive hold lasts through the sweep: other
//! processes do not see the erasing process's tombstones, so until the sweep has deleted
//! the subject's ranges no other process may write (into them).
//!
//! Session-level advisory locks are counted per connection and never conflict with the
//! same connection's own, so the threads of one process (one connection) share the hold and
//! the in-process lock orders them; the server releases everything when the connection
//! closes (a process killed mid-erasure holds nothing).

use std::sync::Arc;

use super::conn::Shared;
use crate::backend::Held;
use crate::error::Result;

/// The advisory lock key ("jidseras" in ASCII).
const ERASE_LOCK: i64 = 0x6a69_6473_6572_6173;

/// One hold of the lock, released when dropped.
pub(super) struct EraseLock {
    shared: Arc<Shared>,
    exclusive: bool,
}

impl EraseLock {
    /// Waits for and takes the lock (the connection waits with it: this process's other
    /// calls wait too).
    pub(super) fn take(shared: &Arc<Shared>, exclusive: bool) -> Result<Self> {
        let f = if exclusive {
            "pg_advisory_lock"
        } else {
            "pg_advisory_lock_shared"
        };
        let sql = format!("SELECT {f}($1)");
        shared.run("take the erase lock", |s| s.execute(&sql, &[&ERASE_LOCK]))?;
        Ok(EraseLock {
            shared: Arc::clone(shared),
            exclusive,
        })
    }
}

impl Held for EraseLock {}

impl Drop for EraseLock {
    fn drop(&mut self) {
        let f = if self.exclusive {
            "pg_advisory_unlock"
        } else {
            "pg_advisory_unlock_shared"
        };
        let sql = format!("SELECT {f}($1)");
        // On failure the server keeps the hold until the connection closes; a connection
        // opened again after a failure holds nothing.
        let _ = self.shared.run("release the erase lock", |s| {
            s.execute(&sql, &[&ERASE_LOCK])
        });
    }
}
