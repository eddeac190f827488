//! Configuration: CNCF Distribution-compatible YAML plus disco's own keys.
//!
//! Sources, later wins: the file (`--config`, else `REGISTRY_CONFIGURATION_PATH`,
//! else `~/.disco/config.yaml` if it exists, else built-in defaults), then
//! `REGISTRY_<SECTION>_<KEY>...` environment variables (Distribution's
//! style: `REGISTRY_HTTP_ADDR=127.0.0.1:5000`,
//! `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/data`).
//!
//! Unknown keys are reported as warnings; invalid values fail with the
//! key's path in the message. Every field documents its default.

mod auth;
mod disco;
mod duration;
mod gc;
mod health;
mod http;
mod log;
mod port;
mod proxy;
mod storage;
mod web;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use auth::{
    AccessConfig, AuthConfig, HtpasswdConfig, RuleConfig, SIGNING_ALGORITHMS, TokenConfig,
};
pub use disco::DiscoConfig;
pub use duration::{duration, parse_duration};
pub use gc::{GcConfig, RetentionPolicy};
pub use health::{HealthConfig, StorageHealthConfig};
pub use http::{DebugConfig, HttpConfig, PrometheusConfig, TlsConfig};
pub use log::{AccessLogConfig, LogConfig};
pub use port::DISCO_PORT;
pub use proxy::{ProxyConfig, Secret, UpstreamConfig};
pub use storage::{
    DeleteConfig, FilesystemConfig, MaintenanceConfig, ReadOnlyConfig, RedirectConfig,
    StorageConfig, UploadPurgingConfig,
};
pub use web::WebConfig;

/// Port disco listens on when nothing is configured.
pub const DEFAULT_PORT: u16 = 1970;

/// A configuration error, naming the key where possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed.
    #[error("{path}: invalid YAML: {message}")]
    Syntax { path: String, message: String },
    /// A value is invalid.
    #[error("{source_name}: invalid value at `{key}`: {message}")]
    Invalid {
        source_name: String,
        key: String,
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Config format version; Distribution writes `0.1`. Default: none.
    pub version: Option<yaml_serde::Value>,
    /// Logging.
    pub log: LogConfig,
    /// Storage driver and storage behaviour.
    pub storage: StorageConfig,
    /// HTTP server.
    pub http: HttpConfig,
    /// disco's content-addressed image layer.
    pub disco: DiscoConfig,
    /// Online garbage collection of registry content and retention.
    pub gc: GcConfig,
    /// Access control. Default none: an open registry.
    #[serde(deserialize_with = "auth::auth_section")]
    pub auth: Option<AuthConfig>,
    /// Background health checks behind `/debug/health`.
    pub health: HealthConfig,
    /// Pull-through mirroring of upstream registries. Default none.
    pub proxy: ProxyConfig,
    /// The web page at `/`.
    pub web: WebConfig,
    /// Distribution sections disco accepts but does not implement (a
    /// warning is logged when present): `notifications`, `redis`,
    /// `validation`, `compatibility`, `reporting`,
    /// `middleware`, `loglevel`.
    #[serde(flatten)]
    pub unsupported: BTreeMap<String, yaml_serde::Value>,
}

/// Sections of Distribution's config that disco ignores with a warning.
const UNSUPPORTED_SECTIONS: [&str; 7] = [
    "notifications",
    "redis",
    "validation",
    "compatibility",
    "reporting",
    "middleware",
    "loglevel",
];

/// Where disco keeps its data by default: `~/.disco`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join(".disco")
}

/// The config file to read: explicit path, `REGISTRY_CONFIGURATION_PATH`,
/// or `~/.disco/config.yaml` if it exists.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("REGISTRY_CONFIGURATION_PATH") {
        return Some(PathBuf::from(p));
    }
    let default = data_dir().join("config.yaml");
    default.exists().then_some(default)
}

/// A loaded configuration plus the warnings found while loading it.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Unknown keys and ignored sections, for logging.
    pub warnings: Vec<String>,
    /// The file read, if any.
    pub path: Option<PathBuf>,
}

