//! The want manager (client side of bitswap): which blocks we want, which
//! peer each want-block is in flight with, who said HAVE / DONT_HAVE, when
//! to ask the DHT for providers, and which peers misbehave.
//!
//! Strategy: each want goes as want-block to one peer (a known holder if
//! any, else the least loaded peer, preferring peers that recently sent us
//! data) and as want-have to every other peer, so holders reveal
//! themselves. Each peer has a bounded window of want-blocks in flight;
//! wants beyond it wait. A want that every connected peer lacks triggers a
//! DHT provider search (bounded in number), repeated while it stays unmet.
//! A peer that sends bytes matching no wanted CID is banned and its wants
//! go elsewhere.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use libp2p::PeerId;
use multihash::Multihash;
use tokio::sync::oneshot;

use super::message::{Entry, Presence, WantType};
use super::peer::PeerShared;
use crate::ipfs::IpfsError;
use crate::ipfs::embedded::net::metrics::NetMetrics;

/// Multihash key of a want (blocks are keyed by multihash, whatever the
/// CID's codec or version).
pub(crate) type Mh = Multihash<64>;
/// Where a fetched block (or the failure to store it) is delivered.
pub(crate) type Waiter = oneshot::Sender<Result<Bytes, IpfsError>>;

/// Tunables of the want manager.
#[derive(Debug, Clone)]
pub(crate) struct ManagerConfig {
    /// Most want-blocks in flight per peer.
    pub window: usize,
    /// A peer silent this long while owing us blocks has its wants moved.
    pub stall_timeout: Duration,
    /// Unanswered wants older than this start a provider search.
    pub search_delay: Duration,
    /// An unmet want searches again (and re-asks all peers) this often.
    pub research_interval: Duration,
    /// Provider searches running at once.
    pub max_searches: usize,
    /// How long a peer that sent bad data is ignored.
    pub ban_duration: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            window: 128,
            stall_timeout: Duration::from_secs(5),
            search_delay: Duration::from_millis(500),
            research_interval: Duration::from_secs(5),
            max_searches: 4,
            ban_duration: Duration::from_secs(600),
        }
    }
}

/// Side effects the runner carries out.
#[derive(Debug)]
pub(crate) enum Action {
    /// Store a verified block, then deliver it to the waiters.
    Store { cid: Cid, data: Bytes },
    /// Look for providers of this multihash in the DHT (and connect).
    Search(Mh),
    /// Disconnect this peer (it sent bad data).
    Ban(PeerId),
}

struct Want {
    cid: Cid,
    waiters: Vec<Waiter>,
    priority: i32,
    block_peer: Option<PeerId>,
    block_since: Instant,
    asked: HashSet<PeerId>,
    haves: Vec<PeerId>,
    dont_haves: HashSet<PeerId>,
    tried: HashSet<PeerId>,
    created: Instant,
    last_search: Option<Instant>,
    waiting: bool,
}

struct PeerInfo {
    shared: Arc<PeerShared>,
    inflight: usize,
    last_recv: Instant,
    useful: bool,
}

/// Bounded set of recently finished wants (to tell late duplicates from
/// bad data).
struct Recent {
    order: VecDeque<Mh>,
    set: HashSet<Mh>,
}

const RECENT: usize = 16 * 1024;

