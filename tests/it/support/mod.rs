//! Shared support for integration tests.
#![allow(dead_code)]

pub mod oci;
pub mod registry;