impl Config {
    /// Loads from `path` (see [`config_path`]) and the environment.
    pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
        let path = config_path(explicit);
        let (text, source_name) = match &path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.display().to_string(),
                    source: e,
                })?,
                p.display().to_string(),
            ),
            None => (String::new(), "built-in defaults".to_string()),
        };
        let env: Vec<(String, String)> = std::env::vars().collect();
        let (config, warnings) = Self::parse(&text, &source_name, &env)?;
        Ok(Loaded {
            config,
            warnings,
            path,
        })
    }

    /// Parses YAML text with environment overrides (`REGISTRY_*` pairs).
    pub fn parse(
        text: &str,
        source_name: &str,
        env: &[(String, String)],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut value: yaml_serde::Value = if text.trim().is_empty() {
            yaml_serde::Value::Mapping(Default::default())
        } else {
            yaml_serde::from_str(text).map_err(|e| ConfigError::Syntax {
                path: source_name.to_string(),
                message: e.to_string(),
            })?
        };
        if value.is_null() {
            value = yaml_serde::Value::Mapping(Default::default());
        }
        let mut warnings = Vec::new();
        // Parents before children: `REGISTRY_AUTH=htpasswd` then
        // `REGISTRY_AUTH_HTPASSWD_PATH=...` (Distribution's documented form).
        let mut sorted: Vec<&(String, String)> = env.iter().collect();
        sorted.sort();
        for (k, v) in sorted {
            let Some(rest) = k.strip_prefix("REGISTRY_") else {
                continue;
            };
            if rest == "CONFIGURATION_PATH" || rest.is_empty() {
                continue;
            }
            let keys: Vec<String> = rest.split('_').map(|s| s.to_ascii_lowercase()).collect();
            let scalar: yaml_serde::Value =
                yaml_serde::from_str(v).unwrap_or_else(|_| yaml_serde::Value::String(v.clone()));
            set_path(&mut value, &keys, scalar);
        }
        let p2p_listen_configured = port::p2p_listen_configured(&value);
        let mut unknown = Vec::new();
        let mut on_unknown = |p: serde_ignored::Path| unknown.push(p.to_string());
        let de = serde_ignored::Deserializer::new(value, &mut on_unknown);
        let mut config: Config =
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Invalid {
                source_name: source_name.to_string(),
                key: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        if let Some(ipfs) = &mut config.storage.ipfs {
            ipfs.embedded.net.pick_free_port = !p2p_listen_configured;
        }
        if let Some(w) = port::apply_disco_port(&mut config.http.addr, env).map_err(|message| {
            ConfigError::Invalid {
                source_name: "environment".into(),
                key: port::DISCO_PORT.into(),
                message,
            }
        })? {
            warnings.push(w);
        }
        warnings.extend(
            unknown
                .into_iter()
                .map(|k| format!("unknown configuration key `{k}` ignored")),
        );
        if config.auth.as_ref().is_some_and(|a| !a.enabled()) {
            warnings.push(
                "the `auth` section configures no authentication (htpasswd or token): the registry is open"
                    .into(),
            );
        }
        for k in config.unsupported.keys() {
            if UNSUPPORTED_SECTIONS.contains(&k.as_str()) {
                warnings.push(format!(
                    "configuration section `{k}` is not supported by disco and is ignored"
                ));
            } else {
                warnings.push(format!("unknown configuration key `{k}` ignored"));
            }
        }
        config.validate(source_name)?;
        Ok((config, warnings))
    }

    fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            key: key.to_string(),
            message,
        };
        let drivers = self.storage.drivers();
        if drivers.len() > 1 {
            return Err(invalid(
                "storage",
                format!(
                    "more than one storage driver configured: {}",
                    drivers.join(", ")
                ),
            ));
        }
        parse_listen_addr(&self.http.addr).map_err(|m| invalid("http.addr", m))?;
        self.proxy.validate().map_err(|m| invalid("proxy", m))?;
        if let Some(a) = &self.http.debug.addr {
            parse_listen_addr(a).map_err(|m| invalid("http.debug.addr", m))?;
        }
        if self.http.net != "tcp" {
            return Err(invalid(
                "http.net",
                format!("{:?} is not supported (only tcp)", self.http.net),
            ));
        }
        if let Some(p) = &self.http.prefix
            && !p.trim_matches('/').is_empty()
        {
            return Err(invalid(
                "http.prefix",
                "URL prefixes are not supported".into(),
            ));
        }
        if self.http.tls.certificate.is_some() != self.http.tls.key.is_some() {
            return Err(invalid(
                "http.tls",
                "certificate and key must both be set".into(),
            ));
        }
        self.http
            .tls
            .validate()
            .map_err(|(k, m)| invalid(&format!("http.tls.{k}"), m))?;
        if let Some(auth) = &self.auth {
            auth.validate()
                .map_err(|(k, m)| invalid(&format!("auth.{k}"), m))?;
        }
        refuse_unenforced_sections(&self.unsupported).map_err(|(k, m)| invalid(&k, m))?;
        if !matches!(
            self.log.level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not one of error, warn, info, debug, trace",
                    self.log.level
                ),
            ));
        }
        if !matches!(self.log.formatter.as_str(), "text" | "json" | "logstash") {
            return Err(invalid(
                "log.formatter",
                format!("{:?} is not one of text, json", self.log.formatter),
            ));
        }
        if let Some(h) = &self.http.host
            && !(h.starts_with("http://") || h.starts_with("https://"))
        {
            return Err(invalid(
                "http.host",
                format!("{h:?} must be an absolute http(s) URL"),
            ));
        }
        Ok(())
    }
}

