//! Inbound, in the destination pod: HBONE on 15008 (mTLS, CONNECT, authorization) and
//! plaintext on 15006 (traffic from outside the mesh: PeerAuthentication and authorization still
//! apply). Both end with a connection to the application from inside the pod.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::StatusCode;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::hbone::headers::parse_baggage;
use crate::hbone::{BridgeCounters, InboundHandler, InboundRequest, Responder, bridge_counted, serve_connection_until};
use crate::sys::socket::original_dst;
use crate::ztunnel::authz::{ConnectionAttrs, Decision};
use crate::ztunnel::config::{HBONE_PORT, INBOUND_PLAINTEXT_PORT, OUTBOUND_PORT};
use crate::ztunnel::inpod::Pod;
use crate::ztunnel::metrics::{DenyReason, ResponseFlags};
use crate::ztunnel::proxy::Proxy;
use crate::ztunnel::state::Workload;
use crate::ztunnel::telemetry::{ConnectionView, copy_plain};

/// How long a peer may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an inbound connection or stream is refused before reaching the application.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("pod {0} is not known from xDS yet: cannot evaluate its policies")]
    UnknownPod(String),
    #[error("target {0} is not an address of this pod")]
    NotThisPod(SocketAddr),
    #[error("target port {0} is one of ztunnel's own ports")]
    ReservedPort(u16),
    #[error("denied by {0}")]
    Denied(String),
}

impl Refusal {
    /// Counts and logs the refusal.
    fn report(&self, proxy: &Proxy, view: ConnectionView) {
        let reason = match self {
            Refusal::Denied(policy) => return view.denied(&proxy.metrics, policy),
            Refusal::UnknownPod(_) => DenyReason::UnknownDestination,
            Refusal::NotThisPod(_) | Refusal::ReservedPort(_) => DenyReason::BadRequest,
        };
        proxy.metrics.inbound_denied(reason);
        view.failed(&proxy.metrics, ResponseFlags::Connect, &self.to_string());
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::UnknownPod(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::NotThisPod(_) | Refusal::ReservedPort(_) => StatusCode::BAD_REQUEST,
            Refusal::Denied(_) => StatusCode::UNAUTHORIZED,
        }
    }
}

/// The checks every inbound connection passes: the pod is known, the target is this pod and
/// not a ztunnel port, and authorization allows it. Returns the pod's workload.
fn admit(proxy: &Proxy, pod: &Pod, target: SocketAddr, attrs: &ConnectionAttrs) -> Result<Arc<Workload>, Refusal> {
    let workload = proxy.state.workload_by_uid(&pod.xds_uid).ok_or_else(|| Refusal::UnknownPod(pod.xds_uid.clone()))?;
    if !workload.addresses.contains(&target.ip()) {
        return Err(Refusal::NotThisPod(target));
    }
    if [OUTBOUND_PORT, INBOUND_PLAINTEXT_PORT, HBONE_PORT].contains(&target.port()) {
        return Err(Refusal::ReservedPort(target.port()));
    }
    match proxy.state.authorize(&workload, attrs) {
        Decision::Allow => Ok(workload),
        Decision::Deny { policy } => Err(Refusal::Denied(policy)),
    }
}

/// Connects to the application at `target` from inside the pod; a failure is counted and logged.
async fn connect_app(
    proxy: &Proxy,
    pod: &Pod,
    target: SocketAddr,
    view: ConnectionView,
) -> Option<(TcpStream, ConnectionView)> {
    match proxy.connect_to_app(&pod.netns, &pod.app_ports, target).await {
        Ok(upstream) => Some((upstream, view)),
        Err(error) => {
            let reason = format!("connect to the application at {target}: {error}");
            view.failed(&proxy.metrics, ResponseFlags::Connect, &reason);
            None
        }
    }
}

/// Plaintext from outside the mesh, captured on 15006.
pub async fn serve_plaintext(proxy: &Arc<Proxy>, pod: &Arc<Pod>, stream: TcpStream, peer: SocketAddr) {
    let target = match original_dst(&stream) {
        Ok(target) => target,
        Err(error) => {
            warn!(pod = %pod.info.name, %peer, %error, "inbound plaintext: no original destination; closing");
            return;
        }
    };
    let attrs = ConnectionAttrs { src_identity: None, src_ip: peer.ip(), dst_ip: target.ip(), dst_port: target.port() };
    let source = proxy.state.workload_by_ip(&proxy.config.network, peer.ip());
    let view = ConnectionView::inbound(proxy, pod, source.as_deref(), None, peer, target).plaintext();
    let workload = match admit(proxy, pod, target, &attrs) {
        Ok(workload) => workload,
        Err(refusal) => {
            refusal.report(proxy, view);
            // Reset rather than close: the client sees the refusal at once and nothing leaks.
            let _ = crate::sys::socket::reset_on_close(&stream);
            return;
        }
    };
    let Some((upstream, view)) = connect_app(proxy, pod, target, view.destination_pod(&workload)).await else {
        let _ = crate::sys::socket::reset_on_close(&stream);
        return;
    };
    copy_plain(view.open(&proxy.metrics), stream, upstream).await;
}

