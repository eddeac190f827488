//! disco's integration tests: one test crate, one module per area, all
//! sharing the support code (processes, clients, images) in `support/`.

mod support;
mod store_crash;
