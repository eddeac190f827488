//! disco's integration tests: one test crate, one module per area, all
//! sharing the support code (processes, clients, images) in `support/`.

mod compat;
mod net;
mod net_helia;
mod net_kubo;
mod net_support;
mod server;
mod support;
