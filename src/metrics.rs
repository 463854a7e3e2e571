//! Observe stage: the Prometheus metrics the gate keeps, encoded in the OpenMetrics text
//! format on the admin listener's `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route class such as `manifest_push` or `blob`, from [`crate::route::route_class`].
    pub route: &'static str,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `accepted`, `warned`, `rewritten`, `rejected`, or `failed` when the upstream could
    /// not be read.
    pub outcome: &'static str,
    /// The rule that rejected the push; empty otherwise.
    pub rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// `forward` for relayed client requests, `validation` for the gate's own reads.
    pub purpose: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BlobLabels {
    /// `config` or `layer`.
    pub role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the gate, registered once at start.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub manifest_decisions: Family<DecisionLabels, Counter>,
    pub upstream_duration: HistogramFamily<UpstreamLabels>,
    pub blob_read_duration: HistogramFamily<BlobLabels>,
    pub received_bytes: Counter,
    pub sent_bytes: Counter,
    pub in_flight: Gauge,
}

/// Buckets from 1 ms to about 33 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wasmgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let manifest_decisions = Family::<DecisionLabels, Counter>::default();
        let upstream_duration: HistogramFamily<UpstreamLabels> =
            Family::new_with_constructor(latency_histogram);
        let blob_read_duration: HistogramFamily<BlobLabels> =
            Family::new_with_constructor(latency_histogram);
        let received_bytes = Counter::default();
        let sent_bytes = Counter::default();
        let in_flight = Gauge::default();
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);

        registry.register(
            "requests",
            "Client requests answered, by route class, method and status",
            requests.clone(),
        );
        registry.register(
            "manifest_decisions",
            "Manifest push decisions, by outcome and rule",
            manifest_decisions.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Time from sending a request upstream to receiving its response headers",
            upstream_duration.clone(),
        );
        registry.register(
            "blob_read_duration_seconds",
            "Time to read a config or layer back from the upstream for validation",
            blob_read_duration.clone(),
        );
        registry.register(
            "received_bytes",
            "Body bytes received from clients",
            received_bytes.clone(),
        );
        registry.register(
            "sent_bytes",
            "Body bytes sent to clients",
            sent_bytes.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Client requests being handled",
            in_flight.clone(),
        );
        registry.register("build_info", "Version of this wasmgate binary", build_info);

        Self {
            registry,
            requests,
            manifest_decisions,
            upstream_duration,
            blob_read_duration,
            received_bytes,
            sent_bytes,
            in_flight,
        }
    }

    /// Records a manifest push decision.
    pub fn decision(&self, outcome: &'static str, rule: &'static str) {
        self.manifest_decisions
            .get_or_create(&DecisionLabels { outcome, rule })
            .inc();
    }

    /// Encodes every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
