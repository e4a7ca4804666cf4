//! privacy integration tests.
