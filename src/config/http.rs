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
    /// PEM CA certificates: when set, every client must present a
    /// certificate chained to one of them (mutual TLS, as Distribution).
    /// Default none.
    pub clientcas: Option<Vec<PathBuf>>,
    /// Lowest TLS version accepted: `tls1.2` or `tls1.3` (`tls1.0` and
    /// `tls1.1` are accepted and mean `tls1.2`, the lowest disco speaks).
    /// Default `tls1.2`.
    pub minimumtls: Option<String>,
    /// Let's Encrypt certificates; not supported: refused at start.
    pub letsencrypt: Option<yaml_serde::Value>,
    /// TLS 1.2 cipher suites allowed, by IANA name (Go's names, e.g.
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`). TLS 1.3 suites are
    /// always enabled. Default: rustls's safe defaults.
    pub ciphersuites: Option<Vec<String>>,
}

impl TlsConfig {
    /// Checks what can be checked without reading files; `Err((key below
    /// http.tls, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.letsencrypt.as_ref().is_some_and(|v| !v.is_null()) {
            return Err((
                "letsencrypt".into(),
                "Let's Encrypt is not supported by disco: configure certificate and key".into(),
            ));
        }
        let tls = self.certificate.is_some();
        for (set, key) in [
            (self.clientcas.is_some(), "clientcas"),
            (self.minimumtls.is_some(), "minimumtls"),
            (self.ciphersuites.is_some(), "ciphersuites"),
        ] {
            if set && !tls {
                return Err((
                    key.into(),
                    "needs http.tls.certificate and key (TLS is not enabled)".into(),
                ));
            }
        }
        if let Some(v) = &self.minimumtls
            && !matches!(v.as_str(), "tls1.0" | "tls1.1" | "tls1.2" | "tls1.3")
        {
            return Err((
                "minimumtls".into(),
                format!("{v:?} is not tls1.0, tls1.1, tls1.2 or tls1.3"),
            ));
        }
        if self.clientcas.as_ref().is_some_and(Vec::is_empty) {
            return Err((
                "clientcas".into(),
                "empty list: name at least one CA file".into(),
            ));
        }
        Ok(())
    }
}
