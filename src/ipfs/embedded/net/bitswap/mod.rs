//! Bitswap 1.2.0 (also answering 1.1.0 and 1.0.0), written for disco.
//!
//! - [`message`], [`prefix`], [`frame`]: the wire format.
//! - [`ledger`]: what each peer wants from us (server side).
//! - [`peer`]: per-peer task owning our long-lived outbound stream; it
//!   batches our wantlist changes with the blocks and presences we serve.
//! - [`inbound`]: reads peers' streams and recomputes block CIDs.
//! - [`manager`]: the want manager (client side), driven by one task.
//!
//! Everything talks to the manager task through one bounded channel; the
//! manager never waits on anyone (peer outboxes are non-blocking), so no
//! cycle of full channels can deadlock.

pub mod frame;
pub mod inbound;
pub mod ledger;
pub mod manager;
pub mod message;
pub mod peer;
pub mod prefix;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use self::manager::{Action, Manager, ManagerConfig, Waiter};
use self::message::{Entry, Presence, Version};
use self::peer::{PeerCtx, PeerShared};
use super::metrics::NetMetrics;
use crate::ipfs::IpfsError;
use crate::ipfs::block::IDENTITY;
use crate::ipfs::embedded::BlockStore;

/// `/ipfs/bitswap/1.2.0`.
pub const PROTOCOL_120: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
/// `/ipfs/bitswap/1.1.0`.
pub const PROTOCOL_110: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.1.0");
/// `/ipfs/bitswap/1.0.0`.
pub const PROTOCOL_100: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.0.0");

/// The protocol id of a version.
pub fn protocol(v: Version) -> StreamProtocol {
    match v {
        Version::V120 => PROTOCOL_120,
        Version::V110 => PROTOCOL_110,
        Version::V100 => PROTOCOL_100,
    }
}

/// Connected peers and one address of each, published by the swarm task.
pub type PeerSet = Arc<HashMap<PeerId, Multiaddr>>;

/// What bitswap asks of the swarm task.
#[derive(Debug)]
pub enum NetRequest {
    /// Find providers of this DHT key (a multihash) and connect to them;
    /// `done` is dropped or answered when the search ends.
    FindProviders {
        /// Multihash bytes.
        key: Vec<u8>,
        /// Completion signal.
        done: oneshot::Sender<()>,
        /// Providers as they are found (connected ones included).
        found: mpsc::Sender<PeerId>,
    },
    /// Close all connections to a misbehaving peer and refuse its new
    /// ones until the given time.
    Disconnect(PeerId, Instant),
}

/// Input of the manager task.
pub(crate) enum Event {
    Fetch {
        cid: Cid,
        reply: Waiter,
    },
    Message {
        peer: PeerId,
        wantlist: Vec<Entry>,
        full: bool,
        blocks: Vec<(Cid, Bytes)>,
        presences: Vec<(Cid, Presence)>,
        unverifiable: usize,
    },
    PeerFailed {
        peer: PeerId,
        unsupported: bool,
    },
    SearchDone,
    Providers {
        mh: manager::Mh,
        peers: Vec<PeerId>,
    },
    Stored {
        cid: Cid,
        result: Result<Bytes, IpfsError>,
    },
}

/// Providers of one search passed on at once (more are dropped: the
/// first ones are enough).
const FOUND: usize = 64;
/// Capacity of the manager's inbox.
const INBOX: usize = 1024;
/// Manager housekeeping period.
const TICK: Duration = Duration::from_millis(200);

/// Handle to the running bitswap engine.
#[derive(Clone)]
pub struct Bitswap {
    events: mpsc::Sender<Event>,
    store: Arc<dyn BlockStore>,
}

