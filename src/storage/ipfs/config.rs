//! `storage.ipfs` keys used by the `ipfs` driver and the Kubo backend.
//!
//! ```yaml
//! storage:
//!   ipfs:
//!     rootdirectory: /disco
//!     spooldirectory: /var/lib/disco/ipfs-spool
//!     router:
//!       nodes:
//!         - url: http://127.0.0.1:5001
//! ```
//!
//! Other `storage.ipfs` keys (`embedded`, `cache`, `cacheonly`, `redirect`)
//! belong to other parts of disco and are ignored here.

use std::path::PathBuf;

use serde::Deserialize;

use crate::ipfs::kubo::KuboConfig;

/// What the `ipfs` storage driver needs from `storage.ipfs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct IpfsStorageConfig {
    /// MFS directory under which the registry layout lives (absolute).
    /// Default `/`.
    pub rootdirectory: String,
    /// Local directory holding the bytes of uploads until they are
    /// committed (and across restarts, for resumable uploads). One per
    /// registry. Default: `disco-ipfs-spool` in the system temp directory
    /// (the server passes a directory under its data directory).
    pub spooldirectory: Option<PathBuf>,
    /// The Kubo nodes and how to reach them. Default: one node at
    /// `http://127.0.0.1:5001`.
    pub router: KuboConfig,
}

impl Default for IpfsStorageConfig {
    fn default() -> Self {
        Self {
            rootdirectory: "/".into(),
            spooldirectory: None,
            router: KuboConfig::default(),
        }
    }
}

impl IpfsStorageConfig {
    /// The spool directory, defaulted.
    pub fn spool_dir(&self) -> PathBuf {
        self.spooldirectory
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("disco-ipfs-spool"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_config_shape() {
        let cfg: IpfsStorageConfig = yaml_serde::from_str(
            "router:\n  nodes:\n    - url: http://127.0.0.1:5001\n    - url: http://127.0.0.1:5002\nembedded:\n  enabled: false\ncache: x\n",
        )
        .unwrap();
        assert_eq!(cfg.rootdirectory, "/");
        assert_eq!(cfg.router.nodes.len(), 2);
        assert_eq!(cfg.spooldirectory, None);
        let cfg: IpfsStorageConfig =
            yaml_serde::from_str("rootdirectory: /disco\nspooldirectory: /tmp/s\n").unwrap();
        assert_eq!(cfg.rootdirectory, "/disco");
        assert_eq!(cfg.spool_dir(), PathBuf::from("/tmp/s"));
        assert_eq!(cfg.router, KuboConfig::default());
    }
}