/// Distribution sections that ask for a protection disco does not give:
/// refused rather than ignored.
fn refuse_unenforced_sections(
    sections: &BTreeMap<String, yaml_serde::Value>,
) -> Result<(), (String, String)> {
    let urls = sections
        .get("validation")
        .and_then(|v| v.get("manifests"))
        .and_then(|v| v.get("urls"));
    if let Some(urls) = urls
        && !urls.is_null()
    {
        return Err((
            "validation.manifests.urls".into(),
            "disco does not filter foreign layer URLs; remove this section (disco accepts \
             non-distributable layers with any URL and never fetches them)"
                .into(),
        ));
    }
    Ok(())
}

/// Parses `host:port` or `:port` (all interfaces).
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    if let Ok(a) = full.parse() {
        return Ok(a);
    }
    if let Some((host, port)) = full.rsplit_once(':')
        && host == "localhost"
        && let Ok(p) = port.parse::<u16>()
    {
        return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    Err(format!("{s:?} is not host:port or :port"))
}

fn set_path(value: &mut yaml_serde::Value, keys: &[String], leaf: yaml_serde::Value) {
    let Some((first, rest)) = keys.split_first() else {
        *value = leaf;
        return;
    };
    if !value.is_mapping() {
        *value = yaml_serde::Value::Mapping(Default::default());
    }
    if let yaml_serde::Value::Mapping(map) = value {
        let key = yaml_serde::Value::String(first.clone());
        let child = map.entry(key).or_insert(yaml_serde::Value::Null);
        set_path(child, rest, leaf);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DISTRIBUTION: &str = r#"
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"#;

    #[test]
    fn distribution_default_config_loads() {
        let (c, warnings) = Config::parse(DISTRIBUTION, "t", &[]).unwrap();
        assert_eq!(
            c.storage.filesystem.unwrap().rootdirectory,
            PathBuf::from("/var/lib/registry")
        );
        assert_eq!(parse_listen_addr(&c.http.addr).unwrap().port(), 5000);
        assert_eq!(
            c.http.headers["X-Content-Type-Options"],
            vec!["nosniff".to_string()]
        );
        assert!(c.health.storagedriver.enabled);
        assert_eq!(c.health.storagedriver.threshold, 3);
        assert!(
            !warnings.iter().any(|w| w.contains("health")),
            "{warnings:?}"
        );
    }

    #[test]
    fn env_overrides_and_unknown_keys() {
        let env = vec![
            (
                "REGISTRY_HTTP_ADDR".to_string(),
                "127.0.0.1:6000".to_string(),
            ),
            (
                "REGISTRY_STORAGE_DELETE_ENABLED".to_string(),
                "true".to_string(),
            ),
            (
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY".to_string(),
                "/data".to_string(),
            ),
        ];
        let (c, warnings) = Config::parse("http:\n  addr: :1\n  bogus: 1\n", "t", &env).unwrap();
        assert_eq!(c.http.addr, "127.0.0.1:6000");
        assert!(c.storage.delete.enabled);
        assert_eq!(
            c.storage.filesystem.unwrap().rootdirectory,
            PathBuf::from("/data")
        );
        assert!(
            warnings.iter().any(|w| w.contains("http.bogus")),
            "{warnings:?}"
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = Config::parse("storage:\n  delete:\n    enabled: maybe\n", "cfg.yml", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.delete.enabled"), "{err}");
        let err = Config::parse("http:\n  addr: nonsense\n", "cfg.yml", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.addr"), "{err}");
        let err = Config::parse(
            "storage:\n  maintenance:\n    uploadpurging:\n      age: 3 fortnights\n",
            "c",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("storage.maintenance.uploadpurging.age"),
            "{err}"
        );
        let err = Config::parse(
            "storage:\n  inmemory: {}\n  filesystem: {rootdirectory: /x}\n",
            "c",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("more than one storage driver"), "{err}");
    }

    #[test]
    fn shipped_default_config_matches_defaults() {
        let text = include_str!("../../config/default-config.yaml");
        let (c, warnings) = Config::parse(text, "default-config.yaml", &[]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let (d, _) = Config::parse("", "t", &[]).unwrap();
        assert_eq!(
            format!("{c:?}"),
            format!("{d:?}").replace("version: None", &format!("version: {:?}", c.version))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("168h").unwrap(),
            Duration::from_secs(168 * 3600)
        );
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        for bad in ["5 parsecs", "5x", "s", "", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_sections() {
        // Distribution's environment form.
        let env = vec![
            ("REGISTRY_AUTH".to_string(), "htpasswd".to_string()),
            ("REGISTRY_AUTH_HTPASSWD_PATH".to_string(), "/h".to_string()),
            ("REGISTRY_AUTH_HTPASSWD_REALM".to_string(), "R".to_string()),
        ];
        let (c, _) = Config::parse("", "t", &env).unwrap();
        let h = c.auth.unwrap().htpasswd.unwrap();
        assert_eq!(h.path.unwrap(), PathBuf::from("/h"));
        assert_eq!(h.realm.as_deref(), Some("R"));
        // A kind whose keys are all commented out is refused, not ignored.
        let err = Config::parse("auth:\n  htpasswd:\n", "c", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.htpasswd.path"), "{err}");
        let err = Config::parse("auth: htpasswd\n", "c", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.htpasswd.path"), "{err}");
        let err = Config::parse("auth:\n  silly: {realm: x}\n", "c", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.silly") && err.contains("not supported"),
            "{err}"
        );
        let (_, w) = Config::parse("auth: {}\n", "c", &[]).unwrap();
        assert!(w.iter().any(|w| w.contains("registry is open")), "{w:?}");
        let err = Config::parse(
            "auth:\n  token: {realm: http://x, service: s, issuer: i}\n",
            "c",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("rootcertbundle"), "{err}");
        let err = Config::parse(
            "auth:\n  token: {realm: r, service: s, issuer: i, jwks: /j, signingalgorithms: [HS256]}\n",
            "c",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("HS256"), "{err}");
    }

    #[test]
    fn defaults() {
        let (c, w) = Config::parse("", "t", &[]).unwrap();
        assert!(w.is_empty());
        assert_eq!(c.http.addr, ":1970");
        assert!(c.storage.drivers().is_empty());
        assert!(c.storage.maintenance.uploadpurging.enabled);
        assert!(c.disco.keepnames);
    }
}