impl Bitswap {
    /// Spawns the engine's tasks into `tasks`: outbound streams are opened
    /// through `control`, inbound ones arrive on `incoming`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        window: usize,
        store: Arc<dyn BlockStore>,
        control: libp2p_stream::Control,
        incoming: futures::channel::mpsc::Receiver<super::streams::Incoming>,
        metrics: Arc<NetMetrics>,
        peers: watch::Receiver<PeerSet>,
        net: mpsc::Sender<NetRequest>,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(INBOX);
        tasks.spawn(inbound::accept_loop(incoming, tx.clone()));
        let ctx = Arc::new(PeerCtx {
            store: store.clone(),
            control,
            metrics: metrics.clone(),
            events: tx.clone(),
        });
        let cfg = ManagerConfig {
            window: window.max(1),
            ..ManagerConfig::default()
        };
        let mgr = Manager::new(cfg, metrics);
        tasks.spawn(run(mgr, rx, tx.clone(), peers, ctx, net));
        Bitswap { events: tx, store }
    }

    /// Whether the store holds `cid`.
    pub async fn has(&self, cid: &Cid) -> bool {
        self.store.has(cid).await.unwrap_or(false)
    }

    /// Fetches a block from peers (or the store), verified against `cid`
    /// and stored before it is returned.
    pub async fn fetch(&self, cid: &Cid, timeout: Duration) -> Result<Bytes, IpfsError> {
        if cid.hash().code() == IDENTITY {
            return Ok(Bytes::copy_from_slice(cid.hash().digest()));
        }
        if let Some(b) = self.store.get(cid).await? {
            return Ok(b);
        }
        let (tx, rx) = oneshot::channel();
        let wait = async {
            self.events
                .send(Event::Fetch {
                    cid: *cid,
                    reply: tx,
                })
                .await
                .map_err(|_| IpfsError::Unavailable("bitswap stopped".into()))?;
            rx.await
                .map_err(|_| IpfsError::Unavailable("bitswap stopped".into()))?
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(IpfsError::Timeout(format!(
                "block {cid} was not received from any peer within {timeout:?}"
            ))),
        }
    }
}

struct Runner {
    mgr: Manager,
    events: mpsc::Sender<Event>,
    ctx: Arc<PeerCtx>,
    net: mpsc::Sender<NetRequest>,
    peer_tasks: JoinSet<()>,
    side_tasks: JoinSet<()>,
    /// The connected peers last published by the swarm.
    connected: PeerSet,
}

