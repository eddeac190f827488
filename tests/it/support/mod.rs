//! Shared support for integration tests.
#![allow(dead_code)]

pub mod helia_peer;
pub mod kubo_peer;
pub mod registry;
