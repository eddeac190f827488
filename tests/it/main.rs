//! disco's integration tests: one test crate, one module per area, all
//! sharing the support code (processes, clients, images) in `support/`.

mod s3;
mod s3_suite;
mod support;
mod s3_auth;
mod s3_distribution;
