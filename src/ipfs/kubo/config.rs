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

use serde::{Deserialize, Deserializer};

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
    #[serde(deserialize_with = "de_duration")]
    pub connecttimeout: Duration,
    /// Time a call that needs nothing from the network may take until the
    /// response starts. Default `60s`.
    #[serde(deserialize_with = "de_duration")]
    pub requesttimeout: Duration,
    /// Time a call that may wait for content from other peers (`block/get`,
    /// `cat`, `files/cp` from `/ipfs/...`, `pin/add`) may take; passed to the
    /// node as its `timeout=` option. Default `60s`.
    #[serde(deserialize_with = "de_duration")]
    pub networktimeout: Duration,
    /// Longest pause allowed inside a streamed request or response body
    /// (no byte sent or received). Default `120s`.
    #[serde(deserialize_with = "de_duration")]
    pub idletimeout: Duration,
    /// Retries of an idempotent call after a connection failure or a
    /// 502/503/504 answer. Default `3`.
    pub retries: u32,
    /// Delay before the first retry; doubles on each further one.
    /// Default `100ms`.
    #[serde(deserialize_with = "de_duration")]
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

/// Parses a Go-style duration (`1h2m3s`, `500ms`, `1.5s`) or a bare number
/// of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs, text);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {text:?} lacks a unit"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unknown unit {other:?} in duration {text:?}")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total, text)
}

fn secs_to_duration(secs: f64, text: &str) -> Result<Duration, String> {
    if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration for Kubo's `timeout=` option (whole milliseconds).
pub fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// Serde helper: a duration as a string or a number of seconds.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Num(n) => secs_to_duration(n, &n.to_string()),
        Raw::Text(t) => parse_duration(&t),
    }
    .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
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
