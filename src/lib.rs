//! jidstore: an embedded store for the data an XMPP server keeps about its users, on sled,
//! with a GDPR layer built in.
//!
//! Each XMPP extension owns its keyspaces; everything held about a person is found by a
//! prefix scan over owner-keyed keyspaces and by-owner indexes, so retrieval
//! ([`gdpr::retrieve`]) and erasure ([`gdpr::remove`]) reach every keyspace on disk.
//!
//! ```
//! use jidstore::{BareJid, Config};
//! let dir = tempfile::tempdir()?;
//! let store = Config::new(dir.path().join("data")).scram_iterations(4096).open()?;
//! let alice = BareJid::parse("Alice@Example.org")?;
//! store.accounts().create(&alice, "correct horse")?;
//! assert!(store.accounts().check_password(&alice, "correct horse")?);
//! store.vcard().set(&alice, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")?;
//!
//! let receipt = jidstore::gdpr::remove(&store, &alice)?;
//! assert_eq!(receipt.removed.get("vcard"), Some(&1));
//! assert!(!store.accounts().exists(&alice)?);
//! # Ok::<(), jidstore::Error>(())
//! ```

#[cfg(all(unix, feature = "cli"))]
pub mod admin;
mod appenders;
mod backend;
pub mod cleanup;
mod codec;
#[cfg(feature = "cli")]
mod command;
mod config;
mod database_url;
mod error;
pub mod ext;
pub mod forensic;
pub mod gdpr;
#[cfg(test)]
mod golden;
mod jid;
mod keys;
pub mod maintenance;
mod meta;
pub mod migrate;
mod output;
mod owner;
mod paths;
pub mod pie;
pub mod progress;
mod restore;
mod sample;
mod stats;
mod store;
#[cfg(feature = "proptest")]
pub mod testing;
mod time;
pub mod vacuum;
pub mod verify;
mod witness;
pub mod xml;

/// Compiles and runs the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use config::{Config, DEFAULT_CACHE_BYTES, DEFAULT_SCRAM_ITERATIONS};
pub use error::{Error, Result};
pub use jid::{BareJid, Jid};
pub use stats::{KeyspaceStats, Stats, stats};
pub use store::Store;
pub use time::Timestamp;
pub use verify::{Problem, VerifyReport, verify};

/// jidstore's own binary, tests, benchmarks and fuzz targets reach the internals they need
/// through here: key layouts, value encodings, raw keyspace access, the CLI's commands.
/// **Not part of the public API**: anything in it may change in any release.
#[doc(hidden)]
pub mod __internal {
    pub use crate::backend::{Bytes, KvIter, Tree};
    pub use crate::verify::check_entry;

    /// The id of `owner`'s 1-1 archive, the prefix of its raw `mam_pm` keys (tests that look
    /// at raw archive keys); `None` without an account.
    pub fn archive_id(store: &crate::Store, owner: &crate::BareJid) -> crate::Result<Option<u64>> {
        store.accounts().archive_id(owner)
    }

    /// The keyspaces of the data class called `name` (`"mam"`, `"pubsub"`, ...); panics for
    /// an unknown name.
    pub fn class_keyspaces(name: &str) -> &'static [keys::Keyspace] {
        crate::ext::keyspaces_of(name)
    }

    /// The CLI: argument types and [`run`](command::run).
    #[cfg(feature = "cli")]
    pub mod command {
        pub use crate::command::*;
    }
    /// The "a little of every class" deployment of `jidstore demo` and the tests.
    pub mod sample {
        pub use crate::sample::*;
    }
    /// Key layouts ([`Keyspace`](keys::Keyspace) for `Store::raw_tree`).
    pub mod keys {
        pub use crate::keys::*;
    }
    /// Value encodings.
    pub mod codec {
        pub use crate::codec::*;
    }
}
