//! Prometheus metrics, served on the debug server (`http.debug.addr`,
//! `http.debug.prometheus.path`). Names are prefixed `disco_`; counters get
//! the OpenMetrics `_total` suffix.

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Metric, Registry};

/// Labels of request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// Route kind (`blob`, `manifest`, `upload`, ...).
    pub route: &'static str,
    /// HTTP status code.
    pub status: u16,
}

/// Labels of per-route counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route kind.
    pub route: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Every metric disco exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Requests by method, route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time to response headers, by route.
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Response body bytes sent, by route.
    pub bytes_out: Family<RouteLabels, Counter>,
    /// Request body bytes received, by route.
    pub bytes_in: Family<RouteLabels, Counter>,
    /// Upload requests (POST/PATCH/PUT) in progress.
    pub uploads_in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers the HTTP metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("disco");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let bytes_out = Family::<RouteLabels, Counter>::default();
        let bytes_in = Family::<RouteLabels, Counter>::default();
        let uploads_in_flight = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to response headers",
            latency.clone(),
        );
        registry.register(
            "http_response_bytes",
            "Response body bytes sent",
            bytes_out.clone(),
        );
        registry.register(
            "http_request_bytes",
            "Request body bytes received",
            bytes_in.clone(),
        );
        registry.register(
            "uploads_in_flight",
            "Upload requests in progress",
            uploads_in_flight.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            bytes_out,
            bytes_in,
            uploads_in_flight,
        }
    }

    /// Registers another component's metric (IPFS node, cache, ...).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().register(name, help, metric);
    }

    /// Registers values read at each scrape (counters and gauges kept as
    /// atomics by another component).
    pub fn register_values(&self, values: ValueSet) {
        self.registry.lock().register_collector(Box::new(values));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock()) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Whether a [`ValueSet`] entry is a counter or a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Only grows (`_total` is appended to the name).
    Counter,
    /// Goes up and down.
    Gauge,
}

type ValueFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Named values read at scrape time.
#[derive(Default, Clone)]
pub struct ValueSet {
    entries: Vec<(&'static str, &'static str, ValueKind, ValueFn)>,
}

impl std::fmt::Debug for ValueSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.0))
            .finish()
    }
}

impl ValueSet {
    /// Adds a value (`name` without the `disco_` prefix).
    pub fn add(
        mut self,
        name: &'static str,
        help: &'static str,
        kind: ValueKind,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.entries.push((name, help, kind, Arc::new(read)));
        self
    }
}

impl Collector for ValueSet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, kind, read) in &self.entries {
            let v = read();
            match kind {
                ValueKind::Counter => {
                    let c = ConstCounter::new(v);
                    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
                }
                ValueKind::Gauge => {
                    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
                    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
                }
            }
        }
        Ok(())
    }
}