async fn run(
    mgr: Manager,
    mut inbox: mpsc::Receiver<Event>,
    events: mpsc::Sender<Event>,
    mut peers: watch::Receiver<PeerSet>,
    ctx: Arc<PeerCtx>,
    net: mpsc::Sender<NetRequest>,
) {
    let mut r = Runner {
        mgr,
        events,
        ctx,
        net,
        peer_tasks: JoinSet::new(),
        side_tasks: JoinSet::new(),
        connected: PeerSet::default(),
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let set = peers.borrow_and_update().clone();
    r.sync_peers(&set);
    loop {
        tokio::select! {
            ev = inbox.recv() => match ev {
                Some(ev) => r.handle(ev),
                None => break,
            },
            changed = peers.changed() => {
                if changed.is_err() {
                    break;
                }
                let set = peers.borrow_and_update().clone();
                r.sync_peers(&set);
            }
            _ = tick.tick() => {
                // A connected peer is never forgotten: one whose task ended
                // is taken up again here.
                let set = r.connected.clone();
                r.sync_peers(&set);
                r.mgr.tick(Instant::now());
                while r.peer_tasks.try_join_next().is_some() {}
                while r.side_tasks.try_join_next().is_some() {}
            }
        }
        r.perform();
    }
}

impl Runner {
    fn spawn_peer(&mut self, peer: PeerId, now: Instant) {
        let shared = Arc::new(PeerShared::new(peer));
        self.peer_tasks
            .spawn(peer::run(shared.clone(), self.ctx.clone()));
        self.mgr.add_peer(shared, now);
    }

    fn sync_peers(&mut self, set: &PeerSet) {
        self.connected = set.clone();
        let now = Instant::now();
        for p in self.mgr.peer_ids() {
            if !set.contains_key(&p) {
                self.mgr.remove_peer(&p, now);
            }
        }
        for p in self.mgr.unsupported_ids() {
            if !set.contains_key(&p) {
                self.mgr.forget(&p);
            }
        }
        for p in set.keys() {
            if self.mgr.peer(p).is_none()
                && !self.mgr.is_banned(p, now)
                && !self.mgr.is_unsupported(p)
            {
                self.spawn_peer(*p, now);
            }
        }
    }

    fn handle(&mut self, ev: Event) {
        let now = Instant::now();
        match ev {
            Event::Fetch { cid, reply } => self.mgr.want(cid, reply, now),
            Event::Message {
                peer,
                wantlist,
                full,
                blocks,
                presences,
                unverifiable,
            } => {
                if self.mgr.is_banned(&peer, now) {
                    return;
                }
                if self.mgr.peer(&peer).is_none() && !self.mgr.is_unsupported(&peer) {
                    self.spawn_peer(peer, now);
                }
                if (!wantlist.is_empty() || full)
                    && let Some(p) = self.mgr.peer(&peer)
                {
                    p.push_requests(&wantlist, full);
                }
                if unverifiable > 0 {
                    tracing::debug!(%peer, unverifiable, "bitswap: ignored blocks with unsupported CID prefixes");
                }
                for (cid, data) in blocks {
                    if !self.mgr.block(peer, cid, data, now) {
                        break;
                    }
                }
                for (cid, p) in presences {
                    self.mgr.presence(peer, &cid, p, now);
                }
            }
            Event::PeerFailed { peer, unsupported } => {
                if unsupported {
                    self.mgr.mark_unsupported(&peer, now);
                } else {
                    self.mgr.peer_failed(&peer, now);
                }
            }
            Event::SearchDone => self.mgr.search_done(),
            Event::Providers { mh, peers } => {
                for p in peers {
                    if self.connected.contains_key(&p)
                        && self.mgr.peer(&p).is_none()
                        && !self.mgr.is_banned(&p, now)
                    {
                        // Known to hold it: worth asking even if it once
                        // refused our streams.
                        self.mgr.forget(&p);
                        self.spawn_peer(p, now);
                    }
                    self.mgr.provider_found(&mh, p, now);
                }
            }
            Event::Stored { cid, result } => self.mgr.stored(&cid, result),
        }
    }

    fn perform(&mut self) {
        for a in self.mgr.take_actions() {
            match a {
                Action::Store { cid, data } => {
                    let store = self.ctx.store.clone();
                    let events = self.events.clone();
                    self.side_tasks.spawn(async move {
                        let result = store.put(&cid, data.clone()).await.map(|()| data);
                        let _ = events.send(Event::Stored { cid, result }).await;
                    });
                }
                Action::Search(mh) => {
                    let (done, mut rx) = oneshot::channel();
                    let (found, mut providers) = mpsc::channel(FOUND);
                    let req = NetRequest::FindProviders {
                        key: mh.to_bytes(),
                        done,
                        found,
                    };
                    if self.net.try_send(req).is_err() {
                        self.mgr.search_done();
                        continue;
                    }
                    let events = self.events.clone();
                    self.side_tasks.spawn(async move {
                        loop {
                            tokio::select! {
                                Some(p) = providers.recv() => {
                                    let ev = Event::Providers { mh, peers: vec![p] };
                                    if events.send(ev).await.is_err() {
                                        return;
                                    }
                                }
                                _ = &mut rx => break,
                            }
                        }
                        let mut peers = Vec::new();
                        while let Ok(p) = providers.try_recv() {
                            peers.push(p);
                        }
                        if !peers.is_empty() {
                            let _ = events.send(Event::Providers { mh, peers }).await;
                        }
                        let _ = events.send(Event::SearchDone).await;
                    });
                }
                Action::Ban(peer) => {
                    let until = self.mgr.banned_until(&peer).unwrap_or_else(Instant::now);
                    let _ = self.net.try_send(NetRequest::Disconnect(peer, until));
                }
            }
        }
    }
}
