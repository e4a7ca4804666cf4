//! pubsub integration tests.
