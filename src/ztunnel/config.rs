//! The one typed configuration of a ztunnel, built by the CLI (or a test) and passed down.

use std::path::PathBuf;
use std::time::Duration;

use crate::hbone::PoolConfig;
use crate::xds::client::TokenSource;
use crate::ztunnel::accesslog::AccessLogFormat;
use crate::ztunnel::admin::AdminConfig;

/// Mark ztunnel puts on the sockets it opens on a pod's behalf, so the pod's redirect rules let
/// them through (Istio's value, which its CNI rules also use).
pub const DEFAULT_PACKET_MARK: u32 = 1337;

/// In-pod ports (Istio's).
pub const OUTBOUND_PORT: u16 = 15001;
pub const INBOUND_PLAINTEXT_PORT: u16 = 15006;
pub const HBONE_PORT: u16 = 15008;

#[derive(Clone, Debug)]
pub struct ZtunnelConfig {
    /// This node's name: the pods ztunnel may impersonate at the CA run here.
    pub node_name: String,
    /// Control plane xDS endpoint (`https://host:port`).
    pub xds_address: String,
    /// Certificate authority endpoint (often the same as xDS).
    pub ca_address: String,
    /// Root that the control plane's serving certificate chains to. It is also the mesh root
    /// that workload certificates chain to (one CA signs both).
    pub root_cert_pem: Vec<u8>,
    /// Name to verify in the control plane's certificate (default: the address's host).
    pub server_name: Option<String>,
    /// Bearer token presented to xDS and the CA (ztunnel's service account token).
    pub token: Option<TokenSource>,
    pub cluster_id: String,
    /// Network of this node's pods ("" = the default network).
    pub network: String,
    /// Trust domain of the mesh: peers from other trust domains are refused.
    pub trust_domain: String,
    /// The CNI agent's ZDS socket.
    pub zds_socket: PathBuf,
    pub admin: AdminConfig,
    /// Data-path worker threads.
    pub worker_threads: usize,
    pub access_log: AccessLogFormat,
    pub packet_mark: u32,
    /// Lifetime asked for workload certificates.
    pub cert_ttl: Duration,
    pub pool: PoolConfig,
    /// How long a removed pod's open connections may go on before they are cut.
    pub drain_timeout: Duration,
    /// How long to wait for an upstream TCP connect.
    pub connect_timeout: Duration,
}

impl ZtunnelConfig {
    /// A configuration with Istio's defaults for everything but the addresses and identity.
    pub fn new(node_name: impl Into<String>, xds_address: impl Into<String>, root_cert_pem: Vec<u8>) -> Self {
        let xds_address = xds_address.into();
        ZtunnelConfig {
            node_name: node_name.into(),
            ca_address: xds_address.clone(),
            xds_address,
            root_cert_pem,
            server_name: None,
            token: None,
            cluster_id: "Kubernetes".to_string(),
            network: String::new(),
            trust_domain: "cluster.local".to_string(),
            zds_socket: PathBuf::from("/var/run/ztunnel/ztunnel.sock"),
            admin: AdminConfig::default(),
            worker_threads: std::thread::available_parallelism().map_or(2, usize::from),
            access_log: AccessLogFormat::Text,
            packet_mark: DEFAULT_PACKET_MARK,
            cert_ttl: Duration::from_secs(24 * 3600),
            pool: PoolConfig::default(),
            drain_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}
