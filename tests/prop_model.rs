//! Model-based property test, after sled's `prop_tree_matches_btreemap`: random operation
//! sequences (with reopens and erasures) over users whose JIDs share prefixes and differ in
//! case, run against the store and an in-memory model.
//!
//! After every sequence and every reopen: the typed APIs show exactly what the model holds,
//! `verify` is clean (records and indexes match both ways), every export has the row counts
//! the model predicts and is byte-identical when taken twice with a fixed timestamp. After
//! every erasure: the subject's export holds only what DESIGN.md keeps, and every other
//! user's export is byte-identical to before, except users the model says are touched
//! (they subscribed or published on the subject's PEP and push nodes, which go).
//!
//! The model, its operations and every comparison are `jidstore::testing::model`, shared
//! with the model fuzz target (`fuzz/fuzz_targets/model.rs`): the users are
//! `testing::LOOKALIKES` and the stanzas and vCards carry `testing::TRICKY_PIECES`. A second
//! property runs `testing::check_gdpr` on generated whole deployments (`testing::deployment`).
//!
//! Both properties also run on the in-memory engine and on PostgreSQL (a fresh database per
//! case on the throwaway cluster of `tests/pg`; `JIDSTORE_SKIP_PG=1` skips those).
//!
//! `PROPTEST_CASES` sets the number of cases (default 256 in release, about 5 s; 64 in debug
//! builds; the deployment property runs a quarter as many, the PostgreSQL properties an
//! eighth).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a failed expectation is a failed test"
)]

#[path = "util.rs"]
mod util;

#[cfg(feature = "postgres")]
#[path = "pg/mod.rs"]
mod pg;

use std::collections::BTreeSet;

use jidstore::Store;
use jidstore::testing::{self, model, model::Op};
use proptest::prelude::*;

/// How many users the model has.
const N: usize = model::USERS.len();

/// Which engine a run's store is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    /// sled, in a temporary directory.
    Sled,
    /// The in-memory engine: a reopen is not possible, so `Reopen` only checks.
    Memory,
    /// PostgreSQL, a fresh database on the test cluster: `Reopen` connects again.
    #[cfg(feature = "postgres")]
    Postgres,
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        // Unoptimised builds derive SCRAM verifiers (PBKDF2, 10k rounds) some 30x slower:
        // a quarter of the cases keeps `cargo test` in minutes; CI runs the release build.
        .unwrap_or(if cfg!(debug_assertions) { 64 } else { 256 });
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn store_matches_model(
        created in proptest::collection::btree_set(0..N, 0..N),
        ops in proptest::collection::vec(model::op(), 1..40),
    ) {
        model_run(Engine::Sled, &created, &ops);
    }

    /// The same model against the in-memory engine ([`jidstore::Config::in_memory`]).
    #[test]
    fn memory_store_matches_model(
        created in proptest::collection::btree_set(0..N, 0..N),
        ops in proptest::collection::vec(model::op(), 1..40),
    ) {
        model_run(Engine::Memory, &created, &ops);
    }
}

/// A store on the PostgreSQL database at `url` (created or reopened).
#[cfg(feature = "postgres")]
fn open_database(url: &str) -> Store {
    jidstore::Config::database(url)
        .scram_iterations(16)
        .open()
        .expect("open the store on PostgreSQL")
}

#[cfg(feature = "postgres")]
proptest! {
    // An eighth of the cases: each one creates a database and its tables.
    #![proptest_config(ProptestConfig::with_cases((config().cases / 8).max(1)))]

    /// The same model on PostgreSQL ([`jidstore::Config::database`]), a fresh database per
    /// case; `Reopen` drops the store and connects again.
    #[test]
    fn postgres_store_matches_model(
        created in proptest::collection::btree_set(0..N, 0..N),
        ops in proptest::collection::vec(model::op(), 1..40),
    ) {
        model_run(Engine::Postgres, &created, &ops);
    }

    /// Whole generated deployments on PostgreSQL, with a reopen before the check.
    #[test]
    fn postgres_deployments_keep_gdpr_invariants(
        (d, subject) in testing::deployment_and_subject(),
    ) {
        let Some(url) = pg::database() else { return Ok(()) };
        let store = open_database(&url);
        d.apply(&store).unwrap();
        drop(store);
        let store = open_database(&url);
        let check = testing::check_gdpr(&store, &d, &subject);
        prop_assert!(check.is_ok(), "{}", check.unwrap_err());
        let check = check.unwrap();
        prop_assert_eq!(check.before["accounts.csv"], 1);
        prop_assert_eq!(check.after.get("accounts.csv").copied().unwrap_or(0), 0);
    }
}

/// Runs the shared model ([`model::run`]) on `engine`.
fn model_run(engine: Engine, created: &BTreeSet<usize>, ops: &[Op]) {
    let (dir, store) = util::store();
    let result = match engine {
        Engine::Sled => model::run(store, created, ops, |s| util::reopen(&dir, s)),
        // Nothing outlives the handle: `Reopen` only checks.
        Engine::Memory => {
            let store = jidstore::Config::in_memory().open().unwrap();
            model::run(store, created, ops, |s| s)
        }
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            // JIDSTORE_SKIP_PG=1: nothing to run against.
            let Some(url) = pg::database() else { return };
            model::run(open_database(&url), created, ops, |s| {
                drop(s);
                open_database(&url)
            })
        }
    };
    if let Err(divergence) = result {
        panic!("{divergence}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases((config().cases / 4).max(1)))]

    /// Whole generated deployments: apply, reopen, then `testing::check_gdpr` (exports
    /// match the deployment; after erasure only kept classes remain for the subject, others
    /// unchanged except documented cross-user effects; `verify` clean throughout).
    #[test]
    fn deployments_keep_gdpr_invariants((d, subject) in testing::deployment_and_subject()) {
        let (dir, store) = util::store();
        d.apply(&store).unwrap();
        let store = util::reopen(&dir, store);
        let check = testing::check_gdpr(&store, &d, &subject);
        prop_assert!(check.is_ok(), "{}", check.unwrap_err());
        let check = check.unwrap();
        prop_assert_eq!(check.before["accounts.csv"], 1);
        prop_assert_eq!(check.after.get("accounts.csv").copied().unwrap_or(0), 0);
    }

    /// The same on the in-memory engine (no reopen: nothing outlives the handle).
    #[test]
    fn memory_deployments_keep_gdpr_invariants((d, subject) in testing::deployment_and_subject()) {
        let store = jidstore::Config::in_memory().open().unwrap();
        d.apply(&store).unwrap();
        let check = testing::check_gdpr(&store, &d, &subject);
        prop_assert!(check.is_ok(), "{}", check.unwrap_err());
        let check = check.unwrap();
        prop_assert_eq!(check.before["accounts.csv"], 1);
        prop_assert_eq!(check.after.get("accounts.csv").copied().unwrap_or(0), 0);
    }
}
