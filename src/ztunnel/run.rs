//! Starting and stopping a ztunnel: two runtimes, as in Istio's ztunnel. A small "control"
//! runtime (one thread) runs xDS, the CA client, the ZDS client and the admin servers; the "data"
//! runtime (`worker_threads`) runs every proxied connection, so control work never steals time
//! from the data path and a busy data path never delays xDS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tracing::info;

use crate::hbone::HbonePool;
use crate::sys::netns::NetnsExecutor;
use crate::tls::TrustRoots;
use crate::xds::client::{Client, ClientConfig, NodeInfo, Subscription, TlsOptions};
use crate::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};
use crate::zds::client::{ZdsClientConfig, ZdsStatus, run_client};
use crate::ztunnel::accesslog::AccessLog;
use crate::ztunnel::admin::{AdminServers, start as start_admin};
use crate::ztunnel::certs::{CaClientConfig, CertManager};
use crate::ztunnel::config::ZtunnelConfig;
use crate::ztunnel::inpod::PodManager;
use crate::ztunnel::metrics::Metrics;
use crate::ztunnel::proxy::Proxy;
use crate::ztunnel::state::ProxyState;

/// Why a ztunnel could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the {0} runtime: {1}")]
    Runtime(&'static str, std::io::Error),
    #[error("--root-cert: {0}")]
    Roots(#[from] crate::tls::VerifyError),
    #[error("xDS client for {address}: {source}")]
    Xds { address: String, source: crate::xds::client::ClientError },
    #[error("CA client for {address}: {source}")]
    Ca { address: String, source: Box<crate::ztunnel::certs::CertError> },
    #[error("admin servers: {0}")]
    Admin(#[from] crate::ztunnel::admin::AdminError),
    #[error("cannot start the network-namespace thread: {0}")]
    Netns(std::io::Error),
}

/// How often certificates of pods no longer served are forgotten.
const CERT_GC_INTERVAL: Duration = Duration::from_secs(60);

/// A running ztunnel. Dropping it stops everything.
pub struct Ztunnel {
    pub admin: AdminServers,
    pub pods: Arc<PodManager>,
    pub proxy: Arc<Proxy>,
    pub xds: Client,
    ready: watch::Receiver<bool>,
    zds: watch::Receiver<ZdsStatus>,
    control: Option<Runtime>,
    data: Option<Runtime>,
}

impl Ztunnel {
    pub fn admin_address(&self) -> SocketAddr {
        self.admin.admin_addr
    }

    pub fn metrics_address(&self) -> SocketAddr {
        self.admin.metrics_addr
    }

    pub fn readiness_address(&self) -> SocketAddr {
        self.admin.readiness_addr
    }

    /// Ready: xDS has delivered the full state of both types.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    pub fn zds_status(&self) -> watch::Receiver<ZdsStatus> {
        self.zds.clone()
    }

    /// Stops both runtimes without waiting for connections (callable from async code).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for runtime in [self.data.take(), self.control.take()].into_iter().flatten() {
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }
}

impl Drop for Ztunnel {
    fn drop(&mut self) {
        self.stop();
    }
}

fn runtime(name: &'static str, threads: usize) -> Result<Runtime, StartError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name(format!("ztunnel-{name}"))
        .enable_all()
        .build()
        .map_err(|e| StartError::Runtime(name, e))
}

