//! `health`: the background checks behind `/debug/health` (Distribution's
//! `health.storagedriver`).
//!
//! ```yaml
//! health:
//!   storagedriver:
//!     enabled: true      # disco's default; Distribution's is false
//!     interval: 10s      # how often every check runs
//!     threshold: 3       # consecutive failures before a check reports unhealthy
//! ```

use std::time::Duration;

use serde::Deserialize;

/// `health`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Checks of the storage: the driver answers, local data directories
    /// are writable (not full, not read-only), Kubo nodes answer.
    pub storagedriver: StorageHealthConfig,
}

/// `health.storagedriver`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StorageHealthConfig {
    /// Run the checks. Default `true` (Distribution's default is `false`);
    /// off, `/debug/health` always answers 200 `{}`.
    pub enabled: bool,
    /// How often every check runs (Go duration). Default `10s`, at least 1s.
    #[serde(deserialize_with = "crate::config::duration")]
    pub interval: Duration,
    /// Consecutive failures before a check is reported failing; one success
    /// clears it. Default `3` (`0` counts as `1`).
    pub threshold: u32,
}

impl Default for StorageHealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
            threshold: 3,
        }
    }
}
