//! private integration tests.
