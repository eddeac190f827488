//! disco's integration tests: one test crate, one module per area, all
//! sharing the support code (processes, clients, images) in `support/`.

mod clients;
mod compat;
mod crash;
mod server;
mod support;
