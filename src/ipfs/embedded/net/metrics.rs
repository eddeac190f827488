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
}
