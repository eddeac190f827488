//! Shared support for integration tests.
#![allow(dead_code)]

pub mod clients;
pub mod docker;
pub mod helia_peer;
pub mod images;
pub mod jsipfs;
pub mod kubo_peer;
pub mod oci;
pub mod oci_api;
pub mod proxy;
pub mod registry;
pub mod s3server;
pub mod token_issuer;
pub mod webdriver;
