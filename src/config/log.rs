//! `log`: logging.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `log`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`. Default `info`
    /// (overridden by `RUST_LOG` when set).
    pub level: String,
    /// `text` or `json` (`logstash` is treated as `json`). Default `text`.
    pub formatter: String,
    /// Static fields added to every log line. Default none.
    pub fields: BTreeMap<String, yaml_serde::Value>,
    /// Access log switch (`accesslog.disabled`). Default enabled.
    pub accesslog: AccessLogConfig,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            formatter: "text".into(),
            fields: BTreeMap::new(),
            accesslog: Default::default(),
        }
    }
}

/// `log.accesslog`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccessLogConfig {
    /// Disables the per-request log line. Default false.
    pub disabled: bool,
}
