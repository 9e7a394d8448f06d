//! What a connection reports: its Istio metric labels and its access-log entry, gathered as the
//! connection is resolved, then opened (and closed) in one record.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tracing::debug;

use crate::hbone::headers::{self, Baggage};
use crate::model::Identity;
use crate::ztunnel::accesslog::AccessLogEntry;
use crate::ztunnel::inpod::Pod;
use crate::ztunnel::metrics::{
    ConnectionLabels, ConnectionRecord, DenyReason, LabelValue, Metrics, Reporter, ResponseFlags, SecurityPolicy,
    WorkloadLabels,
};
use crate::ztunnel::proxy::Proxy;
use crate::ztunnel::state::{Service, Workload};

/// Buffer size of each direction of a plaintext copy: large enough to keep the socket buffers
/// busy, allocated once per connection.
const PLAIN_COPY_BUFFER: usize = 256 * 1024;

fn workload_labels(workload: &Workload) -> WorkloadLabels<'_> {
    WorkloadLabels {
        workload_name: &workload.workload_name,
        canonical_service: &workload.canonical_name,
        canonical_revision: &workload.canonical_revision,
        namespace: &workload.namespace,
        cluster: &workload.cluster_id,
    }
}

/// Labels of a pod that xDS does not know (yet): its name and namespace from ZDS.
fn pod_labels<'a>(pod: &'a Pod, proxy: &'a Proxy) -> WorkloadLabels<'a> {
    WorkloadLabels {
        workload_name: &pod.info.name,
        canonical_service: &pod.info.name,
        canonical_revision: "latest",
        namespace: &pod.info.namespace,
        cluster: &proxy.config.cluster_id,
    }
}

/// A connection being resolved: labels and log entry filled in as facts become known.
pub struct ConnectionView {
    labels: ConnectionLabels,
    log: AccessLogEntry,
}

impl ConnectionView {
    /// A connection from `pod` (at `peer`) to `dst`, reported by the source.
    pub fn outbound(proxy: &Proxy, pod: &Pod, source: Option<&Workload>, peer: SocketAddr, dst: SocketAddr) -> Self {
        let source_labels = source.map_or_else(|| pod_labels(pod, proxy), workload_labels);
        let labels = ConnectionLabels::new(Reporter::Source, SecurityPolicy::MutualTls)
            .with_source(&source_labels, Some(&pod.identity));
        let mut log = AccessLogEntry::new(peer, dst);
        log.src_workload = Some(pod.info.name.clone());
        log.src_namespace = Some(pod.info.namespace.clone());
        log.src_identity = Some(pod.identity.clone());
        ConnectionView { labels, log }
    }

    /// A connection from `peer` into `pod` for `target`, reported by the destination. `identity`
    /// is the peer's proven identity (mTLS), `None` for plaintext.
    pub fn inbound(
        proxy: &Proxy,
        pod: &Pod,
        source: Option<&Workload>,
        identity: Option<&Identity>,
        peer: SocketAddr,
        target: SocketAddr,
    ) -> Self {
        let security = if identity.is_some() { SecurityPolicy::MutualTls } else { SecurityPolicy::Unknown };
        let mut labels = ConnectionLabels::new(Reporter::Destination, security)
            .with_destination(&pod_labels(pod, proxy), Some(&pod.identity));
        if let Some(source) = source {
            labels = labels.with_source(&workload_labels(source), identity);
        } else if let Some(identity) = identity {
            let namespace = identity.namespace.clone();
            labels =
                labels.with_source(&WorkloadLabels { namespace: &namespace, ..Default::default() }, Some(identity));
        }
        let mut log = AccessLogEntry::new(peer, target);
        log.src_workload = source.map(|s| s.name.clone());
        log.src_namespace = source.map(|s| s.namespace.clone());
        log.src_identity = identity.cloned();
        log.dst_workload = Some(pod.info.name.clone());
        log.dst_namespace = Some(pod.info.namespace.clone());
        log.dst_identity = Some(pod.identity.clone());
        ConnectionView { labels, log }
    }

    /// The destination as resolved on the source side.
    pub fn destination(
        mut self,
        workload: Option<&Workload>,
        service: Option<&Service>,
        identity: Option<&Identity>,
    ) -> Self {
        if let Some(workload) = workload {
            self.labels = self.labels.with_destination(&workload_labels(workload), identity);
            self.log.dst_workload = Some(workload.name.clone());
            self.log.dst_namespace = Some(workload.namespace.clone());
        } else if let Some(identity) = identity {
            self.labels.destination_principal = identity.into();
        }
        if let Some(service) = service {
            self.labels = self.labels.with_destination_service(&service.hostname, &service.name, &service.namespace);
            self.log.dst_service = Some(service.hostname.clone());
        }
        self.log.dst_identity = identity.cloned();
        self
    }

