//! Mirror counters (`disco_mirror_*`).

use prometheus_client::metrics::counter::Counter;

use crate::metrics::Metrics;

/// Mirror metrics.
#[derive(Debug, Default, Clone)]
pub struct MirrorMetrics {
    /// Manifest pulls served from what is stored (no fetch).
    pub hits: Counter,
    /// Manifests fetched from an upstream.
    pub misses: Counter,
    /// Images cloned from peers instead of the upstream.
    pub peer_hits: Counter,
    /// Bytes (manifests and blobs) read from upstreams.
    pub upstream_bytes: Counter,
    /// Blob bytes of images cloned from peers.
    pub peer_bytes: Counter,
    /// Tags served stale because the upstream could not be asked.
    pub stale: Counter,
}

impl MirrorMetrics {
    /// Registers every metric with `metrics`.
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "mirror_hits",
            "Mirrored manifest pulls served from storage",
            self.hits.clone(),
        );
        metrics.register(
            "mirror_misses",
            "Mirrored manifests fetched from an upstream",
            self.misses.clone(),
        );
        metrics.register(
            "mirror_peer_hits",
            "Mirrored images cloned from peers instead of the upstream",
            self.peer_hits.clone(),
        );
        metrics.register(
            "mirror_upstream_bytes",
            "Bytes read from upstream registries",
            self.upstream_bytes.clone(),
        );
        metrics.register(
            "mirror_peer_bytes",
            "Blob bytes of mirrored images cloned from peers",
            self.peer_bytes.clone(),
        );
        metrics.register(
            "mirror_stale",
            "Tags served stale because the upstream was unavailable",
            self.stale.clone(),
        );
    }
}
