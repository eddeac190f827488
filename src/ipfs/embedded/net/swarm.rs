//! The task that owns the libp2p swarm. Everything else talks to it through
//! bounded channels; requests carry a oneshot reply and are tracked by the
//! swarm's own request ids (`ConnectionId` for dials, `QueryId` for DHT
//! queries).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, mdns};
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};

use super::NetError;
use super::behaviour::{Behaviour, BehaviourEvent};
use super::bitswap::{NetRequest, PeerSet};
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
    pub searches: HashMap<QueryId, oneshot::Sender<()>>,
    pub provides: HashMap<QueryId, oneshot::Sender<Result<(), NetError>>>,
    pub connected: HashMap<PeerId, (usize, Multiaddr)>,
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
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                cmd = self.cmds.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(req) = self.net.recv() => self.on_net(req),
            }
        }
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
            NetRequest::FindProviders { key, done } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(RecordKey::new(&key));
                self.searches.insert(id, done);
            }
            NetRequest::Disconnect(peer) => {
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
                let addr = endpoint.get_remote_address().clone();
                let entry = self.connected.entry(peer_id).or_insert((0, addr));
                entry.0 += 1;
                if entry.0 == 1 {
                    tracing::debug!(%peer_id, "peer connected");
                    self.publish_peers();
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
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial(error.to_string())));
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                tracing::debug!(%error, "inbound connection failed");
            }
            SwarmEvent::Behaviour(ev) => self.on_behaviour(ev),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, ev: BehaviourEvent) {
        match ev {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if info.protocols.contains(&self.kad_protocol) =>
            {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
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
                    QueryResult::Bootstrap(Err(e)) => {
                        tracing::debug!(error = %e, "DHT bootstrap failed");
                    }
                    _ => {}
                }
                if step.last
                    && let Some(done) = self.searches.remove(&id)
                {
                    let _ = done.send(());
                }
            }
            _ => {}
        }
    }
}