    /// The source as its `baggage` header describes it, for a peer xDS does not know (another
    /// cluster, or a proxy in front of it). The principal stays the one its certificate proved.
    pub fn source_from_baggage(mut self, baggage: &Baggage) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let (workload, service) = (text(&baggage.workload_name), text(&baggage.service_name));
        let (namespace, revision, cluster) =
            (text(&baggage.namespace), text(&baggage.revision), text(&baggage.cluster_id));
        let principal = self.log.src_identity.clone();
        let labels = WorkloadLabels {
            workload_name: &workload,
            canonical_service: &service,
            canonical_revision: &revision,
            namespace: &namespace,
            cluster: &cluster,
        };
        self.labels = self.labels.with_source(&labels, principal.as_ref());
        self.log.src_workload = baggage.workload_name.clone();
        self.log.src_namespace = baggage.namespace.clone();
        self
    }

    /// The destination pod's own xDS facts, once known (inbound).
    pub fn destination_pod(mut self, workload: &Workload) -> Self {
        let identity = workload.identity.clone();
        self.labels = self.labels.with_destination(&workload_labels(workload), Some(&identity));
        self
    }

    /// The connection goes (or came) without mTLS.
    pub fn plaintext(mut self) -> Self {
        self.labels.connection_security_policy = SecurityPolicy::Unknown;
        self
    }

    /// The HBONE target when the connection is tunnelled to `connect`.
    pub fn tunnelled(mut self, connect: SocketAddr, authority: SocketAddr) -> Self {
        self.log.dst_hbone_addr = Some(authority);
        self.log.dst_addr = connect;
        self
    }

    /// The headers of the CONNECT for this connection: Istio's `forwarded` (the client's
    /// address and the service hostname it addressed) and `baggage` (who the source is).
    pub fn connect_headers(&self, peer: SocketAddr) -> http::HeaderMap {
        let value = |v: &LabelValue| v.as_deref().map(str::to_string);
        let mut headers = http::HeaderMap::new();
        headers.insert(headers::FORWARDED, headers::forwarded(peer, self.log.dst_service.as_deref()));
        let baggage = Baggage {
            cluster_id: value(&self.labels.source_cluster),
            namespace: value(&self.labels.source_workload_namespace),
            workload_name: value(&self.labels.source_workload),
            service_name: value(&self.labels.source_canonical_service),
            revision: value(&self.labels.source_canonical_revision),
            ..Baggage::default()
        };
        if let Some(baggage) = headers::baggage(&baggage, "pod") {
            headers.insert(headers::BAGGAGE, baggage);
        }
        headers
    }

    /// Starts the connection's record: counted as opened now.
    pub fn open(self, metrics: &Metrics) -> Record {
        Record(metrics.open(self.labels, self.log))
    }

    /// A connection refused by policy `policy`: opened and closed at once, logged as denied.
    pub fn denied(self, metrics: &Metrics, policy: &str) {
        if self.labels.reporter == Reporter::Destination {
            metrics.inbound_denied(DenyReason::Policy);
        }
        metrics.open(self.labels, self.log).close_denied(policy);
    }

    /// A connection that failed before any byte flowed.
    pub fn failed(self, metrics: &Metrics, flags: ResponseFlags, reason: &str) {
        debug!(reason, "connection failed");
        metrics.open(self.labels, self.log).close_with(flags, Some(reason));
    }
}

/// An open connection's record; [`Record::finish`] adds its bytes and closes it.
pub struct Record(ConnectionRecord);

impl Record {
    /// `request` bytes went from the initiator to the upstream, `response` bytes came back.
    pub fn finish(self, request: u64, response: u64, error: Option<&str>) {
        self.0.received(request);
        self.0.sent(response);
        self.0.close(error);
    }
}

/// Copies both ways between a downstream and an upstream TCP connection (passthrough and
/// plaintext inbound), propagating half-close, then closes the record.
pub async fn copy_plain(record: Record, mut downstream: TcpStream, mut upstream: TcpStream) {
    let result =
        tokio::io::copy_bidirectional_with_sizes(&mut downstream, &mut upstream, PLAIN_COPY_BUFFER, PLAIN_COPY_BUFFER)
            .await;
    match result {
        Ok((request, response)) => record.finish(request, response, None),
        Err(error) => {
            // A reset on one side is passed on as a reset on the other.
            let _ = crate::sys::socket::reset_on_close(&downstream);
            let _ = crate::sys::socket::reset_on_close(&upstream);
            record.finish(0, 0, Some(&error.to_string()))
        }
    }
}
