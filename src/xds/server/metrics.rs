//! Prometheus metrics of the ADS server.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// The message name of the type URL, e.g. `istio.workload.Address`.
    pub r#type: String,
}

impl TypeLabel {
    pub fn of(type_url: &str) -> Self {
        TypeLabel { r#type: type_url.rsplit('/').next().unwrap_or(type_url).to_string() }
    }
}

/// The server's metrics. Clones share the same series.
#[derive(Clone, Debug)]
pub struct XdsMetrics {
    pub connected_clients: Gauge,
    pub pushes: Family<TypeLabel, Counter>,
    pub push_latency: Histogram,
    pub nacks: Family<TypeLabel, Counter>,
    pub resources_sent: Family<TypeLabel, Counter>,
}

impl XdsMetrics {
    /// Creates the metrics and registers them into `registry` (give it a sub-registry with a
    /// prefix, e.g. `xds`, to namespace them).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = XdsMetrics::unregistered();
        registry.register("connected_clients", "Open delta ADS streams", metrics.connected_clients.clone());
        registry.register("pushes", "Delta responses sent, by type", metrics.pushes.clone());
        registry.register(
            "push_latency_seconds",
            "Time from a cache change to the response carrying it being handed to the transport",
            metrics.push_latency.clone(),
        );
        registry.register("nacks", "Responses rejected by clients, by type", metrics.nacks.clone());
        registry.register("resources_sent", "Resources sent in responses, by type", metrics.resources_sent.clone());
        metrics
    }

    /// Metrics that are counted but exported nowhere (tests, or when metrics are off).
    pub fn unregistered() -> Self {
        XdsMetrics {
            connected_clients: Gauge::default(),
            pushes: Family::default(),
            // 100µs .. ~13s
            push_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            nacks: Family::default(),
            resources_sent: Family::default(),
        }
    }
}
