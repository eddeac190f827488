//! Configuration (Distribution-compatible YAML).
