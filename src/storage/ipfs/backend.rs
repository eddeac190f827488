//! Opens the IPFS backend `storage.ipfs` names: the Kubo nodes of
//! `router`, or the embedded node (store plus libp2p networking).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::IpfsStorageConfig;
use super::kubo_backend;
use crate::ipfs::Ipfs;
use crate::ipfs::embedded::net::config::NetConfig;
use crate::ipfs::embedded::net::{Network, swarmkey};
use crate::ipfs::embedded::{BlockExchange, EmbeddedIpfs};

/// The embedded node's data directory: `storage.ipfs.embedded.path`, or
/// `<data_dir>/ipfs` when that is left at its default.
pub fn embedded_path(cfg: &IpfsStorageConfig, data_dir: &Path) -> PathBuf {
    let path = &cfg.embedded.store.path;
    if *path == crate::ipfs::embedded::EmbeddedConfig::default().path {
        data_dir.join("ipfs")
    } else {
        path.clone()
    }
}

/// The networking settings in effect: the private network's key file
/// resolved (generated on first start), and the mode announced loudly.
fn network_config(net: &NetConfig, node_dir: &Path) -> Result<NetConfig, String> {
    if net.public && net.private == Some(true) {
        return Err(
            "storage.ipfs.embedded: `public: true` joins the public IPFS network; it cannot be \
             `private: true` too"
                .into(),
        );
    }
    if net.quic && net.is_private() {
        return Err(
            "storage.ipfs.embedded.quic: QUIC cannot carry a private network (the swarm key \
             protects TCP only); turn QUIC off or set `private: false` (an open network)"
                .into(),
        );
    }
    let mut out = net.clone();
    out.listen = crate::listen::check_p2p_ports(&net.listen, net.pick_free_port)?;
    out.swarmkey = swarmkey::resolve(net.swarmkey.as_deref(), net.is_private(), node_dir)
        .map_err(|e| format!("storage.ipfs.embedded.swarmkey: {e}"))?;
    match (&out.swarmkey, net.public) {
        (Some(k), _) => {
            tracing::info!(key = %k.display(), "private IPFS network: only peers with this key connect")
        }
        (None, true) => tracing::warn!(
            "PUBLIC IPFS network (storage.ipfs.embedded.public: true): every image stored here \
             can be fetched by anyone on the IPFS network who learns its CIDs, and its CIDs are \
             announced to the public DHT"
        ),
        (None, false) => tracing::warn!(
            "OPEN IPFS network (storage.ipfs.embedded.private: false): any peer that reaches this \
             node (mDNS on the LAN, the listen addresses) can fetch every image stored here"
        ),
    }
    Ok(out)
}

/// A running IPFS backend.
pub struct IpfsBackend {
    /// The interface the storage driver and the disco layer use.
    pub ipfs: Arc<dyn Ipfs>,
    /// The embedded node, when that is the backend.
    pub embedded: Option<EmbeddedIpfs>,
    /// Its networking, unless `embedded.listen` is empty (offline).
    pub network: Option<Network>,
}

impl IpfsBackend {
    /// Opens the backend; `data_dir` gives the embedded node's default path.
    pub async fn open(cfg: &IpfsStorageConfig, data_dir: &Path) -> Result<Self, String> {
        if let Some(router) = &cfg.router {
            let ipfs = kubo_backend(router).map_err(|e| format!("storage.ipfs.router: {e}"))?;
            return Ok(Self {
                ipfs,
                embedded: None,
                network: None,
            });
        }
        let mut store_cfg = cfg.embedded.store.clone();
        store_cfg.path = embedded_path(cfg, data_dir);
        let node = EmbeddedIpfs::open(store_cfg)
            .await
            .map_err(|e| format!("storage.ipfs.embedded: {e}"))?;
        let network = if cfg.embedded.net.listen.is_empty() {
            tracing::info!("embedded IPFS node is offline (storage.ipfs.embedded.listen is empty)");
            None
        } else {
            let net_cfg = network_config(&cfg.embedded.net, &node.path())?;
            let net = Network::start(&net_cfg, node.keypair().clone(), node.block_store())
                .await
                .map_err(|e| format!("storage.ipfs.embedded: {e}"))?;
            node.set_exchange(Arc::new(net.clone()) as Arc<dyn BlockExchange>);
            tracing::info!(
                peer = %net.peer_id(),
                addresses = ?BlockExchange::addresses(&net),
                "embedded IPFS node online"
            );
            Some(net)
        };
        Ok(Self {
            ipfs: Arc::new(node.clone()),
            embedded: Some(node),
            network,
        })
    }

    /// Stops networking and flushes the embedded node.
    pub async fn shutdown(&self) {
        if let Some(net) = &self.network {
            net.shutdown();
        }
        if let Some(node) = &self.embedded
            && let Err(e) = node.shutdown().await
        {
            tracing::error!(error = %e, "flushing the embedded IPFS node failed");
        }
    }
}
