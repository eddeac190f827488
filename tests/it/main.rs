//! disco's integration tests: one test crate, one module per area, all
//! sharing the support code (processes, clients, images) in `support/`.

mod compat;
mod ipfs_driver;
mod kubo;
mod kubo_failures;
mod kubo_push;
mod kubo_router;
mod server;
mod support;
