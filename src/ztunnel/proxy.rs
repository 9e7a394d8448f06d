//! What every connection handler shares: configuration, xDS state, certificates, the HBONE
//! pool, metrics and the executor that opens sockets inside pods' network namespaces.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::hbone::HbonePool;
use crate::sys::netns::{Netns, NetnsExecutor};
use crate::sys::socket::tcp_connect_in;
use crate::tls::TrustRoots;
use crate::ztunnel::certs::CertManager;
use crate::ztunnel::config::ZtunnelConfig;
use crate::ztunnel::metrics::Metrics;
use crate::ztunnel::state::ProxyState;

pub struct Proxy {
    pub config: ZtunnelConfig,
    pub state: ProxyState,
    pub certs: Arc<CertManager>,
    /// The mesh root every workload certificate chains to.
    pub roots: TrustRoots,
    pub pool: HbonePool,
    pub metrics: Arc<Metrics>,
    pub netns: NetnsExecutor,
}

impl Proxy {
    /// A TCP connection opened from inside `netns` (the pod's), marked so the pod's redirect
    /// rules let it through, within the configured connect timeout.
    pub async fn connect_from(&self, netns: &Netns, dst: SocketAddr) -> std::io::Result<TcpStream> {
        let connect = tcp_connect_in(&self.netns, Some(netns), dst, Some(self.config.packet_mark));
        match tokio::time::timeout(self.config.connect_timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connect to {dst} timed out"))),
        }
    }

    /// The xDS uid of a pod, as the control plane names it.
    pub fn pod_uid(&self, namespace: &str, name: &str) -> String {
        format!("{}//Pod/{namespace}/{name}", self.config.cluster_id)
    }
}
