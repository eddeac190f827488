//! Announcing what the node stores: provider records for the roots a
//! puller looks up (image repositories, manifests, blobs), not every block.
//!
//! On a private network (`public: false`) records are sent in batches: for
//! every key the announcer picks the [`REPLICATION`] peers closest to it
//! (Kademlia XOR distance) among all DHT server peers the node knows, and
//! sends each peer all its records as `ADD_PROVIDER` messages on one
//! `/ipfs/kad/1.0.0` stream — no lookup per key, so 10,000 images
//! re-announce in seconds. On the public network, where no node knows the
//! closest peers of a key without asking, each key is published by a DHT
//! query instead ([`PUBLIC_QUERIES`] at a time).
//!
//! Runs:
//! - `replace` (at start, in the background, and every
//!   `reprovideinterval`): the whole set, to every key's closest peers;
//! - `add` (push, clone): the new keys, to their closest peers;
//! - `refresh` (after a DHT bootstrap, or when peers join the routing
//!   table): only the peers that joined since the last run get the records
//!   they are now among the closest for, so a node that started before its
//!   site catches up as the site comes up, until every record sits on its
//!   closest peers.
//!
//! Sending is bounded: [`PEERS_AT_ONCE`] peers at a time, at most
//! [`RECORDS_PER_SECOND`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use futures::stream::{self, StreamExt};
use libp2p::kad::KBucketKey;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::NetError;
use super::metrics::NetMetrics;
use super::swarm::Command;
use crate::ipfs::unixfs::dagpb::{put_bytes_field, put_varint, put_varint_field};

/// Peers each record is sent to (Kademlia's k, as Kubo).
pub const REPLICATION: usize = 20;
/// Peers sent to at once.
pub const PEERS_AT_ONCE: usize = 8;
/// Records sent per second, at most (all peers together).
pub const RECORDS_PER_SECOND: u64 = 20_000;
/// DHT queries at once on the public network.
pub const PUBLIC_QUERIES: usize = 8;
/// How long the announcer waits for more triggers before a run.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// Time allowed to reach one peer and write its records.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// `ADD_PROVIDER` in the DHT protocol's message type enum.
const ADD_PROVIDER: u64 = 2;

/// Requests to the announcer.
pub(crate) enum Request {
    /// The whole set of keys (multihash bytes) the node provides.
    Replace(Vec<Vec<u8>>),
    /// Keys to add and announce now.
    Add(Vec<Vec<u8>>, Option<oneshot::Sender<()>>),
    /// The routing table grew: announce to the peers that joined.
    Refresh,
}

/// A DHT server peer the swarm knows, with its addresses.
pub(crate) type DhtPeer = (PeerId, Vec<Multiaddr>);

/// The announcer's state.
pub(crate) struct Announcer {
    pub keys: BTreeSet<Vec<u8>>,
    /// Peers that hold every record they are among the closest for.
    pub sent_to: HashSet<PeerId>,
    pub public: bool,
    pub local: PeerId,
    pub cmds: mpsc::Sender<Command>,
    pub control: libp2p_stream::Control,
    pub metrics: Arc<NetMetrics>,
    pub protocol: libp2p::StreamProtocol,
}

