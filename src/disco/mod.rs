//! Content-addressed images.
