//! Configuration of the embedded node's storage half, under
//! `storage.ipfs.embedded` (the networking half adds its keys beside
//! these). Durations are strings like `500ms`, `1s`, `10m`, `1h` (or a
//! number of seconds).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `storage.ipfs.embedded`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct EmbeddedConfig {
    /// Data directory: blocks, MFS root, pins and the node identity.
    /// Default `/var/lib/disco/ipfs`.
    pub path: PathBuf,
    /// How often changed MFS directories are written and the root
    /// persisted (also on `files_flush`, GC and shutdown). Default `1s`.
    #[serde(rename = "flushinterval", deserialize_with = "crate::config::duration")]
    pub flush_interval: Duration,
    /// How long to wait for one block from the network before
    /// `Timeout`. Default `60s`.
    #[serde(rename = "fetchtimeout", deserialize_with = "crate::config::duration")]
    pub fetch_timeout: Duration,
    /// Blocks requested at once while fetching a DAG. Default `64`.
    #[serde(rename = "fetchconcurrency")]
    pub fetch_concurrency: usize,
    /// Check every block read from disk against its CID (a corrupt block
    /// is removed and never served). Default `true`.
    #[serde(rename = "verifyreads")]
    pub verify_reads: bool,
    /// Garbage collection.
    pub gc: GcConfig,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            path: PathBuf::from("/var/lib/disco/ipfs"),
            flush_interval: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(60),
            fetch_concurrency: 64,
            verify_reads: true,
            gc: GcConfig::default(),
        }
    }
}

impl EmbeddedConfig {
    /// Defaults with the given data directory.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            path: path.into(),
            ..Self::default()
        }
    }
}

/// `storage.ipfs.embedded.gc`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GcConfig {
    /// Run the garbage collector on a schedule. Default `true`.
    pub enabled: bool,
    /// Time between scheduled collections (the first runs one interval
    /// after start). Default `1h`.
    #[serde(deserialize_with = "crate::config::duration")]
    pub interval: Duration,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            enabled: true,
            interval: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_with_defaults() {
        let c: EmbeddedConfig =
            yaml_serde::from_str("path: /tmp/x\nflushinterval: 250ms\ngc:\n  interval: 10m\n")
                .unwrap();
        assert_eq!(c.path, PathBuf::from("/tmp/x"));
        assert_eq!(c.flush_interval, Duration::from_millis(250));
        assert_eq!(c.gc.interval, Duration::from_secs(600));
        assert!(c.gc.enabled && c.verify_reads);
        assert_eq!(c.fetch_timeout, Duration::from_secs(60));
        assert!(yaml_serde::from_str::<EmbeddedConfig>("flushinterval: soon\n").is_err());
    }
}
