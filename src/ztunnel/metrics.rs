//! ztunnel's Prometheus metrics: Istio's four `istio_tcp_*` connection metrics (same names, labels
//! and "unknown" defaults as Istio's ztunnel, so Istio dashboards and Kiali work unchanged) and a
//! few `ambient_ztunnel_*` gauges and counters about ztunnel itself.
//!
//! A connection is tracked by a [`ConnectionRecord`] from [`Metrics::open`]: it bumps
//! `istio_tcp_connections_opened_total`, counts bytes live in `istio_tcp_{sent,received}_bytes_total`
//! and, when closed (explicitly or by Drop), bumps `istio_tcp_connections_closed_total` and writes
//! one access-log line.
//!
//! Byte directions follow Istio: `received` counts bytes from the downstream (the connection's
//! initiator) toward the upstream, the request direction; `sent` counts the response direction.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::accesslog::{AccessLog, AccessLogEntry, ClosedConnection};
use crate::model::Identity;

#[cfg(test)]
mod tests;

/// Which side of the connection reports: the client's ztunnel (`source`, outbound) or the
/// server's ztunnel (`destination`, inbound).
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub enum Reporter {
    #[default]
    Source,
    Destination,
}

impl Reporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }

    /// The access log's `direction`: the source ztunnel sees the connection going out.
    pub fn direction(self) -> &'static str {
        match self {
            Reporter::Source => "outbound",
            Reporter::Destination => "inbound",
        }
    }
}

impl EncodeLabelValue for Reporter {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// `request_protocol`: ztunnel is an L4 proxy, so always `tcp`.
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub enum RequestProtocol {
    #[default]
    Tcp,
}

impl EncodeLabelValue for RequestProtocol {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str("tcp")
    }
}

/// `response_flags`: why a connection failed, in Istio's spelling (`-` when it did not).
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub enum ResponseFlags {
    #[default]
    None,
    /// Denied by an authorization policy.
    Deny,
    /// The upstream connection could not be established (also: any failure without a better flag).
    Connect,
    TlsFailure,
    H2HandshakeFailure,
    IdentityError,
}

impl ResponseFlags {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFlags::None => "-",
            ResponseFlags::Deny => "DENY",
            ResponseFlags::Connect => "CONNECT",
            ResponseFlags::TlsFailure => "TLS_FAILURE",
            ResponseFlags::H2HandshakeFailure => "H2_HANDSHAKE_FAILURE",
            ResponseFlags::IdentityError => "IDENTITY_ERROR",
        }
    }
}

impl EncodeLabelValue for ResponseFlags {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// `connection_security_policy`: `mutual_tls` for HBONE, `unknown` for plaintext.
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub enum SecurityPolicy {
    #[default]
    Unknown,
    MutualTls,
}

impl EncodeLabelValue for SecurityPolicy {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            SecurityPolicy::Unknown => "unknown",
            SecurityPolicy::MutualTls => "mutual_tls",
        })
    }
}

/// A label value that Prometheus sees as `unknown` when absent or empty, as Istio does.
/// Shared (`Arc<str>`) so cloning a label set per connection copies no strings.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct LabelValue(Option<Arc<str>>);

impl LabelValue {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl From<&str> for LabelValue {
    fn from(value: &str) -> Self {
        if value.is_empty() { LabelValue(None) } else { LabelValue(Some(Arc::from(value))) }
    }
}

impl From<String> for LabelValue {
    fn from(value: String) -> Self {
        LabelValue::from(value.as_str())
    }
}

impl From<Option<&str>> for LabelValue {
    fn from(value: Option<&str>) -> Self {
        value.map(LabelValue::from).unwrap_or_default()
    }
}

impl From<&Identity> for LabelValue {
    fn from(identity: &Identity) -> Self {
        LabelValue::from(identity.to_string())
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.as_deref().unwrap_or("unknown"))
    }
}

/// The workload facts that become `source_*` or `destination_*` labels.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkloadLabels<'a> {
    pub workload_name: &'a str,
    pub canonical_service: &'a str,
    pub canonical_revision: &'a str,
    pub namespace: &'a str,
    pub cluster: &'a str,
}

/// Istio's label set for the `istio_tcp_*` metrics; field names are the label names. Every
/// string label left unset is exported as `unknown`.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub reporter: Reporter,

    pub source_workload: LabelValue,
    pub source_canonical_service: LabelValue,
    pub source_canonical_revision: LabelValue,
    pub source_workload_namespace: LabelValue,
    pub source_principal: LabelValue,
    pub source_app: LabelValue,
    pub source_version: LabelValue,
    pub source_cluster: LabelValue,

    pub destination_service: LabelValue,
    pub destination_service_namespace: LabelValue,
    pub destination_service_name: LabelValue,

    pub destination_workload: LabelValue,
    pub destination_canonical_service: LabelValue,
    pub destination_canonical_revision: LabelValue,
    pub destination_workload_namespace: LabelValue,
    pub destination_principal: LabelValue,
    pub destination_app: LabelValue,
    pub destination_version: LabelValue,
    pub destination_cluster: LabelValue,

    pub request_protocol: RequestProtocol,
    pub response_flags: ResponseFlags,
    pub connection_security_policy: SecurityPolicy,
}

