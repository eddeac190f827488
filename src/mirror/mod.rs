//! Pull-through mirroring of upstream registries, shared peer to peer.
//!
//! - Names ([`names`]): containerd's `?ns=<registry>` maps a request to
//!   the local name `<ns>/<repo>`; a `default` upstream (Distribution's
//!   `remoteurl`, Docker's `registry-mirrors`) mirrors plain names. The
//!   one mapping is used by the access-control layer and the handlers.
//! - Manifests ([`manifests`]): a tag is resolved upstream at most once
//!   per TTL; a manifest not stored is asked of connected peers first
//!   ([`peers`], then cloned by CID), else fetched upstream, verified and
//!   stored. An image fetched upstream has its blobs fetched in the
//!   background and is then published under digest and CID like a push.
//!   Upstream down: the stored tag is served with a `Warning`.
//! - Blobs ([`blobs`]): streamed to the client while stored, verified
//!   against the digest before they are kept; one fetch per digest.
//! - Upstreams ([`upstream`]): Basic or bearer-token auth, bounded
//!   timeouts.
//! - HTTP ([`http`]): the handlers' side; pushes and deletes of mirrored
//!   names are refused.

pub mod blobs;
pub mod error;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod names;
pub mod peers;
pub mod tags;
pub mod upstream;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

pub use self::error::MirrorError;
pub use self::metrics::MirrorMetrics;
pub use self::names::{NameMap, Target};
use self::upstream::Upstream;
use crate::config::{ProxyConfig, UpstreamConfig};
use crate::disco::Disco;
use crate::ipfs::embedded::net::Network;
use crate::registry::{Digest, Registry, RepoName};

/// The query parameter containerd adds to mirror requests.
pub const NS_PARAM: &str = "ns";

/// A blob fetch in progress: `None` while running, then its outcome.
type Fetch = watch::Receiver<Option<bool>>;

/// The mirror. Cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

struct Inner {
    names: NameMap,
    upstreams: Vec<Upstream>,
    registry: Arc<Registry>,
    disco: Option<Disco>,
    network: Option<Network>,
    peer_timeout: Duration,
    tags: tags::TagCache,
    fetches: Mutex<HashMap<Digest, Fetch>>,
    completing: Mutex<HashSet<Digest>>,
    metrics: MirrorMetrics,
}

/// The upstreams a `proxy` section configures: `remoteurl` becomes one
/// upstream named after its host, the default.
pub fn upstream_configs(cfg: &ProxyConfig) -> (Vec<UpstreamConfig>, Option<String>) {
    match &cfg.remoteurl {
        Some(url) => {
            let host = url
                .parse::<::http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_string))
                .unwrap_or_else(|| "upstream".into());
            let name = if names::is_docker_hub(&host, url) {
                "docker.io".to_string()
            } else {
                host
            };
            (
                vec![UpstreamConfig {
                    name: name.clone(),
                    url: url.clone(),
                    username: cfg.username.clone(),
                    password: cfg.password.clone(),
                    ttl: None,
                }],
                Some(name),
            )
        }
        None => (cfg.upstreams.clone(), cfg.default.clone()),
    }
}

/// The name mapping of a `proxy` section (empty when nothing is mirrored).
pub fn name_map(cfg: &ProxyConfig) -> NameMap {
    let (ups, default) = upstream_configs(cfg);
    NameMap {
        default: default.and_then(|d| ups.iter().position(|u| u.name == d)),
        upstreams: ups
            .iter()
            .map(|u| names::UpstreamName {
                name: u.name.clone(),
                docker_hub: names::is_docker_hub(&u.name, &u.url),
            })
            .collect(),
    }
}

impl Mirror {
    /// The mirror `cfg` configures over `registry`; `disco` publishes what
    /// is fetched and clones what peers have (over `network`).
    pub fn new(
        cfg: &ProxyConfig,
        registry: Arc<Registry>,
        disco: Option<Disco>,
        network: Option<Network>,
    ) -> Result<Self, String> {
        let (ups, _) = upstream_configs(cfg);
        let upstreams = ups
            .iter()
            .map(|u| Upstream::new(u, cfg.ttl, cfg.timeout))
            .collect::<Result<Vec<_>, _>>()?;
        for u in &upstreams {
            tracing::info!(upstream = %u.name, ttl = ?u.ttl, "mirroring upstream registry");
        }
        Ok(Mirror {
            inner: Arc::new(Inner {
                names: name_map(cfg),
                upstreams,
                registry,
                disco,
                network,
                peer_timeout: cfg.peertimeout,
                tags: tags::TagCache::default(),
                fetches: Mutex::new(HashMap::new()),
                completing: Mutex::new(HashSet::new()),
                metrics: MirrorMetrics::default(),
            }),
        })
    }

    /// The metrics.
    pub fn metrics(&self) -> &MirrorMetrics {
        &self.inner.metrics
    }

    /// The name mapping.
    pub fn names(&self) -> &NameMap {
        &self.inner.names
    }

    /// The upstream a local name is mirrored from, if any.
    pub fn target(&self, local: &RepoName) -> Option<Target> {
        self.inner.names.target(local)
    }

    fn upstream(&self, t: &Target) -> &Upstream {
        &self.inner.upstreams[t.upstream]
    }
}
