//! Counters of publishing and cloning (`disco_images_*`, `disco_clone*`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::metrics::Metrics;

/// Publishing and cloning metrics.
#[derive(Debug, Default, Clone)]
pub struct DiscoMetrics {
    /// Images published (manifest pushes given a CID).
    pub published: Counter,
    /// Clones started (pulls by CID not present locally).
    pub clones_started: Counter,
    /// Clones that made the image available.
    pub clones_succeeded: Counter,
    /// Clones that failed (not found, invalid, backend errors).
    pub clones_failed: Counter,
    /// Clones running now.
    pub clones_in_flight: Gauge,
    /// Blobs fetched from IPFS and verified by clones.
    pub blobs_fetched: Counter,
    /// Blob bytes fetched from IPFS by clones.
    pub bytes_fetched: Counter,
}

impl DiscoMetrics {
    /// Registers every metric with `metrics`.
    pub fn register(&self, metrics: &Metrics) {
        metrics.register(
            "images_published",
            "Images published under their digest and CID",
            self.published.clone(),
        );
        metrics.register(
            "clones_started",
            "Pulls by CID that started cloning the image from IPFS",
            self.clones_started.clone(),
        );
        metrics.register(
            "clones_succeeded",
            "Clones that made the image available",
            self.clones_succeeded.clone(),
        );
        metrics.register(
            "clones_failed",
            "Clones that failed (not found, invalid content, backend errors)",
            self.clones_failed.clone(),
        );
        metrics.register(
            "clones_in_flight",
            "Clones running now",
            self.clones_in_flight.clone(),
        );
        metrics.register(
            "clone_blobs_fetched",
            "Blobs fetched from IPFS and verified by clones",
            self.blobs_fetched.clone(),
        );
        metrics.register(
            "clone_bytes_fetched",
            "Blob bytes fetched from IPFS by clones",
            self.bytes_fetched.clone(),
        );
    }
}
