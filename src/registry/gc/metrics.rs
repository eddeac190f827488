//! `disco_gc_*` metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

/// Registry garbage collection metrics.
#[derive(Debug, Default, Clone)]
pub struct GcMetrics {
    /// Collections finished (dry runs included).
    pub runs: Counter,
    /// Collections that failed or were refused.
    pub failures: Counter,
    /// Collections running now.
    pub running: Gauge,
    /// Blobs deleted.
    pub blobs_deleted: Counter,
    /// Bytes of blobs deleted.
    pub bytes_freed: Counter,
    /// Untagged manifests deleted.
    pub manifests_deleted: Counter,
    /// Tags deleted by retention policies.
    pub tags_deleted: Counter,
    /// Content-addressed repositories deleted.
    pub repositories_deleted: Counter,
    /// Duration of the last collection, in milliseconds.
    pub last_duration_ms: Gauge,
}

impl GcMetrics {
    /// Registers every metric with `metrics`.
    pub fn register(&self, metrics: &Metrics) {
        let counters = [
            (
                "gc_runs",
                "Registry garbage collections finished",
                &self.runs,
            ),
            (
                "gc_failures",
                "Registry garbage collections failed or refused",
                &self.failures,
            ),
            (
                "gc_blobs_deleted",
                "Unreferenced blobs deleted",
                &self.blobs_deleted,
            ),
            (
                "gc_bytes_freed",
                "Bytes of unreferenced blobs deleted",
                &self.bytes_freed,
            ),
            (
                "gc_manifests_deleted",
                "Untagged manifests deleted",
                &self.manifests_deleted,
            ),
            (
                "gc_tags_deleted",
                "Tags deleted by retention policies",
                &self.tags_deleted,
            ),
            (
                "gc_repositories_deleted",
                "Content-addressed repositories deleted",
                &self.repositories_deleted,
            ),
        ];
        for (name, help, c) in counters {
            metrics.register(name, help, c.clone());
        }
        metrics.register(
            "gc_running",
            "Registry garbage collections running now",
            self.running.clone(),
        );
        metrics.register(
            "gc_last_duration_milliseconds",
            "Duration of the last registry garbage collection",
            self.last_duration_ms.clone(),
        );
    }
}
