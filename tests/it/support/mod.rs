//! Shared support for integration tests.
#![allow(dead_code)]

pub mod jsipfs;
pub mod registry;
