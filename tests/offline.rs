//! offline integration tests.
