//! One integration-test binary (as ripgrep does): links once, shares helpers in `util`.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] fns fail the test on setup errors"
)]

mod bounded;
#[cfg(feature = "postgres")]
mod pg;
mod util;

mod acceptance;
mod accounts;
mod admin;
mod api;
mod at_rest;
mod bad_input;
mod blocklist;
mod cli;
mod cli_output;
mod concurrency;
mod corruption;
mod disk_full;
mod erasure;
mod forensic;
mod format;
mod gdpr_checker;
mod gdpr_race;
mod generic;
mod inbox;
mod last;
mod ledger;
mod maintenance;
mod mam;
mod mam_query;
#[cfg(feature = "postgres")]
mod migrate;
mod offline;
mod page;
mod paths;
#[cfg(feature = "postgres")]
mod pg_bench;
#[cfg(feature = "postgres")]
mod pg_crash;
#[cfg(feature = "postgres")]
mod pg_purge;
#[cfg(feature = "postgres")]
mod pg_replication;
mod pie;
mod pie_compliance;
mod pie_stream;
#[cfg(feature = "postgres")]
mod postgres;
mod privacy;
mod private;
mod process;
mod progress;
mod pubsub;
mod redact;
mod retention;
mod roster;
mod toolbox;
mod vcard;
mod verify;
