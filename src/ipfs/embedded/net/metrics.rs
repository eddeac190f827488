//! Counters of the embedded node's networking, read by the Prometheus
//! exporter.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing (or, for gauges, settable) number.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Sets the value (gauges).
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Networking metrics. Counters only grow; `peers` and `wants_outstanding`
/// are gauges.
#[derive(Debug, Default)]
pub struct NetMetrics {
    /// Connected peers (gauge).
    pub peers: Counter,
    /// Blocks we sent to peers.
    pub blocks_sent: Counter,
    /// Block bytes we sent.
    pub bytes_sent: Counter,
    /// Wanted blocks received and verified.
    pub blocks_received: Counter,
    /// Bytes of wanted blocks received and verified.
    pub bytes_received: Counter,
    /// Blocks received twice or after we stopped wanting them.
    pub blocks_duplicate: Counter,
    /// Blocks rejected: bytes not matching any wanted CID (corrupt or
    /// unsolicited).
    pub blocks_rejected: Counter,
    /// Blocks we are waiting for (gauge).
    pub wants_outstanding: Counter,
    /// DHT queries started (provider lookups, provides, bootstrap).
    pub dht_queries: Counter,
    /// Peers banned for sending bad data.
    pub peers_banned: Counter,
    /// Inbound streams dropped (a connection queued more than it may).
    pub streams_dropped: Counter,
    /// Bitswap messages given up after every retry on new streams.
    pub sends_failed: Counter,
    /// Bitswap writes retried on a new stream.
    pub send_retries: Counter,
    /// Provider records sent to peers (or published by DHT query).
    pub records_announced: Counter,
    /// Keys announced by the last complete announce run (gauge).
    pub announce_last_keys: Counter,
    /// Duration of the last complete announce run, in milliseconds (gauge).
    pub announce_last_ms: Counter,
    /// Announce runs completed.
    pub announce_runs: Counter,
    /// Bootstrap dials made (first ones and retries).
    pub bootstrap_dials: Counter,
}

/// Name, help, kind and reader of one exported value.
type Entry = (
    &'static str,
    &'static str,
    crate::metrics::ValueKind,
    fn(&NetMetrics) -> u64,
);

impl NetMetrics {
    /// The counters as Prometheus values (`disco_ipfs_*`).
    pub fn values(self: &std::sync::Arc<Self>) -> crate::metrics::ValueSet {
        use crate::metrics::{ValueKind::*, ValueSet};
        let m = self.clone();
        let entries: [Entry; 18] = [
            ("ipfs_peers", "Connected IPFS peers", Gauge, |m| {
                m.peers.get()
            }),
            ("ipfs_blocks_sent", "Blocks sent to peers", Counter, |m| {
                m.blocks_sent.get()
            }),
            (
                "ipfs_bytes_sent",
                "Block bytes sent to peers",
                Counter,
                |m| m.bytes_sent.get(),
            ),
            (
                "ipfs_blocks_received",
                "Wanted blocks received and verified",
                Counter,
                |m| m.blocks_received.get(),
            ),
            (
                "ipfs_bytes_received",
                "Bytes of wanted blocks received",
                Counter,
                |m| m.bytes_received.get(),
            ),
            (
                "ipfs_blocks_duplicate",
                "Blocks received twice or unwanted",
                Counter,
                |m| m.blocks_duplicate.get(),
            ),
            (
                "ipfs_blocks_rejected",
                "Blocks rejected (not matching a wanted CID)",
                Counter,
                |m| m.blocks_rejected.get(),
            ),
            (
                "ipfs_wants_outstanding",
                "Blocks being waited for",
                Gauge,
                |m| m.wants_outstanding.get(),
            ),
            ("ipfs_dht_queries", "DHT queries started", Counter, |m| {
                m.dht_queries.get()
            }),
            (
                "ipfs_peers_banned",
                "Peers banned for sending bad data",
                Counter,
                |m| m.peers_banned.get(),
            ),
            (
                "ipfs_streams_dropped",
                "Inbound streams dropped",
                Counter,
                |m| m.streams_dropped.get(),
            ),
            (
                "ipfs_bitswap_sends_failed",
                "Bitswap messages given up after retries on new streams",
                Counter,
                |m| m.sends_failed.get(),
            ),
            (
                "ipfs_bitswap_send_retries",
                "Bitswap writes retried on a new stream",
                Counter,
                |m| m.send_retries.get(),
            ),
            (
                "ipfs_records_announced",
                "Provider records announced",
                Counter,
                |m| m.records_announced.get(),
            ),
            (
                "ipfs_announce_last_keys",
                "Keys announced by the last complete announce run",
                Gauge,
                |m| m.announce_last_keys.get(),
            ),
            (
                "ipfs_announce_last_duration_ms",
                "Duration of the last complete announce run (ms)",
                Gauge,
                |m| m.announce_last_ms.get(),
            ),
            (
                "ipfs_announce_runs",
                "Announce runs completed",
                Counter,
                |m| m.announce_runs.get(),
            ),
            (
                "ipfs_bootstrap_dials",
                "Bootstrap dials made (first ones and retries)",
                Counter,
                |m| m.bootstrap_dials.get(),
            ),
        ];
        entries
            .into_iter()
            .fold(ValueSet::default(), |set, (name, help, kind, read)| {
                let m = m.clone();
                set.add(name, help, kind, move || read(&m))
            })
    }
}
