//! blocklist integration tests.
