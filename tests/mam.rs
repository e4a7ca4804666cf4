//! mam integration tests.
