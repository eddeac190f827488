//! disco's integration tests: one test crate, one module per area, all
//! sharing the support code (processes, clients, images) in `support/`.

mod api_base;
mod api_blobs;
mod api_catalog;
mod api_compat;
mod api_manifests;
mod api_names;
mod api_referrers;
mod api_tags;
mod api_uploads;
mod cache;
mod clients;
mod crash;
mod disco_cid;
mod disco_support;
mod embedded_clients;
mod ipfs_driver;
mod kubo;
mod kubo_failures;
mod kubo_push;
mod kubo_router;
mod net;
mod net_helia;
mod net_kubo;
mod net_site;
mod net_support;
mod s3;
mod s3_auth;
mod s3_distribution;
mod s3_suite;
mod server;
mod store_crash;
mod support;
