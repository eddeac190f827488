//! The task that owns the libp2p swarm. Everything else talks to it through
//! bounded channels; requests carry a oneshot reply and are tracked by the
//! swarm's own request ids (`ConnectionId` for dials, `QueryId` for DHT
//! queries).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, mdns};
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};

use super::NetError;
use super::announce::{self, DhtPeer};
use super::behaviour::{Behaviour, BehaviourEvent};
use super::bitswap::{NetRequest, PeerSet};
use super::bootstrap::{Bootstrap, BootstrapStatus};
use super::metrics::NetMetrics;

/// Requests to the swarm task.
pub(crate) enum Command {
    /// Connect to a multiaddr (with or without `/p2p/<id>`).
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    /// Record locally and publish to the DHT that we provide `key`; with
    /// `wait`, reply once the publication finished.
    Provide {
        key: Vec<u8>,
        wait: bool,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Record in our own DHT store that we provide these keys.
    ProvideLocal { keys: Vec<Vec<u8>> },
    /// The DHT server peers we know, with addresses.
    DhtPeers {
        reply: oneshot::Sender<Vec<DhtPeer>>,
    },
    /// Addresses to give in provider records (without `/p2p`).
    Addresses {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Providers of `key` (our store's records first, then a DHT lookup),
    /// sent as found; the channel closes when the lookup ends.
    FindProviders {
        key: Vec<u8>,
        found: mpsc::Sender<DhtPeer>,
    },
    /// Addresses of a peer: known ones, else a DHT lookup (empty if not
    /// found).
    FindPeer {
        peer: PeerId,
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
}

/// Most DHT server peers remembered for announcing.
const MAX_DHT_PEERS: usize = 8192;

/// Whether a dial failed because the local port was taken (a reuse-port
/// dial bound to the listen port another socket holds).
fn addr_in_use(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::AddrInUse
                || io.raw_os_error() == Some(libc::EADDRINUSE))
        {
            return true;
        }
        cur = err.source();
    }
    let text = e.to_string();
    text.contains("Address already in use") || text.contains("os error 98")
}

/// Splits `/.../p2p/<id>` into the address and the peer id.
pub fn split_peer(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut a = addr.clone();
    match a.pop() {
        Some(Protocol::P2p(p)) => (a, Some(p)),
        _ => (addr.clone(), None),
    }
}

pub(crate) struct SwarmTask {
    pub swarm: Swarm<Behaviour>,
    pub cmds: mpsc::Receiver<Command>,
    pub net: mpsc::Receiver<NetRequest>,
    pub peers_tx: watch::Sender<PeerSet>,
    pub listen: Arc<RwLock<Vec<Multiaddr>>>,
    pub metrics: Arc<NetMetrics>,
    pub kad_protocol: StreamProtocol,
    pub dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetError>>>,
    pub searches: HashMap<QueryId, (oneshot::Sender<()>, mpsc::Sender<PeerId>)>,
    pub provides: HashMap<QueryId, oneshot::Sender<Result<(), NetError>>>,
    pub connected: HashMap<PeerId, (usize, Multiaddr)>,
    pub bootstrap: Bootstrap,
    pub status: Arc<RwLock<BootstrapStatus>>,
    /// DHT server peers seen (identify, routing table), for announcing.
    pub dht_peers: HashMap<PeerId, Vec<Multiaddr>>,
    pub announcer: Option<mpsc::Sender<announce::Request>>,
    /// Addresses given in provider records (`announce`, else listen).
    pub announce_addrs: Vec<Multiaddr>,
    /// Dials already made from a new port (not retried again).
    pub new_port_dials: HashSet<ConnectionId>,
    /// Peers banned for sending bad data, until when: their new
    /// connections (inbound or outbound) are closed at once.
    pub banned: HashMap<PeerId, Instant>,
    /// Provider lookups for the routing API.
    pub provider_lookups: HashMap<QueryId, (mpsc::Sender<DhtPeer>, HashSet<PeerId>)>,
    /// Peer lookups for the routing API.
    pub peer_lookups: HashMap<QueryId, (PeerId, oneshot::Sender<Vec<Multiaddr>>)>,
    /// Delegated routers asked besides the DHT.
    pub routers: Option<Arc<super::routers::Routers>>,
    /// A sender of our own commands (for router lookups' dials).
    pub self_cmds: Option<mpsc::Sender<Command>>,
}

impl SwarmTask {
    /// Polls the swarm until every listener reported an address or failed.
    pub async fn wait_listening(
        &mut self,
        mut pending: HashSet<libp2p::core::transport::ListenerId>,
        timeout: Duration,
    ) -> Result<(), NetError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut errors = Vec::new();
        let total = pending.len();
        while !pending.is_empty() {
            let ev = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| NetError::Listen("timed out waiting for listeners".into()))?;
            match &ev {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    pending.remove(listener_id);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } => {
                    pending.remove(listener_id);
                    errors.push(format!("{reason:?}"));
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    pending.remove(listener_id);
                    errors.push(error.to_string());
                }
                _ => {}
            }
            self.on_event(ev);
        }
        if total > 0 && errors.len() == total {
            return Err(NetError::Listen(errors.join("; ")));
        }
        Ok(())
    }

    /// Runs until every command sender is gone.
    pub async fn run(mut self) {
        let mut status_tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            let retry = self.bootstrap.next;
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                cmd = self.cmds.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(req) = self.net.recv() => self.on_net(req),
                _ = tokio::time::sleep_until(retry.unwrap_or_else(tokio::time::Instant::now)), if retry.is_some() => {
                    self.bootstrap.next = None;
                    if self.connected.is_empty() {
                        self.dial_bootstrap();
                        self.bootstrap.schedule();
                    }
                }
                _ = status_tick.tick() => self.publish_status(),
            }
        }
    }

    /// Dials every configured bootstrap peer not connected.
    pub fn dial_bootstrap(&mut self) {
        if self.bootstrap.peers.is_empty() {
            return;
        }
        self.bootstrap.attempts += 1;
        tracing::debug!(attempt = self.bootstrap.attempts, "dialing bootstrap peers");
        for addr in self.bootstrap.peers.clone() {
            if let (_, Some(p)) = split_peer(&addr)
                && self.connected.contains_key(&p)
            {
                continue;
            }
            self.metrics.bootstrap_dials.inc();
            let (tx, _rx) = oneshot::channel();
            self.dial(addr, tx);
        }
    }

    /// Starts a DHT refresh (bootstrap of the routing table).
    fn refresh(&mut self) {
        if self.swarm.behaviour_mut().kad.bootstrap().is_ok() {
            self.metrics.dht_queries.inc();
            self.bootstrap.last_refresh_start = Some(std::time::Instant::now());
        }
    }

    fn routing_table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|b| b.num_entries())
            .sum()
    }

    fn publish_status(&mut self) {
        let connected: Vec<PeerId> = self.connected.keys().copied().collect();
        let table = self.routing_table_size();
        let st = self.bootstrap.status(&connected, connected.len(), table);
        *self.status.write() = st;
    }

    fn trigger_announce(&self) {
        if let Some(a) = &self.announcer {
            let _ = a.try_send(announce::Request::Refresh);
        }
    }

    fn remember_dht_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() || addrs.is_empty() {
            return;
        }
        let known = self.dht_peers.contains_key(&peer);
        if !known && self.dht_peers.len() >= MAX_DHT_PEERS {
            return;
        }
        let addrs: Vec<Multiaddr> = addrs.into_iter().map(|a| split_peer(&a).0).collect();
        self.dht_peers.insert(peer, addrs);
        if !known {
            self.trigger_announce();
        }
    }

    /// Addresses we know for `peer` (without `/p2p`): ours if it is us,
    /// else from the directory, the routing table and its connection.
    fn known_addresses(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        if peer == self.swarm.local_peer_id() {
            return if self.announce_addrs.is_empty() {
                self.listen.read().clone()
            } else {
                self.announce_addrs.clone()
            };
        }
        let mut out: Vec<Multiaddr> = self.dht_peers.get(peer).cloned().unwrap_or_default();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for e in bucket.iter() {
                if e.node.key.preimage() == peer {
                    out.extend(e.node.value.iter().cloned());
                }
            }
        }
        if out.is_empty()
            && let Some((_, a)) = self.connected.get(peer)
        {
            out.push(split_peer(a).0);
        }
        out.dedup();
        out
    }

    fn dht_peer_list(&mut self) -> Vec<DhtPeer> {
        let mut all = self.dht_peers.clone();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for e in bucket.iter() {
                let p = *e.node.key.preimage();
                let addrs: Vec<Multiaddr> = e.node.value.iter().cloned().collect();
                all.entry(p).or_insert(addrs);
            }
        }
        all.into_iter().collect()
    }

    /// Dials `addr`; the reply is sent when the connection is up or failed.
    pub fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, NetError>>) {
        let (bare, peer) = split_peer(&addr);
        let opts = match peer {
            Some(p) => {
                if p == *self.swarm.local_peer_id() {
                    let _ = reply.send(Err(NetError::Dial("cannot dial self".into())));
                    return;
                }
                self.swarm.behaviour_mut().kad.add_address(&p, bare.clone());
                if self.connected.contains_key(&p) {
                    let _ = reply.send(Ok(p));
                    return;
                }
                DialOpts::peer_id(p)
                    .addresses(vec![bare])
                    .condition(PeerCondition::Always)
                    .build()
            }
            None => DialOpts::unknown_peer_id().address(addr).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.dials.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NetError::Dial(e.to_string())));
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { addr, reply } => self.dial(addr, reply),
            Command::ProvideLocal { keys } => {
                let me = *self.swarm.local_peer_id();
                let store = self.swarm.behaviour_mut().kad.store_mut();
                for k in keys {
                    let rec = kad::ProviderRecord::new(RecordKey::from(k), me, Vec::new());
                    if let Err(e) = kad::store::RecordStore::add_provider(store, rec) {
                        tracing::warn!(error = %e, "cannot record a provided key");
                        break;
                    }
                }
            }
            Command::DhtPeers { reply } => {
                let _ = reply.send(self.dht_peer_list());
            }
            Command::FindProviders { key, found } => {
                let rkey = RecordKey::new(&key);
                let now = std::time::Instant::now();
                let mut sent = HashSet::new();
                let local: Vec<kad::ProviderRecord> = kad::store::RecordStore::providers(
                    self.swarm.behaviour_mut().kad.store_mut(),
                    &rkey,
                );
                for rec in local.into_iter().filter(|r| !r.is_expired(now)) {
                    let addrs = if rec.addresses.is_empty() {
                        self.known_addresses(&rec.provider)
                    } else {
                        rec.addresses
                    };
                    sent.insert(rec.provider);
                    let _ = found.try_send((rec.provider, addrs));
                }
                let id = self.swarm.behaviour_mut().kad.get_providers(rkey);
                self.metrics.dht_queries.inc();
                self.provider_lookups.insert(id, (found, sent));
            }
            Command::FindPeer { peer, reply } => {
                let known = self.known_addresses(&peer);
                if !known.is_empty() {
                    let _ = reply.send(known);
                } else {
                    let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                    self.metrics.dht_queries.inc();
                    self.peer_lookups.insert(id, (peer, reply));
                }
            }
            Command::Addresses { reply } => {
                let list = if self.announce_addrs.is_empty() {
                    self.listen.read().clone()
                } else {
                    self.announce_addrs.clone()
                };
                let _ = reply.send(list);
            }
            Command::Provide { key, wait, reply } => {
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(RecordKey::new(&key))
                {
                    Ok(id) => {
                        self.metrics.dht_queries.inc();
                        if wait {
                            self.provides.insert(id, reply);
                        } else {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht(e.to_string())));
                    }
                }
            }
        }
    }

    fn on_net(&mut self, req: NetRequest) {
        match req {
            NetRequest::FindProviders { key, done, found } => {
                if let (Some(r), Some(cmds)) = (&self.routers, &self.self_cmds) {
                    r.lookup(key.clone(), cmds.clone(), found.clone());
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(RecordKey::new(&key));
                self.searches.insert(id, (done, found));
            }
            NetRequest::Disconnect(peer, until) => {
                let now = Instant::now();
                self.banned.retain(|_, t| *t > now);
                self.banned.insert(peer, until);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn publish_peers(&mut self) {
        let set: HashMap<PeerId, Multiaddr> = self
            .connected
            .iter()
            .map(|(p, (_, a))| (*p, a.clone()))
            .collect();
        self.metrics.peers.set(set.len() as u64);
        self.peers_tx.send_replace(Arc::new(set));
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "IPFS node listening");
                let mut l = self.listen.write();
                if !l.contains(&address) {
                    l.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen.write().retain(|a| a != &address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if self
                    .banned
                    .get(&peer_id)
                    .is_some_and(|until| *until > Instant::now())
                {
                    tracing::debug!(%peer_id, "closing a connection of a banned peer");
                    self.swarm.close_connection(connection_id);
                    if let Some(reply) = self.dials.remove(&connection_id) {
                        let _ = reply.send(Err(NetError::Dial("peer is banned".into())));
                    }
                    return;
                }
                let addr = endpoint.get_remote_address().clone();
                let first_peer = self.connected.is_empty();
                let entry = self.connected.entry(peer_id).or_insert((0, addr));
                entry.0 += 1;
                if entry.0 == 1 {
                    tracing::debug!(%peer_id, "peer connected");
                    self.publish_peers();
                }
                self.new_port_dials.remove(&connection_id);
                self.bootstrap.connected();
                let is_bootstrap = self.bootstrap.ids.contains(&peer_id);
                if (first_peer || is_bootstrap) && self.bootstrap.refresh_due() {
                    self.refresh();
                }
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    tracing::debug!(%peer_id, "peer disconnected");
                    self.connected.remove(&peer_id);
                    self.publish_peers();
                    if self.connected.is_empty() && !self.bootstrap.peers.is_empty() {
                        tracing::info!("lost every peer; reconnecting to the bootstrap peers");
                        self.bootstrap.lost_all();
                    }
                } else if let Some(e) = self.connected.get_mut(&peer_id) {
                    e.0 = num_established as usize;
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(?peer_id, %error, "dial failed");
                let retried = !self.new_port_dials.remove(&connection_id)
                    && self.redial_from_new_port(peer_id, &error, connection_id);
                if retried {
                    return;
                }
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial(error.to_string())));
                }
                if peer_id.is_some_and(|p| self.bootstrap.ids.contains(&p)) {
                    self.bootstrap.last_error = Some(error.to_string());
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(%error, "inbound connection failed");
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
            _ => {}
        }
    }

    /// A reuse-port dial that failed with EADDRINUSE is made again from
    /// an ephemeral port; the caller waiting for it gets the new dial's
    /// outcome. True if a new dial was started.
    fn redial_from_new_port(
        &mut self,
        peer: Option<PeerId>,
        error: &libp2p::swarm::DialError,
        old: ConnectionId,
    ) -> bool {
        let libp2p::swarm::DialError::Transport(errs) = error else {
            return false;
        };
        let addrs: Vec<Multiaddr> = errs
            .iter()
            .filter(|(_, e)| addr_in_use(e))
            .map(|(a, _)| split_peer(a).0)
            .collect();
        if addrs.is_empty() {
            return false;
        }
        tracing::info!(
            ?peer,
            ?addrs,
            "local port in use; dialing again from an ephemeral port"
        );
        let opts = match peer {
            Some(p) => DialOpts::peer_id(p)
                .addresses(addrs)
                .condition(PeerCondition::Always)
                .allocate_new_port()
                .build(),
            None => DialOpts::unknown_peer_id()
                .address(addrs[0].clone())
                .allocate_new_port()
                .build(),
        };
        let id = opts.connection_id();
        if self.swarm.dial(opts).is_err() {
            return false;
        }
        self.new_port_dials.insert(id);
        if let Some(reply) = self.dials.remove(&old) {
            self.dials.insert(id, reply);
        }
        true
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if info.protocols.contains(&self.kad_protocol) =>
            {
                for addr in info.listen_addrs.iter() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, addr.clone());
                }
                self.remember_dht_peer(peer_id, info.listen_addrs);
                if self.bootstrap.refreshes == 0 && self.bootstrap.refresh_due() {
                    self.refresh();
                }
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) => {
                self.remember_dht_peer(peer, addresses.into_vec());
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                for (peer, addr) in list {
                    tracing::debug!(%peer, %addr, "mDNS discovered peer");
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.connected.contains_key(&peer) {
                        let opts = DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            }) => {
                match result {
                    QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders {
                        providers,
                        ..
                    })) => {
                        let me = *self.swarm.local_peer_id();
                        if let Some((_, found)) = self.searches.get(&id) {
                            for p in providers.iter().filter(|p| **p != me) {
                                let _ = found.try_send(*p);
                            }
                        }
                        if self.provider_lookups.contains_key(&id) {
                            let fresh: Vec<PeerId> = providers.iter().copied().collect();
                            let with_addrs: Vec<DhtPeer> = fresh
                                .into_iter()
                                .map(|p| (p, self.known_addresses(&p)))
                                .collect();
                            if let Some((tx, sent)) = self.provider_lookups.get_mut(&id) {
                                for (p, a) in with_addrs {
                                    if sent.insert(p) {
                                        let _ = tx.try_send((p, a));
                                    }
                                }
                            }
                        }
                        for p in providers {
                            if p != me && !self.connected.contains_key(&p) {
                                tracing::debug!(peer = %p, "dialing provider");
                                let opts = DialOpts::peer_id(p)
                                    .condition(PeerCondition::DisconnectedAndNotDialing)
                                    .build();
                                let _ = self.swarm.dial(opts);
                            }
                        }
                    }
                    QueryResult::GetProviders(Err(e)) => {
                        tracing::debug!(error = %e, "provider search failed");
                    }
                    QueryResult::StartProviding(r) => {
                        if let Err(e) = &r {
                            tracing::debug!(error = %e, "provide failed");
                        }
                        if let Some(reply) = self.provides.remove(&id) {
                            let _ =
                                reply.send(r.map(|_| ()).map_err(|e| NetError::Dht(e.to_string())));
                        }
                    }
                    QueryResult::GetClosestPeers(r) => {
                        if let Some((peer, reply)) = self.peer_lookups.remove(&id) {
                            let peers = match r {
                                Ok(ok) => ok.peers,
                                Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                            };
                            let mut addrs: Vec<Multiaddr> = peers
                                .into_iter()
                                .filter(|i| i.peer_id == peer)
                                .flat_map(|i| i.addrs)
                                .map(|a| split_peer(&a).0)
                                .collect();
                            if addrs.is_empty() {
                                addrs = self.known_addresses(&peer);
                            }
                            let _ = reply.send(addrs);
                        }
                    }
                    QueryResult::Bootstrap(Err(e)) => {
                        tracing::debug!(error = %e, "DHT bootstrap failed");
                    }
                    QueryResult::Bootstrap(Ok(kad::BootstrapOk {
                        num_remaining: 0, ..
                    })) => {
                        self.bootstrap.refreshes += 1;
                        self.bootstrap.last_refresh = Some(std::time::SystemTime::now());
                        tracing::debug!("DHT refreshed");
                        self.trigger_announce();
                    }
                    _ => {}
                }
                if step.last {
                    if let Some((done, _)) = self.searches.remove(&id) {
                        let _ = done.send(());
                    }
                    self.provider_lookups.remove(&id);
                }
            }
            _ => {}
        }
    }
}
