//! What every connection handler shares: configuration, xDS state, certificates, the HBONE
//! pool, metrics and the executor that opens sockets inside pods' network namespaces.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::hbone::HbonePool;
use crate::sys::netns::{Netns, NetnsExecutor};
use crate::sys::socket::{ConnectOptions, SourcePorts, source_port_taken, tcp_connect_with};
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
        let options = ConnectOptions { mark: Some(self.config.packet_mark), ..ConnectOptions::default() };
        self.connect_with(netns, dst, options).await
    }

    /// A connection to the pod's own application at `dst` (an address of `netns`), from source
    /// ports taken in turn from `ports`, so that the TIME_WAIT entries this side leaves when it
    /// closes first are taken over rather than exhausting the pod's ports under connection
    /// churn (see [`SourcePorts`]). After [`SourcePorts::ATTEMPTS`] taken ports, the kernel
    /// picks.
    pub async fn connect_to_app(
        &self,
        netns: &Netns,
        ports: &SourcePorts,
        dst: SocketAddr,
    ) -> std::io::Result<TcpStream> {
        let mark = Some(self.config.packet_mark);
        for _ in 0..SourcePorts::ATTEMPTS {
            let bind = Some(SocketAddr::new(dst.ip(), ports.next()));
            match self.connect_with(netns, dst, ConnectOptions { mark, bind, ..ConnectOptions::default() }).await {
                Err(error) if source_port_taken(&error) => continue,
                result => return result,
            }
        }
        self.connect_with(netns, dst, ConnectOptions { mark, ..ConnectOptions::default() }).await
    }

    async fn connect_with(
        &self,
        netns: &Netns,
        dst: SocketAddr,
        options: ConnectOptions,
    ) -> std::io::Result<TcpStream> {
        let connect = tcp_connect_with(&self.netns, Some(netns), dst, options);
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
