//! `http`: listeners, TLS, headers, the debug server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{DEFAULT_PORT, duration};

/// `http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Listen address, `host:port` or `:port`. Default `:1970`.
    pub addr: String,
    /// Distribution's `net` (`tcp` only). Default `tcp`.
    pub net: String,
    /// External base URL used in `Location` headers (e.g.
    /// `https://registry.example.com`). Default none: relative locations.
    pub host: Option<String>,
    /// Distribution's URL prefix; only `/` is supported. Default none.
    pub prefix: Option<String>,
    /// Distribution's upload-state HMAC secret; unused (disco keeps upload
    /// state in storage). Default none.
    pub secret: Option<String>,
    /// Headers added to every response. Default none.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Debug server (metrics, health).
    pub debug: DebugConfig,
    /// TLS.
    pub tls: TlsConfig,
    /// Seconds to wait for in-flight requests at shutdown. Default `60s`.
    #[serde(deserialize_with = "duration")]
    pub draintimeout: Duration,
    /// Accepted for compatibility (`relativeurls`, `http2`). Default none.
    pub relativeurls: Option<bool>,
    /// Accepted for compatibility.
    pub http2: Option<yaml_serde::Value>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: format!(":{DEFAULT_PORT}"),
            net: "tcp".into(),
            host: None,
            prefix: None,
            secret: None,
            headers: BTreeMap::new(),
            debug: DebugConfig::default(),
            tls: TlsConfig::default(),
            draintimeout: Duration::from_secs(60),
            relativeurls: None,
            http2: None,
        }
    }
}

/// `http.debug`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DebugConfig {
    /// Debug server address (`/metrics`, `/debug/health`). Default none
    /// (no debug server).
    pub addr: Option<String>,
    /// Prometheus exposition.
    pub prometheus: PrometheusConfig,
}

/// `http.debug.prometheus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PrometheusConfig {
    /// Default true when a debug address is set.
    pub enabled: bool,
    /// Default `/metrics`.
    pub path: String,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/metrics".into(),
        }
    }
}

/// `http.tls`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// PEM certificate chain. Default none (plain HTTP).
    pub certificate: Option<PathBuf>,
    /// PEM private key. Default none.
    pub key: Option<PathBuf>,
    /// Accepted for compatibility; client certificates are not checked.
    pub clientcas: Option<Vec<PathBuf>>,
    /// Accepted for compatibility.
    pub minimumtls: Option<String>,
    /// Accepted for compatibility.
    pub letsencrypt: Option<yaml_serde::Value>,
    /// Accepted for compatibility.
    pub ciphersuites: Option<Vec<String>>,
}
