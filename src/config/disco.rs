//! `disco`: the content-addressed image layer.

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `disco`: the content-addressed image layer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DiscoConfig {
    /// Never clone repositories by CID from the network; serve only what
    /// is local. Default false.
    pub noclone: bool,
    /// Keep the repository a manifest was pushed to (besides its digest and
    /// CID repositories). Default true.
    pub keepnames: bool,
    /// How long a pull by CID may search the network before answering
    /// 404. Default `60s`.
    #[serde(deserialize_with = "duration")]
    pub clonetimeout: Duration,
}

impl Default for DiscoConfig {
    fn default() -> Self {
        Self {
            noclone: false,
            keepnames: true,
            clonetimeout: Duration::from_secs(60),
        }
    }
}
