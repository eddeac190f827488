//! Shared support for integration tests.
