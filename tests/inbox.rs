//! inbox integration tests.
