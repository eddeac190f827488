//! libp2p networking of the embedded node (issue 5): TCP+noise+yamux (QUIC
//! optional), identify, ping, Kademlia (`/ipfs/kad/1.0.0`), mDNS, private
//! networks from a Kubo `swarm.key`, and bitswap ([`bitswap`]).
//!
//! [`Network::start`] builds the swarm and spawns one task that owns it
//! ([`swarm`]); [`Network`] implements [`BlockExchange`] for the store.
//! Fetched blocks are verified against their CID and written to the
//! [`BlockStore`] before `fetch` returns them.

pub mod announce;
pub mod behaviour;
pub mod bitswap;
pub mod bootstrap;
pub mod config;
pub mod dag;
pub mod metrics;
pub mod ping;
pub mod routers;
pub mod streams;
pub mod swarm;
pub mod swarmkey;
pub mod transport;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, identify, kad, mdns};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub use self::bitswap::Bitswap;
pub use self::bootstrap::BootstrapStatus;
pub use self::config::NetConfig;
pub use self::metrics::NetMetrics;
use self::swarm::{Command, SwarmTask};
use super::{BlockExchange, BlockStore};
use crate::ipfs::{IpfsError, NodeIdentity, Result};

/// The DHT protocol (Kubo's WAN DHT).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");
/// Agent version announced through identify.
pub const AGENT: &str = concat!("disco/", env!("CARGO_PKG_VERSION"));

/// Networking errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Invalid settings.
    #[error("invalid network config: {0}")]
    Config(String),
    /// The swarm key could not be used.
    #[error(transparent)]
    SwarmKey(#[from] swarmkey::SwarmKeyError),
    /// The transport could not be built.
    #[error("transport: {0}")]
    Transport(String),
    /// No listen address could be bound.
    #[error("cannot listen: {0}")]
    Listen(String),
    /// A dial failed.
    #[error("cannot connect: {0}")]
    Dial(String),
    /// A DHT operation failed.
    #[error("DHT: {0}")]
    Dht(String),
    /// The node is shut down.
    #[error("network stopped")]
    Stopped,
}

impl From<NetError> for IpfsError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Config(_) | NetError::SwarmKey(_) => IpfsError::Invalid(e.to_string()),
            NetError::Stopped => IpfsError::Unavailable(e.to_string()),
            _ => IpfsError::Other(e.to_string()),
        }
    }
}

/// Capacity of the command channel to the swarm task.
const COMMANDS: usize = 256;
/// How long provider records we hold for other peers live (Kubo's 48 h).
/// Our own records are re-announced every `reprovideinterval`, at most
/// half of this.
pub const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(48 * 3600);
/// Inbound streams waiting to be read, per protocol family (plus one per
/// connection).
const INBOUND_QUEUE: usize = 256;

/// The running network half of the embedded node. Cloning shares it; the
/// tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    peer_id: PeerId,
    cmds: mpsc::Sender<Command>,
    bitswap: Bitswap,
    peers: watch::Receiver<bitswap::PeerSet>,
    listen: Arc<RwLock<Vec<Multiaddr>>>,
    announce: Vec<Multiaddr>,
    metrics: Arc<NetMetrics>,
    status: Arc<RwLock<BootstrapStatus>>,
    announcer: mpsc::Sender<announce::Request>,
    /// Opens and accepts streams of protocols other modules speak.
    control: libp2p_stream::Control,
    tasks: Mutex<JoinSet<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tasks.get_mut().abort_all();
    }
}

fn parse_addrs(list: &[String], what: &str) -> std::result::Result<Vec<Multiaddr>, NetError> {
    list.iter()
        .map(|s| {
            s.parse::<Multiaddr>()
                .map_err(|e| NetError::Config(format!("{what} address {s:?}: {e}")))
        })
        .collect()
}