impl Announcer {
    /// Runs until every request sender is gone.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.recv().await {
            // Gather what arrives meanwhile into one run.
            let mut reqs = vec![first];
            let deadline = tokio::time::Instant::now() + DEBOUNCE;
            while let Ok(Some(r)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                reqs.push(r);
            }
            let mut full = false;
            let mut added = BTreeSet::new();
            let mut waiters = Vec::new();
            for r in reqs {
                match r {
                    Request::Replace(keys) => {
                        self.keys = keys.into_iter().collect();
                        full = true;
                    }
                    Request::Add(keys, w) => {
                        added.extend(keys);
                        waiters.extend(w);
                    }
                    Request::Refresh => {}
                }
            }
            self.keys.extend(added.iter().cloned());
            self.run_once(full, added).await;
            for w in waiters {
                let _ = w.send(());
            }
        }
    }

    async fn dht_peers(&self) -> Vec<DhtPeer> {
        let (tx, rx) = oneshot::channel();
        if self
            .cmds
            .send(Command::DhtPeers { reply: tx })
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    async fn run_once(&mut self, full: bool, added: BTreeSet<Vec<u8>>) {
        let started = Instant::now();
        let keys: Vec<Vec<u8>> = self.keys.iter().cloned().collect();
        // Our own store answers for them whatever happens below.
        let _ = self
            .cmds
            .send(Command::ProvideLocal { keys: keys.clone() })
            .await;
        if self.public {
            let work: Vec<Vec<u8>> = if full {
                keys.clone()
            } else {
                added.into_iter().collect()
            };
            self.publish_by_query(&work).await;
            if full {
                self.finish(started, work.len());
            }
            return;
        }
        let peers = self.dht_peers().await;
        let known: HashSet<PeerId> = peers.iter().map(|(p, _)| *p).collect();
        let joined: HashSet<PeerId> = known.difference(&self.sent_to).copied().collect();
        if !full && added.is_empty() && joined.is_empty() {
            return;
        }
        // Which peer gets which records.
        let mut plan: HashMap<PeerId, Vec<Vec<u8>>> = HashMap::new();
        let pkeys: Vec<(PeerId, KBucketKey<PeerId>)> = peers
            .iter()
            .map(|(p, _)| (*p, KBucketKey::from(*p)))
            .collect();
        let mut run_keys = 0usize;
        for k in &keys {
            let to_all = full || added.contains(k);
            if !to_all && joined.is_empty() {
                continue;
            }
            let target = KBucketKey::new(k.clone());
            let mut by_distance: Vec<_> = pkeys
                .iter()
                .map(|(p, pk)| (target.distance(pk), *p))
                .collect();
            by_distance.sort();
            let mut any = false;
            for (_, p) in by_distance.into_iter().take(REPLICATION) {
                if to_all || joined.contains(&p) {
                    plan.entry(p).or_default().push(k.clone());
                    any = true;
                }
            }
            if any || to_all {
                run_keys += 1;
            }
        }
        let addrs: HashMap<PeerId, Vec<Multiaddr>> = peers.into_iter().collect();
        let ours = self.own_addresses().await;
        let jobs: Vec<_> = plan
            .into_iter()
            .map(|(peer, ks)| {
                let a = addrs.get(&peer).cloned().unwrap_or_default();
                let link = self.link();
                let ours = ours.clone();
                async move {
                    let ok = link.send_records(peer, &a, &ks, &ours).await;
                    (peer, ok)
                }
            })
            .collect();
        let results: Vec<(PeerId, bool)> = stream::iter(jobs)
            .buffer_unordered(PEERS_AT_ONCE)
            .collect()
            .await;
        let failed: HashSet<PeerId> = results
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(p, _)| *p)
            .collect();
        if full {
            self.sent_to = known.difference(&failed).copied().collect();
        } else {
            self.sent_to
                .extend(joined.iter().filter(|p| !failed.contains(p)).copied());
        }
        for p in &failed {
            self.sent_to.remove(p);
        }
        tracing::debug!(
            keys = run_keys,
            peers = results.len(),
            failed = failed.len(),
            full,
            "announce run finished"
        );
        if full || !joined.is_empty() {
            self.finish(started, run_keys);
        }
    }

    fn finish(&self, started: Instant, keys: usize) {
        self.metrics
            .announce_last_ms
            .set(started.elapsed().as_millis() as u64);
        self.metrics.announce_last_keys.set(keys as u64);
        self.metrics.announce_runs.inc();
    }

    async fn own_addresses(&self) -> Vec<Multiaddr> {
        let (tx, rx) = oneshot::channel();
        if self
            .cmds
            .send(Command::Addresses { reply: tx })
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Publishes each key by a DHT query (public network).
    async fn publish_by_query(&self, keys: &[Vec<u8>]) {
        let jobs: Vec<_> = keys
            .iter()
            .map(|k| {
                let link = self.link();
                let key = k.clone();
                async move {
                    let (tx, rx) = oneshot::channel();
                    let cmd = Command::Provide {
                        key,
                        wait: true,
                        reply: tx,
                    };
                    if link.cmds.send(cmd).await.is_ok() && matches!(rx.await, Ok(Ok(()))) {
                        link.metrics.records_announced.inc();
                    }
                }
            })
            .collect();
        stream::iter(jobs)
            .buffer_unordered(PUBLIC_QUERIES)
            .collect::<Vec<()>>()
            .await;
    }

    fn link(&self) -> Link {
        Link {
            local: self.local,
            cmds: self.cmds.clone(),
            control: self.control.clone(),
            metrics: self.metrics.clone(),
            protocol: self.protocol.clone(),
        }
    }
}

/// What sending to one peer needs (owned, for concurrent sends).
struct Link {
    local: PeerId,
    cmds: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
    metrics: Arc<NetMetrics>,
    protocol: libp2p::StreamProtocol,
}

