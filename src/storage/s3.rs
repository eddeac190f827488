//! `s3` storage driver (issue 7).
