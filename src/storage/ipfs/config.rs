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
//! The backend is the Kubo nodes of `router` when that key is present, else
//! the embedded node configured by `embedded` (the default).

use std::path::PathBuf;

use serde::Deserialize;

use crate::ipfs::embedded::EmbeddedConfig;
use crate::ipfs::embedded::net::NetConfig;
use crate::ipfs::kubo::KuboConfig;

/// `storage.ipfs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// External Kubo nodes and how to reach them; when present they are
    /// the backend. Default: absent (the embedded node is used).
    pub router: Option<KuboConfig>,
    /// The embedded node (store and networking keys side by side), used
    /// when `router` is absent.
    pub embedded: EmbeddedSection,
    /// Secondary store mirroring the registry (`cache.<driver>: {...}`).
    /// Default none.
    pub cache: Option<yaml_serde::Value>,
    /// Run from the cache alone, without IPFS. Default false.
    pub cacheonly: bool,
    /// Base URL blob downloads are redirected to (plus the blob's storage
    /// path). Default none.
    pub redirect: Option<String>,
}

/// `storage.ipfs.embedded`: the store's keys and the network's keys at the
/// same level.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct EmbeddedSection {
    /// Blockstore, MFS and GC settings (`path` defaults to `<data dir>/ipfs`
    /// when the server builds the node).
    #[serde(flatten)]
    pub store: EmbeddedConfig,
    /// libp2p settings.
    #[serde(flatten)]
    pub net: NetConfig,
}

impl Default for IpfsStorageConfig {
    fn default() -> Self {
        Self {
            rootdirectory: "/".into(),
            spooldirectory: None,
            router: None,
            embedded: EmbeddedSection::default(),
            cache: None,
            cacheonly: false,
            redirect: None,
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
            "router:\n  nodes:\n    - url: http://127.0.0.1:5001\n    - url: http://127.0.0.1:5002\nembedded:\n  mdns: false\n  flushinterval: 2s\ncache: x\n",
        )
        .unwrap();
        assert_eq!(cfg.rootdirectory, "/");
        assert_eq!(cfg.router.as_ref().unwrap().nodes.len(), 2);
        assert_eq!(cfg.spooldirectory, None);
        let cfg: IpfsStorageConfig =
            yaml_serde::from_str("rootdirectory: /disco\nspooldirectory: /tmp/s\n").unwrap();
        assert_eq!(cfg.rootdirectory, "/disco");
        assert_eq!(cfg.spool_dir(), PathBuf::from("/tmp/s"));
        assert_eq!(cfg.router, None);
        let cfg: IpfsStorageConfig =
            yaml_serde::from_str("embedded:\n  mdns: false\n  flushinterval: 2s\n  path: /x\n")
                .unwrap();
        assert!(!cfg.embedded.net.mdns);
        assert_eq!(
            cfg.embedded.store.flush_interval,
            std::time::Duration::from_secs(2)
        );
        assert_eq!(cfg.embedded.store.path, PathBuf::from("/x"));
    }
}
