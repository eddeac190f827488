//! Configuration of the Kubo RPC backend: `storage.ipfs.router` in disco's
//! YAML config.
//!
//! ```yaml
//! storage:
//!   ipfs:
//!     router:
//!       nodes:
//!         - url: http://127.0.0.1:5001
//!         - url: http://127.0.0.1:5002
//!       connecttimeout: 5s
//!       requesttimeout: 60s
//!       networktimeout: 60s
//!       idletimeout: 120s
//!       retries: 3
//!       retrybackoff: 100ms
//!       maxconcurrency: 64
//! ```
//!
//! Durations are Go-style strings (`500ms`, `5s`, `2m`, `1h`, or a sum like
//! `1m30s`) or a plain number of seconds.

use std::time::Duration;

use serde::Deserialize;

/// One Kubo node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeConfig {
    /// Base URL of the node's RPC API, e.g. `http://127.0.0.1:5001`
    /// (`/api/v0` is appended). Required.
    pub url: String,
}

/// `storage.ipfs.router`: the Kubo nodes and how to talk to them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct KuboConfig {
    /// The Kubo nodes content is spread over. Default: one node at
    /// `http://127.0.0.1:5001`.
    pub nodes: Vec<NodeConfig>,
    /// Time to establish a TCP connection to a node; past it the node counts
    /// as unavailable. Default `5s`.
    #[serde(deserialize_with = "crate::config::duration")]
    pub connecttimeout: Duration,
    /// Time a call that needs nothing from the network may take until the
    /// response starts. Default `60s`.
    #[serde(deserialize_with = "crate::config::duration")]
    pub requesttimeout: Duration,
    /// Time a call that may wait for content from other peers (`block/get`,
    /// `cat`, `files/cp` from `/ipfs/...`, `pin/add`) may take; passed to the
    /// node as its `timeout=` option. Default `60s`.
    #[serde(deserialize_with = "crate::config::duration")]
    pub networktimeout: Duration,
    /// Longest pause allowed inside a streamed request or response body
    /// (no byte sent or received). Default `120s`.
    #[serde(deserialize_with = "crate::config::duration")]
    pub idletimeout: Duration,
    /// Retries of an idempotent call after a connection failure or a
    /// 502/503/504 answer. Default `3`.
    pub retries: u32,
    /// Delay before the first retry; doubles on each further one.
    /// Default `100ms`.
    #[serde(deserialize_with = "crate::config::duration")]
    pub retrybackoff: Duration,
    /// Most calls in flight to one node at once, streamed answers
    /// included; further calls wait (up to `requesttimeout`). Default `64`.
    pub maxconcurrency: usize,
}

impl Default for KuboConfig {
    fn default() -> Self {
        Self {
            nodes: vec![NodeConfig {
                url: "http://127.0.0.1:5001".into(),
            }],
            connecttimeout: Duration::from_secs(5),
            requesttimeout: Duration::from_secs(60),
            networktimeout: Duration::from_secs(60),
            idletimeout: Duration::from_secs(120),
            retries: 3,
            retrybackoff: Duration::from_millis(100),
            maxconcurrency: 64,
        }
    }
}

impl KuboConfig {
    /// The default settings with the given node URLs.
    pub fn with_nodes<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self {
            nodes: urls
                .into_iter()
                .map(|u| NodeConfig { url: u.into() })
                .collect(),
            ..Self::default()
        }
    }
}

/// Formats a duration for Kubo's `timeout=` option (whole milliseconds).
pub fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn yaml_with_defaults() {
        let cfg: KuboConfig = yaml_serde::from_str(
            "nodes:\n  - url: http://127.0.0.1:1\n  - url: http://127.0.0.1:2\nnetworktimeout: 2s\nretries: 0\n",
        )
        .unwrap();
        assert_eq!(cfg.nodes.len(), 2);
        assert_eq!(cfg.nodes[1].url, "http://127.0.0.1:2");
        assert_eq!(cfg.networktimeout, Duration::from_secs(2));
        assert_eq!(cfg.retries, 0);
        assert_eq!(cfg.connecttimeout, Duration::from_secs(5));
        let empty: KuboConfig = yaml_serde::from_str("{}").unwrap();
        assert_eq!(empty, KuboConfig::default());
    }
}
