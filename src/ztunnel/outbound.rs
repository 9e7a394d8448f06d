//! Outbound (15001 in the source pod): find where the connection was going, then tunnel it with
//! HBONE to the endpoint or its waypoint, or pass it through when the destination is outside the
//! mesh.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::hbone::{BridgeCounters, ConnectRequest, Dialer, PoolKey, bridge_counted};
use crate::sys::socket::original_dst;
use crate::ztunnel::config::OUTBOUND_PORT;
use crate::ztunnel::inpod::Pod;
use crate::ztunnel::metrics::ResponseFlags;
use crate::ztunnel::proxy::Proxy;
use crate::ztunnel::state::{Upstream, Workload};
use crate::ztunnel::telemetry::{ConnectionView, copy_plain};

/// Serves one connection captured in `pod`.
pub async fn serve(proxy: &Arc<Proxy>, pod: &Arc<Pod>, stream: TcpStream, peer: SocketAddr) {
    let dst = match original_dst(&stream) {
        Ok(dst) => dst,
        Err(error) => {
            warn!(pod = %pod.info.name, %peer, %error, "outbound: no original destination; closing");
            return;
        }
    };
    // Connected to 15001 itself rather than redirected there: serving it would loop.
    if dst.port() == OUTBOUND_PORT && stream.local_addr().is_ok_and(|local| local == dst) {
        debug!(pod = %pod.info.name, %peer, "outbound: direct connection to the capture port refused");
        return;
    }
    let source = source_workload(proxy, pod, peer);
    let upstream = match proxy.state.resolve_outbound(source.as_deref(), dst) {
        Ok(upstream) => upstream,
        Err(error) => {
            let view = ConnectionView::outbound(proxy, pod, source.as_deref(), peer, dst);
            view.failed(&proxy.metrics, ResponseFlags::Connect, &error.to_string());
            return;
        }
    };
    match upstream {
        Upstream::Passthrough { connect, workload, service } => {
            let view = ConnectionView::outbound(proxy, pod, source.as_deref(), peer, dst)
                .destination(workload.as_deref(), service.as_deref(), None)
                .plaintext();
            let upstream = match proxy.connect_from(&pod.netns, connect).await {
                Ok(upstream) => upstream,
                Err(error) => {
                    view.failed(&proxy.metrics, ResponseFlags::Connect, &format!("connect to {connect}: {error}"));
                    return;
                }
            };
            copy_plain(view.open(&proxy.metrics), stream, upstream).await;
        }
        Upstream::Hbone { connect, authority, identity, workload, service } => {
            let view = ConnectionView::outbound(proxy, pod, source.as_deref(), peer, dst).destination(
                Some(&workload),
                service.as_deref(),
                Some(&identity),
            );
            tunnel(proxy, pod, stream, peer, connect, authority, identity, view).await;
        }
        Upstream::Waypoint { connect, authority, identity, waypoint, service, workload } => {
            debug!(pod = %pod.info.name, %dst, waypoint = %waypoint.name, "outbound via waypoint");
            let view = ConnectionView::outbound(proxy, pod, source.as_deref(), peer, dst).destination(
                workload.as_deref(),
                service.as_deref(),
                Some(&identity),
            );
            tunnel(proxy, pod, stream, peer, connect, authority, identity, view).await;
        }
    }
}

/// The xDS workload of the source pod: by uid, else by the connection's source address.
fn source_workload(proxy: &Proxy, pod: &Pod, peer: SocketAddr) -> Option<Arc<Workload>> {
    proxy.state.workload_by_uid(&pod.xds_uid).or_else(|| proxy.state.workload_by_ip(&proxy.config.network, peer.ip()))
}

#[allow(clippy::too_many_arguments)]
async fn tunnel(
    proxy: &Arc<Proxy>,
    pod: &Arc<Pod>,
    stream: TcpStream,
    peer: SocketAddr,
    connect: SocketAddr,
    authority: SocketAddr,
    identity: crate::model::Identity,
    view: ConnectionView,
) {
    // The certificate request and the HBONE dial are boxed: they are large futures (a CSR call,
    // a TLS and HTTP/2 handshake) that are over before the bridge starts, and inline they would
    // size the connection's task for its whole life.
    let cert = match Box::pin(proxy.certs.fetch(&pod.identity)).await {
        Ok(cert) => cert,
        Err(error) => {
            let reason = format!("no certificate for {}: {error}", pod.identity);
            view.failed(&proxy.metrics, ResponseFlags::IdentityError, &reason);
            return;
        }
    };
    let dial: Dialer = {
        let proxy = proxy.clone();
        let pod = pod.clone();
        Arc::new(move |addr: SocketAddr| {
            let proxy = proxy.clone();
            let pod = pod.clone();
            Box::pin(async move { proxy.connect_from(&pod.netns, addr).await })
        })
    };
    let view = view.tunnelled(connect, authority);
    let request = ConnectRequest {
        key: PoolKey {
            source: pod.netns.inode(),
            src_identity: pod.identity.clone(),
            dst_identity: identity,
            dst: connect,
        },
        cert,
        roots: proxy.roots.clone(),
        authority: authority.to_string(),
        headers: view.connect_headers(peer),
        dial,
    };
    let hbone = match Box::pin(proxy.pool.connect(request)).await {
        Ok(hbone) => hbone,
        Err(error) => {
            view.failed(
                &proxy.metrics,
                ResponseFlags::Connect,
                &format!("HBONE to {connect} for {authority}: {error}"),
            );
            return;
        }
    };
    let record = view.open(&proxy.metrics);
    // Counted as they move, so a connection that ends in an error still reports its bytes.
    let counters = BridgeCounters::default();
    let result = bridge_counted(stream, hbone, &counters).await;
    let (request, response) = counters.totals();
    record.finish(request, response, result.err().map(|e| e.to_string()).as_deref());
}