/// Starts a ztunnel: connects to xDS and the CA, serves the admin ports, and connects to the CNI
/// agent's ZDS socket to receive pods. Returns once the admin ports are bound; readiness follows
/// xDS.
pub fn start(config: ZtunnelConfig) -> Result<Ztunnel, StartError> {
    let roots = TrustRoots::from_pem("--root-cert", &config.root_cert_pem)?;
    let control = runtime("control", 1)?;
    let data = runtime("data", config.worker_threads)?;

    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry, AccessLog::stdout(config.access_log)));
    let state = ProxyState::new(config.network.clone());

    let _control_context = control.enter();
    let xds = start_xds(&config, &state)?;
    let certs = CertManager::new(CaClientConfig {
        address: config.ca_address.clone(),
        root_cert_pem: config.root_cert_pem.clone(),
        server_name: config.server_name.clone(),
        token: config.token.clone(),
        cluster_id: config.cluster_id.clone(),
        ttl: config.cert_ttl,
        refresh_fraction: 0.5,
    })
    .map_err(|source| StartError::Ca { address: config.ca_address.clone(), source: Box::new(source) })?;
    let netns = NetnsExecutor::start("ztunnel-netns").map_err(StartError::Netns)?;
    let proxy = Arc::new(Proxy {
        pool: HbonePool::new(config.pool.clone()),
        config: config.clone(),
        state,
        certs,
        roots,
        metrics,
        netns,
    });
    let pods = PodManager::new(proxy.clone(), data.handle().clone());

    let (ready_sender, ready) = watch::channel(false);
    control.spawn(track_readiness(xds.clone(), ready_sender));
    let (zds_sender, zds) = watch::channel(ZdsStatus::default());
    let zds_config = ZdsClientConfig {
        socket: config.zds_socket.clone(),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
    };
    control.spawn(run_client(zds_config, pods.clone(), zds_sender));
    control.spawn(forget_unused_certificates(proxy.clone(), pods.clone()));
    control.spawn(update_gauges(proxy.clone(), xds.clone()));

    let dump = {
        let proxy = proxy.clone();
        let pods = pods.clone();
        let xds = xds.clone();
        Arc::new(move || config_dump(&proxy, &pods, &xds))
    };
    // Not `block_on`: `start` may be called from async code (tests), where that would panic.
    let (sender, receiver) = std::sync::mpsc::channel();
    let admin_config = config.admin;
    let admin_ready = ready.clone();
    control.spawn(async move {
        let _ = sender.send(start_admin(admin_config, dump, Arc::new(registry), admin_ready).await);
    });
    let admin = receiver.recv().map_err(|_| StartError::Runtime("control", std::io::Error::other("stopped")))??;
    info!(
        node = %config.node_name,
        admin = %admin.admin_addr,
        metrics = %admin.metrics_addr,
        readiness = %admin.readiness_addr,
        zds = %config.zds_socket.display(),
        workers = config.worker_threads,
        "ztunnel started"
    );
    drop(_control_context);
    Ok(Ztunnel { admin, pods, proxy, xds, ready, zds, control: Some(control), data: Some(data) })
}

fn start_xds(config: &ZtunnelConfig, state: &ProxyState) -> Result<Client, StartError> {
    let (addresses, authorizations) = state.handlers();
    let node = NodeInfo {
        id: format!("ztunnel~{}", config.node_name),
        name: std::env::var("POD_NAME").ok(),
        namespace: std::env::var("POD_NAMESPACE").ok(),
        node_name: Some(config.node_name.clone()),
        cluster_id: Some(config.cluster_id.clone()),
    };
    let mut client_config = ClientConfig::new(config.xds_address.clone(), node);
    if config.xds_address.starts_with("https://") {
        client_config.tls =
            Some(TlsOptions { root_ca_pem: config.root_cert_pem.clone(), server_name: config.server_name.clone() });
    }
    client_config.token = config.token.clone();
    client_config.subscriptions = vec![
        Subscription::wildcard(ADDRESS_TYPE).with_handler(addresses),
        Subscription::wildcard(AUTHORIZATION_TYPE).with_handler(authorizations),
    ];
    Client::start(client_config).map_err(|source| StartError::Xds { address: config.xds_address.clone(), source })
}

/// Ready once both xDS types have been received; stays ready through later outages (the last
/// good state keeps serving).
async fn track_readiness(xds: Client, ready: watch::Sender<bool>) {
    let mut status = xds.status();
    loop {
        if xds.synced(ADDRESS_TYPE) && xds.synced(AUTHORIZATION_TYPE) {
            ready.send_replace(true);
            info!("xDS synced: ready");
            return;
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

async fn forget_unused_certificates(proxy: Arc<Proxy>, pods: Arc<PodManager>) {
    loop {
        tokio::time::sleep(CERT_GC_INTERVAL).await;
        proxy.certs.retain(&pods.identities());
    }
}

/// Gauges that mirror state owned elsewhere, refreshed on xDS events and every few seconds.
async fn update_gauges(proxy: Arc<Proxy>, xds: Client) {
    let mut status = xds.status();
    loop {
        let metrics = &proxy.metrics;
        metrics.xds_connected.set(i64::from(status.borrow().connected));
        metrics.hbone_pool_connections.set(i64::try_from(proxy.pool.connections()).unwrap_or(i64::MAX));
        metrics.certificates.set(i64::try_from(proxy.certs.len()).unwrap_or(i64::MAX));
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

fn config_dump(proxy: &Proxy, pods: &PodManager, xds: &Client) -> serde_json::Value {
    let status = xds.status().borrow().clone();
    serde_json::json!({
        "node": proxy.config.node_name,
        "xds": {
            "address": proxy.config.xds_address,
            "connected": status.connected,
            "acks": status.acks,
            "nacks": status.nacks,
            "lastError": status.last_error,
        },
        "pods": pods.dump(),
        "state": proxy.state.snapshot(),
        "certificates": proxy.certs.dump(),
        "hbonePool": { "connections": proxy.pool.connections() },
    })
}
