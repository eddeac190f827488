//! Shared support for integration tests.
#![allow(dead_code)]

pub mod registry;
pub mod s3server;