/// HBONE on 15008: mTLS with this pod's certificate, then one CONNECT per stream.
pub async fn serve_hbone(proxy: &Arc<Proxy>, pod: &Arc<Pod>, stream: TcpStream, peer: SocketAddr) {
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(error) => {
            debug!(%error, "inbound HBONE: connection gone before it was served");
            return;
        }
    };
    let tls_config = match server_tls(proxy, pod).await {
        Ok(config) => config,
        Err(error) => {
            warn!(pod = %pod.info.name, %peer, %error, "inbound HBONE: no certificate to serve with");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            warn!(pod = %pod.info.name, %peer, %error, "inbound HBONE: TLS handshake failed");
            proxy.metrics.inbound_denied(DenyReason::Identity);
            return;
        }
        Err(_) => {
            warn!(pod = %pod.info.name, %peer, "inbound HBONE: TLS handshake timed out");
            proxy.metrics.inbound_denied(DenyReason::Identity);
            return;
        }
    };
    let handler = Arc::new(HboneInbound { proxy: proxy.clone(), pod: pod.clone() });
    // A removed pod's connections announce GOAWAY: open streams finish, new ones go elsewhere.
    let retired = pod.retired();
    if let Err(error) = serve_connection_until(tls, peer, local, handler, Default::default(), retired).await {
        debug!(pod = %pod.info.name, %peer, %error, "inbound HBONE connection ended with an error");
    }
}

/// The pod's server TLS configuration, rebuilt only when its certificate changed.
async fn server_tls(proxy: &Proxy, pod: &Pod) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert = proxy.certs.fetch(&pod.identity).await.map_err(|e| e.to_string())?;
    {
        let cached = pod.server_tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached_cert, config)) = &*cached
            && Arc::ptr_eq(cached_cert, &cert)
        {
            return Ok(config.clone());
        }
    }
    let config = crate::tls::workload_server_config(&cert, proxy.roots.clone(), &proxy.config.trust_domain)
        .map_err(|e| e.to_string())?;
    *pod.server_tls.lock().unwrap_or_else(|p| p.into_inner()) = Some((cert, config.clone()));
    Ok(config)
}

struct HboneInbound {
    proxy: Arc<Proxy>,
    pod: Arc<Pod>,
}

impl InboundHandler for HboneInbound {
    fn handle(&self, request: InboundRequest, responder: Responder) -> BoxFuture<'static, ()> {
        let proxy = self.proxy.clone();
        let pod = self.pod.clone();
        Box::pin(async move { serve_stream(&proxy, &pod, request, responder).await })
    }
}

async fn serve_stream(proxy: &Arc<Proxy>, pod: &Arc<Pod>, request: InboundRequest, responder: Responder) {
    let peer = request.peer_addr;
    let Ok(target) = request.authority.parse::<SocketAddr>() else {
        debug!(pod = %pod.info.name, %peer, authority = %request.authority, "CONNECT authority is not ip:port");
        proxy.metrics.inbound_denied(DenyReason::BadRequest);
        responder.reject(StatusCode::BAD_REQUEST);
        return;
    };
    let identity = request.peer_identity.clone();
    let attrs = ConnectionAttrs {
        src_identity: Some(identity.clone()),
        src_ip: peer.ip(),
        dst_ip: target.ip(),
        dst_port: target.port(),
    };
    let source = proxy.state.workload_by_ip(&proxy.config.network, peer.ip());
    let mut view = ConnectionView::inbound(proxy, pod, source.as_deref(), Some(&identity), peer, target);
    if source.is_none() {
        view = view.source_from_baggage(&parse_baggage(&request.headers));
    }
    let workload = match admit(proxy, pod, target, &attrs) {
        Ok(workload) => workload,
        Err(refusal) => {
            refusal.report(proxy, view);
            responder.reject(refusal.status());
            return;
        }
    };
    // The request's headers are done with; not kept for the connection's life.
    drop(request);
    let Some((upstream, view)) = Box::pin(connect_app(proxy, pod, target, view.destination_pod(&workload))).await
    else {
        responder.reject(StatusCode::SERVICE_UNAVAILABLE);
        return;
    };
    let hbone = match responder.accept() {
        Ok(hbone) => hbone,
        Err(error) => {
            debug!(%error, "client went away before the CONNECT was answered");
            return;
        }
    };
    let record = view.open(&proxy.metrics);
    // Counted as they move, so a connection that ends in an error still reports its bytes.
    let counters = BridgeCounters::default();
    let result = bridge_counted(upstream, hbone, &counters).await;
    let (response, request) = counters.totals();
    record.finish(request, response, result.err().map(|e| e.to_string()).as_deref());
}
