//! disco's integration tests: one test crate, one module per area, all
//! sharing the support code (processes, clients, images) in `support/`.

mod compat;
mod server;
mod support;
mod store_crash;
