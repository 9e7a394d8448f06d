//! CA metrics: certificates issued (by kind of grant) and refused (by reason).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuedLabels {
    /// `own` (the caller's identity) or `node_proxy` (on behalf of a pod on its node).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `unauthenticated`, `auth_unavailable`, `invalid_request`, `trust_domain`,
    /// `not_own_identity`, `unknown_node`, `not_on_node`, `signing_failed`.
    pub reason: &'static str,
}

/// The CA's counters. Cheap to clone (the counters are shared).
#[derive(Clone, Debug, Default)]
pub struct CaMetrics {
    issued: Family<IssuedLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
}

impl CaMetrics {
    /// Counters not registered anywhere (tests, or a CA without a metrics endpoint).
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters registered in `registry` as `ca_certificates_issued_total` and
    /// `ca_certificates_refused_total` (under the registry's prefix, if any).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register("ca_certificates_issued", "Workload certificates issued", metrics.issued.clone());
        registry.register("ca_certificates_refused", "Certificate requests refused", metrics.refused.clone());
        metrics
    }

    pub fn record_issued(&self, kind: &'static str) {
        self.issued.get_or_create(&IssuedLabels { kind }).inc();
    }

    pub fn record_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&RefusedLabels { reason }).inc();
    }

    /// How many certificates were issued with `kind`.
    pub fn issued(&self, kind: &'static str) -> u64 {
        self.issued.get_or_create(&IssuedLabels { kind }).get()
    }

    /// How many requests were refused for `reason`.
    pub fn refused(&self, reason: &'static str) -> u64 {
        self.refused.get_or_create(&RefusedLabels { reason }).get()
    }
}
