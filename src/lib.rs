//! disco: an OCI Distribution registry whose storage is IPFS.
//!
//! Layers, top to bottom:
//! - [`http`]: the OCI Distribution HTTP API (axum), one module per resource;
//! - [`registry`]: blobs, manifests, tags, uploads and referrers in CNCF
//!   Distribution's on-disk layout, over a path-based storage driver;
//! - [`storage`]: the storage drivers behind one trait;
//! - [`ipfs`]: the IPFS interface and its backends (Kubo RPC, embedded);
//! - [`disco`]: content-addressed images (CID names, `disco.json`, cloning);
//! - [`mirror`]: pull-through mirroring of upstream registries, shared
//!   peer to peer;
//! - [`auth`]: access control (htpasswd, bearer tokens, per-repository
//!   rules), applied by one layer in [`http::auth`];
//! - [`web`]: the web page at `/` (repositories, tags, images, node).

/// `disco --version`: the package version and the git commit it was built
/// from (`unknown` outside a git checkout; see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DISCO_GIT_COMMIT"),
    ")"
);

pub mod auth;
pub mod cli;
pub mod config;
pub mod disco;
pub mod health;
pub mod http;
pub mod ipfs;
pub mod listen;
pub mod metrics;
pub mod mirror;
pub mod registry;
pub mod server;
pub mod storage;
pub mod tls;
pub mod web;