impl ConnectionLabels {
    pub fn new(reporter: Reporter, security: SecurityPolicy) -> Self {
        ConnectionLabels { reporter, connection_security_policy: security, ..Default::default() }
    }

    /// Fills the `source_*` labels. `principal` must be the identity proven by the peer's
    /// certificate (inbound mTLS) or our own workload's identity when we originate mTLS; never a
    /// claim, since dashboards use it for security decisions. App and version mirror the
    /// canonical service and revision, as in Istio.
    pub fn with_source(mut self, workload: &WorkloadLabels<'_>, principal: Option<&Identity>) -> Self {
        self.source_workload = workload.workload_name.into();
        self.source_canonical_service = workload.canonical_service.into();
        self.source_canonical_revision = workload.canonical_revision.into();
        self.source_workload_namespace = workload.namespace.into();
        self.source_principal = principal.map(LabelValue::from).unwrap_or_default();
        self.source_app = workload.canonical_service.into();
        self.source_version = workload.canonical_revision.into();
        self.source_cluster = workload.cluster.into();
        self
    }

    /// Fills the `destination_*` workload labels (see [`Self::with_source`] for `principal`).
    pub fn with_destination(mut self, workload: &WorkloadLabels<'_>, principal: Option<&Identity>) -> Self {
        self.destination_workload = workload.workload_name.into();
        self.destination_canonical_service = workload.canonical_service.into();
        self.destination_canonical_revision = workload.canonical_revision.into();
        self.destination_workload_namespace = workload.namespace.into();
        self.destination_principal = principal.map(LabelValue::from).unwrap_or_default();
        self.destination_app = workload.canonical_service.into();
        self.destination_version = workload.canonical_revision.into();
        self.destination_cluster = workload.cluster.into();
        self
    }

    /// Fills `destination_service` (the hostname), `destination_service_name` and
    /// `destination_service_namespace`.
    pub fn with_destination_service(mut self, hostname: &str, name: &str, namespace: &str) -> Self {
        self.destination_service = hostname.into();
        self.destination_service_name = name.into();
        self.destination_service_namespace = namespace.into();
        self
    }
}

/// Why ztunnel refused an inbound connection (`reason` of `ambient_ztunnel_inbound_denied_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum DenyReason {
    /// An authorization policy denied it.
    Policy,
    /// The destination is not a workload this ztunnel serves.
    UnknownDestination,
    /// The request was malformed (bad CONNECT authority, missing headers...).
    BadRequest,
    /// The peer's identity was not acceptable (e.g. plaintext to a mesh-only port).
    Identity,
}

impl EncodeLabelValue for DenyReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            DenyReason::Policy => "policy",
            DenyReason::UnknownDestination => "unknown_destination",
            DenyReason::BadRequest => "bad_request",
            DenyReason::Identity => "identity",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenyLabels {
    pub reason: DenyReason,
}

/// All of ztunnel's metrics. Cheap to clone (every metric is an `Arc` inside).
#[derive(Clone)]
pub struct Metrics {
    connections_opened: Family<ConnectionLabels, Counter>,
    connections_closed: Family<ConnectionLabels, Counter>,
    sent_bytes: Family<ConnectionLabels, Counter>,
    received_bytes: Family<ConnectionLabels, Counter>,
    access_log: AccessLog,
    /// `ambient_ztunnel_pods`: pods currently served.
    pub pods: Gauge,
    /// `ambient_ztunnel_inbound_denied_total{reason}`.
    pub inbound_denied: Family<DenyLabels, Counter>,
    /// `ambient_ztunnel_hbone_pool_connections`: open pooled outbound HBONE connections.
    pub hbone_pool_connections: Gauge,
    /// `ambient_ztunnel_xds_connected`: 1 while the xDS stream is up, else 0.
    pub xds_connected: Gauge,
    /// `ambient_ztunnel_certificates`: workload certificates currently held.
    pub certificates: Gauge,
}