impl Link {
    /// Connects to `peer` if needed and writes one `ADD_PROVIDER` message
    /// per key on one stream. False if the peer could not be reached.
    async fn send_records(
        &self,
        peer: PeerId,
        addrs: &[Multiaddr],
        keys: &[Vec<u8>],
        ours: &[Multiaddr],
    ) -> bool {
        let work = async {
            self.connect(peer, addrs).await?;
            let mut control = self.control.clone();
            let mut s = control
                .open_stream(peer, self.protocol.clone())
                .await
                .map_err(|e| NetError::Dial(e.to_string()))?;
            let mut budget = Budget::new();
            for chunk in keys.chunks(256) {
                budget.take(chunk.len() as u64).await;
                let mut buf = Vec::new();
                for k in chunk {
                    encode_add_provider(&mut buf, k, &self.local, ours);
                }
                s.write_all(&buf)
                    .await
                    .map_err(|e| NetError::Dial(e.to_string()))?;
                self.metrics.records_announced.add(chunk.len() as u64);
            }
            s.flush().await.map_err(|e| NetError::Dial(e.to_string()))?;
            let _ = s.close().await;
            Ok::<(), NetError>(())
        };
        match tokio::time::timeout(PEER_TIMEOUT, work).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "cannot announce to peer");
                false
            }
            Err(_) => {
                tracing::debug!(%peer, "announcing to peer timed out");
                false
            }
        }
    }

    async fn connect(&self, peer: PeerId, addrs: &[Multiaddr]) -> Result<(), NetError> {
        let mut last = NetError::Dial("no address known".into());
        if addrs.is_empty() {
            // Connected already, or the swarm knows how to reach it.
            return Ok(());
        }
        for a in addrs {
            let (tx, rx) = oneshot::channel();
            let addr = a.clone().with(Protocol::P2p(peer));
            self.cmds
                .send(Command::Dial { addr, reply: tx })
                .await
                .map_err(|_| NetError::Stopped)?;
            match rx.await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => return Err(NetError::Stopped),
            }
        }
        Err(last)
    }
}

/// Records per second, shared by nothing: each peer's stream gets its own
/// share of [`RECORDS_PER_SECOND`] / [`PEERS_AT_ONCE`].
struct Budget {
    start: tokio::time::Instant,
    sent: u64,
}

impl Budget {
    fn new() -> Self {
        Budget {
            start: tokio::time::Instant::now(),
            sent: 0,
        }
    }

    async fn take(&mut self, n: u64) {
        let rate = (RECORDS_PER_SECOND / PEERS_AT_ONCE as u64).max(1);
        let due = self.start + Duration::from_millis(self.sent * 1000 / rate);
        tokio::time::sleep_until(due).await;
        self.sent += n;
    }
}

/// Appends one length-prefixed DHT message `ADD_PROVIDER(key)` naming
/// `local` at `addrs` as the provider.
pub fn encode_add_provider(out: &mut Vec<u8>, key: &[u8], local: &PeerId, addrs: &[Multiaddr]) {
    let mut peer = Vec::new();
    put_bytes_field(&mut peer, 1, &local.to_bytes());
    for a in addrs {
        put_bytes_field(&mut peer, 2, &a.to_vec());
    }
    let mut msg = Vec::new();
    put_varint_field(&mut msg, 1, ADD_PROVIDER);
    put_bytes_field(&mut msg, 2, key);
    put_bytes_field(&mut msg, 9, &peer);
    put_varint(out, msg.len() as u64);
    out.extend_from_slice(&msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_provider_message_shape() {
        let local = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let mut out = Vec::new();
        encode_add_provider(
            &mut out,
            b"\x12\x20key",
            &local,
            std::slice::from_ref(&addr),
        );
        let mut buf: &[u8] = &out;
        let len = crate::ipfs::unixfs::dagpb::get_varint(&mut buf).unwrap() as usize;
        assert_eq!(len, buf.len());
        // type = ADD_PROVIDER, key, one provider with our id and address.
        assert_eq!(&buf[..2], &[0x08, 0x02]);
        assert!(buf.windows(5).any(|w| w == b"\x12\x20key"));
        let id = local.to_bytes();
        assert!(buf.windows(id.len()).any(|w| w == id.as_slice()));
        let a = addr.to_vec();
        assert!(buf.windows(a.len()).any(|w| w == a.as_slice()));
    }
}
