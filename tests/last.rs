//! last integration tests.