impl Metrics {
    /// Registers every metric in `registry` (names are complete; use an unprefixed registry) and
    /// writes access-log lines through `access_log`.
    pub fn new(registry: &mut Registry, access_log: AccessLog) -> Metrics {
        let metrics = Metrics {
            connections_opened: Family::default(),
            connections_closed: Family::default(),
            sent_bytes: Family::default(),
            received_bytes: Family::default(),
            access_log,
            pods: Gauge::default(),
            inbound_denied: Family::default(),
            hbone_pool_connections: Gauge::default(),
            xds_connected: Gauge::default(),
            certificates: Gauge::default(),
        };
        // prometheus-client appends `_total` to counters when encoding.
        registry.register(
            "istio_tcp_connections_opened",
            "The total number of TCP connections opened",
            metrics.connections_opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "The total number of TCP connections closed",
            metrics.connections_closed.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "The size of total bytes received during request in case of a TCP connection",
            metrics.received_bytes.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "The size of total bytes sent during response in case of a TCP connection",
            metrics.sent_bytes.clone(),
        );
        registry.register("ambient_ztunnel_pods", "Pods this ztunnel currently serves", metrics.pods.clone());
        registry.register(
            "ambient_ztunnel_inbound_denied",
            "Inbound connections refused, by reason",
            metrics.inbound_denied.clone(),
        );
        registry.register(
            "ambient_ztunnel_hbone_pool_connections",
            "Open outbound HBONE connections in the pool",
            metrics.hbone_pool_connections.clone(),
        );
        registry.register(
            "ambient_ztunnel_xds_connected",
            "1 while the xDS stream to the control plane is connected, else 0",
            metrics.xds_connected.clone(),
        );
        registry.register(
            "ambient_ztunnel_certificates",
            "Workload certificates currently held",
            metrics.certificates.clone(),
        );
        metrics
    }

    /// Counts a refused inbound connection.
    pub fn inbound_denied(&self, reason: DenyReason) {
        self.inbound_denied.get_or_create(&DenyLabels { reason }).inc();
    }

    /// Starts tracking a connection: counts it as opened and resolves the byte counters once, so
    /// that [`ConnectionRecord::sent`] and [`ConnectionRecord::received`] are plain atomic adds.
    pub fn open(&self, labels: ConnectionLabels, log: AccessLogEntry) -> ConnectionRecord {
        self.connections_opened.get_or_create(&labels).inc();
        ConnectionRecord {
            sent_counter: self.sent_bytes.get_or_create_owned(&labels),
            received_counter: self.received_bytes.get_or_create_owned(&labels),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            labels,
            log,
            started: Instant::now(),
            start_time: SystemTime::now(),
            metrics: self.clone(),
            closed: false,
        }
    }
}

/// One connection's metrics and access-log state; see [`Metrics::open`]. Share it between the
/// two copy directions by reference (or `Arc`); close it once with [`Self::close`] or by dropping.
pub struct ConnectionRecord {
    sent_counter: Counter,
    received_counter: Counter,
    // Per-connection totals for the access log; the counters above are shared by every
    // connection with the same labels.
    sent: AtomicU64,
    received: AtomicU64,
    labels: ConnectionLabels,
    log: AccessLogEntry,
    started: Instant,
    start_time: SystemTime,
    metrics: Metrics,
    closed: bool,
}

impl ConnectionRecord {
    /// Counts `bytes` in the response direction (upstream to downstream).
    pub fn sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
        self.sent_counter.inc_by(bytes);
    }

    /// Counts `bytes` in the request direction (downstream to upstream).
    pub fn received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
        self.received_counter.inc_by(bytes);
    }

    pub fn labels(&self) -> &ConnectionLabels {
        &self.labels
    }

    /// Records the end of the connection. An `error` without a more specific flag is reported
    /// with `response_flags="CONNECT"`, as Istio does.
    pub fn close(self, error: Option<&str>) {
        let flags = if error.is_some() { ResponseFlags::Connect } else { ResponseFlags::None };
        self.close_with(flags, error);
    }

    /// Records the end of the connection with an explicit `response_flags` value.
    pub fn close_with(mut self, flags: ResponseFlags, error: Option<&str>) {
        self.finish(flags, error);
    }

    /// Records a connection refused by authorization policy `policy` ("namespace/name").
    pub fn close_denied(mut self, policy: &str) {
        self.log.policy = Some(policy.to_string());
        let error = format!("denied by authorization policy {policy}");
        self.finish(ResponseFlags::Deny, Some(&error));
    }

    fn finish(&mut self, flags: ResponseFlags, error: Option<&str>) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        // The flag is known only now, so the closed counter is the one lookup left for close.
        // The byte counters stay under the labels they were opened with (`-`), as in Istio.
        self.labels.response_flags = flags;
        self.metrics.connections_closed.get_or_create(&self.labels).inc();
        if !self.metrics.access_log.is_enabled() {
            return;
        }
        self.metrics.access_log.write(&ClosedConnection {
            entry: &self.log,
            reporter: self.labels.reporter,
            start_time: self.start_time,
            duration: self.started.elapsed(),
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            response_flags: flags,
            error,
        });
    }
}

impl Drop for ConnectionRecord {
    /// A record dropped without `close` (e.g. its task was cancelled by a pod drain) still counts
    /// as closed and is logged, so opened and closed always balance.
    fn drop(&mut self) {
        if !self.closed {
            self.finish(ResponseFlags::None, Some("connection dropped before it was closed"));
        }
    }
}
