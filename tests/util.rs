//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "not every test module uses every helper")]

use jidstore::{BareJid, Config, Jid, Store};
use tempfile::TempDir;

/// Test result alias: tests use `?` on jidstore and I/O errors alike.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh store in a temporary directory (kept alive by the returned `TempDir`).
/// SCRAM iterations are low so tests stay fast.
pub fn store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    (dir, store)
}

/// Opens (or reopens) the store inside `dir`.
pub fn open(dir: &TempDir) -> Store {
    Config::new(dir.path().join("data"))
        .scram_iterations(16)
        .open()
        .expect("open store")
}

/// Drops the store and opens it again from disk.
pub fn reopen(dir: &TempDir, store: Store) -> Store {
    store.flush().expect("flush");
    drop(store);
    open(dir)
}

/// Parses a bare JID.
pub fn bare(s: &str) -> BareJid {
    BareJid::parse(s).expect("valid bare JID")
}

/// Parses a bare or full JID.
pub fn full(s: &str) -> Jid {
    Jid::parse(s).expect("valid JID")
}

/// Creates an account and returns its JID.
pub fn user(store: &Store, s: &str) -> BareJid {
    let j = bare(s);
    store
        .accounts()
        .create(&j, "password")
        .expect("create account");
    j
}
