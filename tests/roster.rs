//! roster integration tests.