impl Network {
    /// Starts networking: builds the swarm, listens, dials the bootstrap
    /// peers and spawns the swarm and bitswap tasks. Returns once every
    /// listen address is bound (or failed; all failing is an error).
    pub async fn start(
        config: &NetConfig,
        keypair: Keypair,
        store: Arc<dyn BlockStore>,
    ) -> std::result::Result<Network, NetError> {
        let peer_id = keypair.public().to_peer_id();
        let psk = match &config.swarmkey {
            Some(path) => Some(swarmkey::read_swarm_key(path)?),
            None => None,
        };
        if config.reprovide_interval > PROVIDER_RECORD_TTL / 2 {
            return Err(NetError::Config(format!(
                "reprovideinterval {:?} is longer than 24h, half the {}h lifetime of provider records: \
                 records would expire before they are announced again",
                config.reprovide_interval,
                PROVIDER_RECORD_TTL.as_secs() / 3600
            )));
        }
        let routers = if config.routers.is_empty() {
            None
        } else {
            Some(Arc::new(routers::Routers::new(&config.routers, peer_id)?))
        };
        let listen = parse_addrs(&config.listen, "listen")?;
        let announce = parse_addrs(&config.announce, "announce")?;
        let bootstrap = parse_addrs(&config.bootstrap_peers(), "bootstrap")?;
        let transport = transport::build(&keypair, psk, config.quic)?;

        let mut kcfg = kad::Config::new(KAD_PROTOCOL);
        kcfg.set_kbucket_size(NonZeroUsize::new(20).expect("20 > 0"));
        kcfg.set_query_timeout(Duration::from_secs(60));
        // Like go-libp2p-kad-dht: only peers that advertise the DHT protocol
        // (identify) or were configured enter the routing table, not every
        // peer that merely sent us a query.
        kcfg.set_kbucket_inserts(kad::BucketInserts::Manual);
        // Our records are announced by [`announce`], not by the DHT's
        // per-key republication.
        kcfg.set_provider_publication_interval(None);
        kcfg.set_provider_record_ttl(Some(PROVIDER_RECORD_TTL));
        kcfg.set_periodic_bootstrap_interval(Some(bootstrap::REFRESH));
        let kstore = MemoryStore::with_config(
            peer_id,
            MemoryStoreConfig {
                max_records: 4096,
                max_value_bytes: 64 * 1024,
                max_providers_per_key: 20,
                max_provided_keys: 1 << 20,
            },
        );
        let mut kad = kad::Behaviour::with_config(peer_id, kstore, kcfg);
        // Private/LAN operation defaults to server: every node is reachable
        // by its peers, loopback and LAN included.
        match config.effective_dht_mode() {
            config::DhtMode::Server => kad.set_mode(Some(kad::Mode::Server)),
            config::DhtMode::Client => kad.set_mode(Some(kad::Mode::Client)),
            config::DhtMode::Auto => kad.set_mode(None),
        }
        let mdns = if config.mdns {
            match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error = %e, "mDNS unavailable; LAN discovery disabled");
                    None
                }
            }
        } else {
            None
        };
        let identify = identify::Behaviour::new(
            identify::Config::new("ipfs/0.1.0".into(), keypair.public())
                .with_agent_version(AGENT.into())
                .with_hide_listen_addrs(!announce.is_empty()),
        );
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_pending_incoming(Some(128))
            .with_max_pending_outgoing(Some(128));
        let stream = libp2p_stream::Behaviour::new();
        let control = stream.new_control();
        let metrics = Arc::new(NetMetrics::default());
        let versions = [
            bitswap::message::Version::V120,
            bitswap::message::Version::V110,
            bitswap::message::Version::V100,
        ];
        let (bitswap_route, bitswap_in) = streams::route(
            versions.into_iter().map(bitswap::protocol).collect(),
            INBOUND_QUEUE,
        );
        let (ping_route, ping_in) = streams::route(vec![ping::PROTOCOL], INBOUND_QUEUE);
        let behaviour = behaviour::Behaviour {
            limits: connection_limits::Behaviour::new(limits),
            identify,
            inbound: streams::InboundStreams::new(vec![bitswap_route, ping_route], metrics.clone()),
            kad,
            mdns: Toggle::from(mdns),
            stream,
        };
        let swarm = Swarm::new(
            transport,
            behaviour,
            peer_id,
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(config.idle_timeout),
        );

        let (cmd_tx, cmd_rx) = mpsc::channel(COMMANDS);
        let (net_tx, net_rx) = mpsc::channel(COMMANDS);
        let (peers_tx, peers_rx) = watch::channel(Arc::new(HashMap::new()));
        let listen_addrs = Arc::new(RwLock::new(Vec::new()));
        let status = Arc::new(RwLock::new(BootstrapStatus::default()));
        let (announce_tx, announce_rx) = mpsc::channel(COMMANDS);
        let mut task = SwarmTask {
            swarm,
            cmds: cmd_rx,
            net: net_rx,
            peers_tx,
            listen: listen_addrs.clone(),
            metrics: metrics.clone(),
            kad_protocol: KAD_PROTOCOL,
            dials: HashMap::new(),
            searches: HashMap::new(),
            provides: HashMap::new(),
            connected: HashMap::new(),
            bootstrap: bootstrap::Bootstrap::new(bootstrap),
            status: status.clone(),
            dht_peers: HashMap::new(),
            announcer: Some(announce_tx.clone()),
            announce_addrs: announce.clone(),
            new_port_dials: HashSet::new(),
            banned: HashMap::new(),
            provider_lookups: HashMap::new(),
            peer_lookups: HashMap::new(),
            routers,
            self_cmds: Some(cmd_tx.clone()),
        };

        let mut listeners = HashSet::new();
        for addr in &listen {
            match task.swarm.listen_on(addr.clone()) {
                Ok(id) => {
                    listeners.insert(id);
                }
                Err(e) => tracing::warn!(%addr, error = %e, "cannot listen"),
            }
        }
        if !listen.is_empty() && listeners.is_empty() {
            return Err(NetError::Listen("no listen address could be used".into()));
        }
        task.wait_listening(listeners, Duration::from_secs(10))
            .await?;
        for a in &announce {
            task.swarm.add_external_address(a.clone());
        }
        // Bootstrap dials happen at once; while the node has no peer they
        // are retried with backoff (see [`bootstrap`]).
        task.dial_bootstrap();
        task.bootstrap.schedule();

        let mut tasks = JoinSet::new();
        let bitswap = Bitswap::spawn(
            config.want_window,
            store,
            control.clone(),
            bitswap_in,
            metrics.clone(),
            peers_rx.clone(),
            net_tx,
            &mut tasks,
        );
        tasks.spawn(ping::serve(ping_in));
        let announcer = announce::Announcer {
            keys: Default::default(),
            sent_to: HashSet::new(),
            public: config.public,
            local: peer_id,
            cmds: cmd_tx.clone(),
            control: control.clone(),
            metrics: metrics.clone(),
            protocol: KAD_PROTOCOL,
        };
        tasks.spawn(announcer.run(announce_rx));
        tasks.spawn(task.run());
        Ok(Network {
            inner: Arc::new(Inner {
                peer_id,
                cmds: cmd_tx,
                bitswap,
                peers: peers_rx,
                listen: listen_addrs,
                announce,
                metrics,
                status,
                announcer: announce_tx,
                control,
                tasks: Mutex::new(tasks),
            }),
        })
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// Addresses peers can reach us at (the `announce` list if set, else
    /// the bound listen addresses), each ending in `/p2p/<peer id>`.
    pub fn addresses(&self) -> Vec<Multiaddr> {
        let base = if self.inner.announce.is_empty() {
            self.inner.listen.read().clone()
        } else {
            self.inner.announce.clone()
        };
        base.into_iter()
            .map(|a| a.with(libp2p::multiaddr::Protocol::P2p(self.inner.peer_id)))
            .collect()
    }

    /// What `disco id` prints.
    pub fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            peer_id: self.inner.peer_id.to_string(),
            addresses: self.addresses().iter().map(|a| a.to_string()).collect(),
            agent: AGENT.into(),
        }
    }

    /// Connected peers with the address of one connection each (`disco
    /// peers`).
    pub fn connected_peers(&self) -> Vec<(PeerId, Multiaddr)> {
        let mut v: Vec<_> = self
            .inner
            .peers
            .borrow()
            .iter()
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        v.sort_by_key(|(p, _)| p.to_bytes());
        v
    }

    /// A handle to open streams to peers and accept a protocol's streams
    /// (e.g. the mirror's `/disco/image-cid/1.0.0`).
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.inner.control.clone()
    }

    /// The live metrics.
    pub fn metrics(&self) -> Arc<NetMetrics> {
        self.inner.metrics.clone()
    }

    /// The bitswap engine.
    pub fn bitswap(&self) -> &Bitswap {
        &self.inner.bitswap
    }

    /// Connects to `addr` and waits for the connection.
    pub async fn dial(&self, addr: Multiaddr) -> std::result::Result<PeerId, NetError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmds
            .send(Command::Dial { addr, reply: tx })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Adds `cids` to what the node provides (keyed by multihash, as Kubo)
    /// and announces them to their closest peers; with `wait`, returns
    /// when the records were sent (else at once).
    pub async fn announce_many(
        &self,
        cids: &[Cid],
        wait: bool,
    ) -> std::result::Result<(), NetError> {
        let keys = cids.iter().map(|c| c.hash().to_bytes()).collect();
        let (tx, rx) = oneshot::channel();
        self.inner
            .announcer
            .send(announce::Request::Add(keys, wait.then_some(tx)))
            .await
            .map_err(|_| NetError::Stopped)?;
        if wait {
            rx.await.map_err(|_| NetError::Stopped)?;
        }
        Ok(())
    }

    /// Announces one CID (see [`Network::announce_many`]).
    pub async fn announce(&self, cid: &Cid, wait: bool) -> std::result::Result<(), NetError> {
        self.announce_many(std::slice::from_ref(cid), wait).await
    }

    /// Replaces the whole set of provided CIDs (what the store holds) and
    /// announces all of it (at start and every `reprovideinterval`).
    pub async fn announce_all(&self, cids: &[Cid]) -> std::result::Result<(), NetError> {
        let keys = cids.iter().map(|c| c.hash().to_bytes()).collect();
        self.inner
            .announcer
            .send(announce::Request::Replace(keys))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Providers of `cid`: this node's DHT records first, then those a DHT
    /// lookup finds, each with the addresses known for it; the receiver
    /// ends when the lookup does.
    pub async fn find_providers(
        &self,
        cid: &Cid,
        capacity: usize,
    ) -> std::result::Result<mpsc::Receiver<announce::DhtPeer>, NetError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.inner
            .cmds
            .send(Command::FindProviders {
                key: cid.hash().to_bytes(),
                found: tx,
            })
            .await
            .map_err(|_| NetError::Stopped)?;
        Ok(rx)
    }

    /// Addresses of `peer` (known, else looked up in the DHT; empty if
    /// not found).
    pub async fn find_peer(&self, peer: PeerId) -> std::result::Result<Vec<Multiaddr>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmds
            .send(Command::FindPeer { peer, reply: tx })
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Whether this node's store holds the block `cid`.
    pub async fn has_block(&self, cid: &Cid) -> bool {
        self.inner.bitswap.has(cid).await
    }

    /// Bootstrap and DHT state (`/disco/v1/node`, `disco peers`).
    pub fn bootstrap_status(&self) -> BootstrapStatus {
        self.inner.status.read().clone()
    }

    /// Stops all tasks now (also done when the last clone is dropped).
    pub fn shutdown(&self) {
        self.inner.tasks.lock().abort_all();
    }
}

#[async_trait]
impl BlockExchange for Network {
    async fn fetch(&self, cid: &Cid, timeout: Duration) -> Result<Bytes> {
        self.inner.bitswap.fetch(cid, timeout).await
    }

    async fn provide(&self, cid: &Cid) -> Result<()> {
        Ok(self.announce(cid, false).await?)
    }

    fn addresses(&self) -> Vec<String> {
        Network::addresses(self)
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    async fn connect(&self, addr: &str) -> Result<()> {
        let ma: Multiaddr = addr
            .parse()
            .map_err(|e| IpfsError::Invalid(format!("multiaddr {addr:?}: {e}")))?;
        self.dial(ma)
            .await
            .map_err(|e| IpfsError::Unavailable(e.to_string()))?;
        Ok(())
    }

    async fn peers(&self) -> Result<Vec<String>> {
        Ok(self
            .connected_peers()
            .into_iter()
            .map(|(p, a)| {
                let (bare, _) = swarm::split_peer(&a);
                bare.with(libp2p::multiaddr::Protocol::P2p(p)).to_string()
            })
            .collect())
    }
}
