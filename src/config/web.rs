//! `web`: the web page served at `/` on the main port.

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `web`: the server-rendered web page (repositories, tags, images, node).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WebConfig {
    /// Serve the web page at `/` (the API stays under `/v2/`). Default true.
    pub enabled: bool,
    /// How long a sign-in on the page lasts (the session cookie's life).
    /// Default `8h`.
    #[serde(deserialize_with = "duration")]
    pub sessionttl: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sessionttl: Duration::from_secs(8 * 3600),
        }
    }
}