impl Recent {
    fn insert(&mut self, mh: Mh) {
        if self.set.insert(mh) {
            self.order.push_back(mh);
            if self.order.len() > RECENT
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// The want manager's state.
pub(crate) struct Manager {
    cfg: ManagerConfig,
    wants: HashMap<Mh, Want>,
    peers: HashMap<PeerId, PeerInfo>,
    banned: HashMap<PeerId, Instant>,
    unsupported: HashSet<PeerId>,
    recent: Recent,
    storing: HashMap<Mh, Vec<Waiter>>,
    waiting: VecDeque<Mh>,
    searches: usize,
    priority: i32,
    metrics: Arc<NetMetrics>,
    actions: Vec<Action>,
}

impl Manager {
    /// An empty manager.
    pub fn new(cfg: ManagerConfig, metrics: Arc<NetMetrics>) -> Self {
        Manager {
            cfg,
            wants: HashMap::new(),
            peers: HashMap::new(),
            banned: HashMap::new(),
            unsupported: HashSet::new(),
            recent: Recent {
                order: VecDeque::new(),
                set: HashSet::new(),
            },
            storing: HashMap::new(),
            waiting: VecDeque::new(),
            searches: 0,
            priority: i32::MAX,
            metrics,
            actions: Vec::new(),
        }
    }

    /// Takes the pending side effects.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The outbox of a peer we know (to deliver its requests).
    pub fn peer(&self, peer: &PeerId) -> Option<&Arc<PeerShared>> {
        self.peers.get(peer).map(|p| &p.shared)
    }

    /// Until when `peer` is banned, if it was.
    pub fn banned_until(&self, peer: &PeerId) -> Option<Instant> {
        self.banned.get(peer).copied()
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.banned.get(peer).is_some_and(|until| *until > now)
    }

    /// Whether the peer refused every bitswap version.
    pub fn is_unsupported(&self, peer: &PeerId) -> bool {
        self.unsupported.contains(peer)
    }

    /// Peers the manager tracks.
    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// Peers known to lack bitswap.
    pub fn unsupported_ids(&self) -> Vec<PeerId> {
        self.unsupported.iter().copied().collect()
    }

    /// Number of outstanding wants.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.wants.len()
    }

    /// A new connected peer: it is asked for everything we want.
    pub fn add_peer(&mut self, shared: Arc<PeerShared>, now: Instant) {
        let peer = shared.peer;
        if self.peers.contains_key(&peer) {
            return;
        }
        self.peers.insert(
            peer,
            PeerInfo {
                shared,
                inflight: 0,
                last_recv: now,
                useful: false,
            },
        );
        let keys: Vec<Mh> = self.wants.keys().copied().collect();
        for mh in keys {
            self.dispatch(mh, now);
        }
    }

    /// A peer went away (disconnected or its stream failed): its wants are
    /// moved elsewhere.
    pub fn remove_peer(&mut self, peer: &PeerId, now: Instant) {
        let Some(info) = self.peers.remove(peer) else {
            return;
        };
        info.shared.close();
        let mut moved = Vec::new();
        for (mh, w) in self.wants.iter_mut() {
            w.asked.remove(peer);
            w.haves.retain(|p| p != peer);
            w.dont_haves.remove(peer);
            if w.block_peer == Some(*peer) {
                w.block_peer = None;
                moved.push(*mh);
            }
        }
        for mh in moved {
            self.dispatch(mh, now);
        }
    }

    /// Sending to a connected peer failed even on new streams: its
    /// want-blocks go elsewhere, but the peer stays (it is asked again as
    /// soon as it answers or a lookup names it).
    pub fn peer_failed(&mut self, peer: &PeerId, now: Instant) {
        let Some(info) = self.peers.get_mut(peer) else {
            return;
        };
        info.inflight = 0;
        let mut moved = Vec::new();
        for (mh, w) in self.wants.iter_mut() {
            w.asked.remove(peer);
            if w.block_peer == Some(*peer) {
                w.block_peer = None;
                w.tried.insert(*peer);
                moved.push(*mh);
            }
        }
        for mh in moved {
            self.dispatch(mh, now);
        }
    }

    /// A DHT lookup named `peer` as a provider of `mh`: it is treated as a
    /// holder (asked for the block even if it said no before or was
    /// already connected and asked).
    pub fn provider_found(&mut self, mh: &Mh, peer: PeerId, now: Instant) {
        let Some(w) = self.wants.get_mut(mh) else {
            return;
        };
        if !w.haves.contains(&peer) {
            w.haves.push(peer);
        }
        w.dont_haves.remove(&peer);
        w.tried.remove(&peer);
        w.asked.remove(&peer);
        if w.block_peer.is_none() {
            self.dispatch(*mh, now);
        }
    }

    /// A peer that speaks no bitswap.
    pub fn mark_unsupported(&mut self, peer: &PeerId, now: Instant) {
        self.unsupported.insert(*peer);
        self.remove_peer(peer, now);
    }

    /// Forgets that a disconnected peer lacked bitswap.
    pub fn forget(&mut self, peer: &PeerId) {
        self.unsupported.remove(peer);
    }

    /// A caller wants a block.
    pub fn want(&mut self, cid: Cid, waiter: Waiter, now: Instant) {
        let mh = *cid.hash();
        if let Some(ws) = self.storing.get_mut(&mh) {
            ws.push(waiter);
            return;
        }
        if let Some(w) = self.wants.get_mut(&mh) {
            w.waiters.push(waiter);
            return;
        }
        self.priority = self.priority.saturating_sub(1).max(1);
        self.wants.insert(
            mh,
            Want {
                cid,
                waiters: vec![waiter],
                priority: self.priority,
                block_peer: None,
                block_since: now,
                asked: HashSet::new(),
                haves: Vec::new(),
                dont_haves: HashSet::new(),
                tried: HashSet::new(),
                created: now,
                last_search: None,
                waiting: false,
            },
        );
        self.metrics.wants_outstanding.set(self.wants.len() as u64);
        self.dispatch(mh, now);
        if self.peers.is_empty() {
            self.search(mh, now);
        }
    }

    fn usable(&self, peer: &PeerId, now: Instant) -> bool {
        !self.is_banned(peer, now) && self.peers.contains_key(peer)
    }

    /// Sends the want where it should go now.
    fn dispatch(&mut self, mh: Mh, now: Instant) {
        let Some(w) = self.wants.get(&mh) else {
            return;
        };
        let window = self.cfg.window;
        let mut target = None;
        let mut full = false;
        if w.block_peer.is_none() {
            // A known holder first, else the least loaded peer that has not
            // said no, preferring peers that recently sent data.
            let holders = w.haves.iter().filter(|p| !w.tried.contains(p));
            let best_holder = holders
                .filter(|p| self.usable(p, now))
                .min_by_key(|p| self.peers.get(p).map_or(usize::MAX, |i| i.inflight))
                .copied();
            let pick = best_holder.or_else(|| {
                self.peers
                    .iter()
                    .filter(|(p, _)| {
                        !w.dont_haves.contains(p) && !w.tried.contains(p) && self.usable(p, now)
                    })
                    .min_by_key(|(_, i)| (!i.useful, i.inflight))
                    .map(|(p, _)| *p)
            });
            if let Some(p) = pick {
                if self.peers.get(&p).is_some_and(|i| i.inflight < window) {
                    target = Some(p);
                } else {
                    full = true;
                }
            }
        }
        let (cid, priority) = (w.cid, w.priority);
        // Who has not been asked yet gets a want-have.
        let others: Vec<PeerId> = self
            .peers
            .keys()
            .filter(|p| !w.asked.contains(p) && Some(**p) != target && self.usable(p, now))
            .copied()
            .collect();
        let Some(w) = self.wants.get_mut(&mh) else {
            return;
        };
        if let Some(p) = target {
            w.block_peer = Some(p);
            w.block_since = now;
            w.asked.insert(p);
            if let Some(info) = self.peers.get_mut(&p) {
                info.inflight += 1;
                let mut e = Entry::want(cid, WantType::Block, true);
                e.priority = priority;
                info.shared.send_wants([e]);
            }
        } else if full && !w.waiting {
            w.waiting = true;
            self.waiting.push_back(mh);
        }
        for p in others {
            w.asked.insert(p);
            if let Some(info) = self.peers.get(&p) {
                let mut e = Entry::want(cid, WantType::Have, true);
                e.priority = priority;
                info.shared.send_wants([e]);
            }
        }
    }

    /// Re-dispatches waiting wants while windows have room.
    fn drain_waiting(&mut self, now: Instant) {
        let n = self.waiting.len();
        for _ in 0..n {
            let Some(mh) = self.waiting.pop_front() else {
                break;
            };
            if let Some(w) = self.wants.get_mut(&mh) {
                w.waiting = false;
                self.dispatch(mh, now);
            }
            if self.peers.values().all(|i| i.inflight >= self.cfg.window) {
                break;
            }
        }
    }

    fn release(&mut self, peer: &PeerId) {
        if let Some(i) = self.peers.get_mut(peer) {
            i.inflight = i.inflight.saturating_sub(1);
        }
    }

    /// A HAVE or DONT_HAVE from a peer.
    pub fn presence(&mut self, peer: PeerId, cid: &Cid, p: Presence, now: Instant) {
        if let Some(i) = self.peers.get_mut(&peer) {
            i.last_recv = now;
        }
        let mh = *cid.hash();
        let Some(w) = self.wants.get_mut(&mh) else {
            return;
        };
        match p {
            Presence::Have => {
                if !w.haves.contains(&peer) {
                    w.haves.push(peer);
                }
                w.dont_haves.remove(&peer);
                if let Some(i) = self.peers.get_mut(&peer) {
                    i.useful = true;
                }
                if w.block_peer.is_none() {
                    self.dispatch(mh, now);
                }
            }
            Presence::DontHave => {
                w.dont_haves.insert(peer);
                w.haves.retain(|x| *x != peer);
                if w.block_peer == Some(peer) {
                    w.block_peer = None;
                    w.tried.insert(peer);
                    self.release(&peer);
                    self.dispatch(mh, now);
                    self.drain_waiting(now);
                }
                self.maybe_search(mh, now);
            }
        }
    }

    /// A block whose CID the reader recomputed from its bytes. Returns
    /// false if it matched no want (the peer is then banned, unless it is a
    /// late duplicate).
    pub fn block(&mut self, peer: PeerId, cid: Cid, data: Bytes, now: Instant) -> bool {
        if let Some(i) = self.peers.get_mut(&peer) {
            i.last_recv = now;
        }
        let mh = *cid.hash();
        let Some(w) = self.wants.remove(&mh) else {
            if self.recent.set.contains(&mh) || self.storing.contains_key(&mh) {
                self.metrics.blocks_duplicate.inc();
                return true;
            }
            self.metrics.blocks_rejected.inc();
            tracing::warn!(%peer, %cid, "bitswap: peer sent a block matching no wanted CID (corrupt or unsolicited); banning it");
            self.ban(peer, now);
            return false;
        };
        self.metrics.wants_outstanding.set(self.wants.len() as u64);
        self.metrics.blocks_received.inc();
        self.metrics.bytes_received.add(data.len() as u64);
        if let Some(bp) = w.block_peer {
            self.release(&bp);
        }
        if let Some(i) = self.peers.get_mut(&peer) {
            i.useful = true;
        }
        for p in &w.asked {
            if *p != peer
                && let Some(i) = self.peers.get(p)
            {
                i.shared.send_wants([Entry::cancel(w.cid)]);
            }
        }
        self.recent.insert(mh);
        self.storing.insert(mh, w.waiters);
        self.actions.push(Action::Store { cid: w.cid, data });
        self.drain_waiting(now);
        true
    }

    /// The block was stored (or failed to): deliver to the waiters.
    pub fn stored(&mut self, cid: &Cid, result: Result<Bytes, IpfsError>) {
        let Some(waiters) = self.storing.remove(cid.hash()) else {
            return;
        };
        for w in waiters {
            let r = match &result {
                Ok(b) => Ok(b.clone()),
                Err(e) => Err(IpfsError::Other(format!(
                    "storing fetched block {cid}: {e}"
                ))),
            };
            let _ = w.send(r);
        }
    }

    fn ban(&mut self, peer: PeerId, now: Instant) {
        self.banned.insert(peer, now + self.cfg.ban_duration);
        self.metrics.peers_banned.inc();
        self.actions.push(Action::Ban(peer));
        self.remove_peer(&peer, now);
    }

    /// A provider search finished.
    pub fn search_done(&mut self) {
        self.searches = self.searches.saturating_sub(1);
    }

    fn maybe_search(&mut self, mh: Mh, now: Instant) {
        let Some(w) = self.wants.get(&mh) else {
            return;
        };
        let nobody = w.block_peer.is_none()
            && w.haves.iter().all(|p| !self.usable(p, now))
            && self
                .peers
                .keys()
                .filter(|p| self.usable(p, now))
                .all(|p| w.dont_haves.contains(p) || w.tried.contains(p));
        if nobody {
            self.search(mh, now);
        }
    }

    fn search(&mut self, mh: Mh, now: Instant) {
        let Some(w) = self.wants.get_mut(&mh) else {
            return;
        };
        if w.last_search
            .is_some_and(|t| now.duration_since(t) < self.cfg.research_interval)
            || self.searches >= self.cfg.max_searches
        {
            return;
        }
        w.last_search = Some(now);
        self.searches += 1;
        self.metrics.dht_queries.inc();
        self.actions.push(Action::Search(mh));
    }

    /// Periodic work: drop abandoned wants, move wants off stalled peers,
    /// search for providers of unmet wants, re-ask peers.
    pub fn tick(&mut self, now: Instant) {
        // Abandoned wants (every caller timed out).
        let mut dead = Vec::new();
        for (mh, w) in self.wants.iter_mut() {
            w.waiters.retain(|x| !x.is_closed());
            if w.waiters.is_empty() {
                dead.push(*mh);
            }
        }
        for mh in dead {
            if let Some(w) = self.wants.remove(&mh) {
                if let Some(bp) = w.block_peer {
                    self.release(&bp);
                }
                for p in &w.asked {
                    if let Some(i) = self.peers.get(p) {
                        i.shared.send_wants([Entry::cancel(w.cid)]);
                    }
                }
                self.recent.insert(mh);
            }
        }
        self.metrics.wants_outstanding.set(self.wants.len() as u64);
        self.banned.retain(|_, until| *until > now);

        // Stalled peers: owe blocks, silent for too long.
        let stall = self.cfg.stall_timeout;
        let stalled: HashSet<PeerId> = self
            .peers
            .iter()
            .filter(|(_, i)| i.inflight > 0 && now.duration_since(i.last_recv) > stall)
            .map(|(p, _)| *p)
            .collect();
        let mut keys: Vec<(Instant, Mh)> =
            self.wants.iter().map(|(mh, w)| (w.created, *mh)).collect();
        keys.sort();
        for (_, mh) in keys {
            let Some(w) = self.wants.get_mut(&mh) else {
                continue;
            };
            if let Some(bp) = w.block_peer
                && stalled.contains(&bp)
                && now.duration_since(w.block_since) > stall
            {
                tracing::debug!(peer = %bp, cid = %w.cid, "bitswap: peer stalled, asking elsewhere");
                w.block_peer = None;
                w.tried.insert(bp);
                if let Some(i) = self.peers.get(&bp) {
                    i.shared.send_wants([Entry::cancel(w.cid)]);
                }
                self.release(&bp);
                self.dispatch(mh, now);
            }
            let Some(w) = self.wants.get_mut(&mh) else {
                continue;
            };
            let unmet = w.block_peer.is_none() && !w.waiting;
            let due = w
                .last_search
                .is_none_or(|t| now.duration_since(t) >= self.cfg.research_interval);
            if unmet && due && now.duration_since(w.created) >= self.cfg.search_delay {
                if w.last_search.is_some() {
                    // Peers may have got the content since: ask again.
                    w.asked.clear();
                    w.dont_haves.clear();
                    w.tried.clear();
                }
                self.search(mh, now);
                self.dispatch(mh, now);
            }
        }
        self.drain_waiting(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::block::raw_cid;

    fn setup(n: usize) -> (Manager, Vec<Arc<PeerShared>>, Instant) {
        let now = Instant::now();
        let mut m = Manager::new(
            ManagerConfig {
                window: 2,
                ..Default::default()
            },
            Arc::new(NetMetrics::default()),
        );
        let peers: Vec<_> = (0..n)
            .map(|_| Arc::new(PeerShared::new(PeerId::random())))
            .collect();
        for p in &peers {
            m.add_peer(p.clone(), now);
        }
        (m, peers, now)
    }

    fn kinds(p: &PeerShared) -> Vec<(Cid, WantType, bool)> {
        let mut v: Vec<_> = p
            .take_wants()
            .into_iter()
            .map(|e| (e.cid, e.want_type, e.cancel))
            .collect();
        v.sort_by_key(|x| x.0.to_bytes());
        v
    }

    #[test]
    fn want_block_to_one_want_have_to_others() {
        let (mut m, peers, now) = setup(3);
        let cid = raw_cid(b"x");
        let (tx, _rx) = oneshot::channel();
        m.want(cid, tx, now);
        let all: Vec<_> = peers.iter().map(|p| kinds(p)).collect();
        let blocks = all
            .iter()
            .filter(|k| k == &&vec![(cid, WantType::Block, false)])
            .count();
        let haves = all
            .iter()
            .filter(|k| k == &&vec![(cid, WantType::Have, false)])
            .count();
        assert_eq!((blocks, haves), (1, 2));
        assert!(
            m.take_actions().is_empty(),
            "peers exist: no DHT search yet"
        );
    }

    #[tokio::test]
    async fn block_completes_and_cancels_elsewhere() {
        let (mut m, peers, now) = setup(2);
        let data = Bytes::from_static(b"hello");
        let cid = raw_cid(&data);
        let (tx, rx) = oneshot::channel();
        m.want(cid, tx, now);
        for p in &peers {
            p.take_wants();
        }
        assert!(m.block(peers[0].peer, cid, data.clone(), now));
        let cancels = kinds(&peers[1]);
        assert_eq!(cancels, vec![(cid, WantType::Block, true)]);
        assert!(kinds(&peers[0]).is_empty());
        let actions = m.take_actions();
        assert!(matches!(&actions[..], [Action::Store { cid: c, .. }] if *c == cid));
        m.stored(&cid, Ok(data.clone()));
        assert_eq!(rx.await.unwrap().unwrap(), data);
        // A late duplicate is not bad data.
        assert!(m.block(peers[1].peer, cid, data, now));
        assert_eq!(m.metrics.blocks_duplicate.get(), 1);
    }

    #[test]
    fn dont_have_moves_want_block_to_holder() {
        let (mut m, peers, now) = setup(2);
        let cid = raw_cid(b"y");
        let (tx, _rx) = oneshot::channel();
        m.want(cid, tx, now);
        let first = if kinds(&peers[0]) == vec![(cid, WantType::Block, false)] {
            0
        } else {
            1
        };
        let other = 1 - first;
        peers[other].take_wants();
        m.presence(peers[other].peer, &cid, Presence::Have, now);
        assert!(
            kinds(&peers[other]).is_empty(),
            "holder noted, block still in flight"
        );
        m.presence(peers[first].peer, &cid, Presence::DontHave, now);
        assert_eq!(kinds(&peers[other]), vec![(cid, WantType::Block, false)]);
    }

    #[test]
    fn everyone_lacking_it_triggers_search() {
        let (mut m, peers, now) = setup(2);
        let cid = raw_cid(b"z");
        let (tx, _rx) = oneshot::channel();
        m.want(cid, tx, now);
        for p in &peers {
            m.presence(p.peer, &cid, Presence::DontHave, now);
        }
        let actions = m.take_actions();
        assert!(matches!(&actions[..], [Action::Search(mh)] if mh == cid.hash()));
    }

    #[test]
    fn no_peers_searches_at_once() {
        let (mut m, _, now) = setup(0);
        let (tx, _rx) = oneshot::channel();
        m.want(raw_cid(b"q"), tx, now);
        assert!(matches!(&m.take_actions()[..], [Action::Search(_)]));
    }

    #[test]
    fn bad_block_bans_peer_and_moves_its_wants() {
        let (mut m, peers, now) = setup(2);
        let cid = raw_cid(b"good");
        let (tx, _rx) = oneshot::channel();
        m.want(cid, tx, now);
        let holder = if kinds(&peers[0]) == vec![(cid, WantType::Block, false)] {
            0
        } else {
            1
        };
        let other = 1 - holder;
        peers[other].take_wants();
        // The holder sends bytes that hash to something nobody wanted.
        let bad = Bytes::from_static(b"evil");
        assert!(!m.block(peers[holder].peer, raw_cid(&bad), bad, now));
        assert!(m.is_banned(&peers[holder].peer, now));
        assert!(peers[holder].is_closed());
        assert_eq!(kinds(&peers[other]), vec![(cid, WantType::Block, false)]);
        assert!(
            m.take_actions()
                .iter()
                .any(|a| matches!(a, Action::Ban(p) if *p == peers[holder].peer))
        );
    }

    #[test]
    fn window_bounds_inflight_and_spreads_load() {
        let (mut m, peers, now) = setup(2);
        let cids: Vec<Cid> = (0u8..6).map(|i| raw_cid(&[i])).collect();
        let mut rxs = Vec::new();
        for c in &cids {
            let (tx, rx) = oneshot::channel();
            rxs.push(rx);
            m.want(*c, tx, now);
        }
        let blocks: Vec<usize> = peers
            .iter()
            .map(|p| kinds(p).iter().filter(|k| k.1 == WantType::Block).count())
            .collect();
        assert_eq!(blocks, vec![2, 2], "window of 2 on each peer");
        assert_eq!(m.waiting.len(), 2);
        // Peer 0 delivers one of its blocks: one waiting want moves in.
        let delivered = m
            .wants
            .values()
            .find(|w| w.block_peer == Some(peers[0].peer))
            .map(|w| w.cid)
            .unwrap();
        m.block(peers[0].peer, delivered, Bytes::new(), now);
        let after: usize = kinds(&peers[0])
            .iter()
            .filter(|k| k.1 == WantType::Block && !k.2)
            .count();
        assert_eq!(after, 1);
    }

    #[test]
    fn disconnect_moves_wants_and_stall_moves_wants() {
        let (mut m, peers, now) = setup(2);
        let cid = raw_cid(b"d");
        let (tx, _rx) = oneshot::channel();
        m.want(cid, tx, now);
        let holder = m.wants[cid.hash()].block_peer.unwrap();
        let other = peers.iter().find(|p| p.peer != holder).unwrap();
        other.take_wants();
        m.remove_peer(&holder, now);
        assert_eq!(kinds(other), vec![(cid, WantType::Block, false)]);
        // Now the remaining peer stalls.
        let later = now + Duration::from_secs(6);
        m.tick(later);
        assert_eq!(m.wants[cid.hash()].block_peer, None);
        assert!(
            m.take_actions()
                .iter()
                .any(|a| matches!(a, Action::Search(_)))
        );
    }

    #[test]
    fn abandoned_wants_are_cancelled() {
        let (mut m, peers, now) = setup(1);
        let cid = raw_cid(b"gone");
        let (tx, rx) = oneshot::channel();
        m.want(cid, tx, now);
        peers[0].take_wants();
        drop(rx);
        m.tick(now);
        assert_eq!(m.outstanding(), 0);
        assert_eq!(kinds(&peers[0]), vec![(cid, WantType::Block, true)]);
    }
}
