//! The delta ADS server the control plane runs: serves a [`Cache`] to every connected client
//! over Envoy's `DeltaAggregatedResources` stream, one task per stream.
//!
//! ```ignore
//! let cache = Arc::new(Cache::new());
//! let server = Server::new(cache.clone(), Some(authenticator), XdsMetrics::register(registry));
//! tonic::transport::Server::builder().add_service(server.service()).serve(addr);
//! cache.apply(update); // every subscribed client gets its delta
//! ```

pub mod cache;
mod connection;
pub mod metrics;
pub mod status;
mod subscription;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

pub use self::cache::{Applied, Cache, Entry};
use self::connection::Connection;
pub use self::metrics::XdsMetrics;
pub use self::status::{CallerStatus, ConnectionStatus, SubscriptionStatus, TypeStatus, VersionNonce};
use crate::xds::auth::{Authenticator, bearer_token};
use crate::xds::proto::discovery::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use crate::xds::proto::discovery::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use crate::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};

/// Largest request accepted from a client.
const MAX_REQUEST: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Type URLs served; requests for others are logged once per stream and ignored.
    pub types: Vec<&'static str>,
    /// Responses queued per stream ahead of the transport. Small on purpose: what is not
    /// queued is computed later from the latest state, so a slow client coalesces changes.
    pub queue: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { types: vec![ADDRESS_TYPE, AUTHORIZATION_TYPE], queue: 1 }
    }
}

/// The ADS server: cheap to clone, every clone is the same server.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    cache: Arc<Cache>,
    authenticator: Option<Arc<dyn Authenticator>>,
    metrics: XdsMetrics,
    options: ServerOptions,
    connections: Mutex<BTreeMap<u64, Arc<Mutex<ConnectionStatus>>>>,
    next_id: AtomicU64,
    /// Bumped to end every open stream.
    close: watch::Sender<u64>,
}

impl Server {
    /// A server of `cache`. Without an authenticator every caller is accepted (tests, local).
    pub fn new(cache: Arc<Cache>, authenticator: Option<Arc<dyn Authenticator>>, metrics: XdsMetrics) -> Self {
        Server::with_options(cache, authenticator, metrics, ServerOptions::default())
    }

    pub fn with_options(
        cache: Arc<Cache>,
        authenticator: Option<Arc<dyn Authenticator>>,
        metrics: XdsMetrics,
        options: ServerOptions,
    ) -> Self {
        let shared = Shared {
            cache,
            authenticator,
            metrics,
            options: ServerOptions { queue: options.queue.max(1), ..options },
            connections: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            close: watch::channel(0).0,
        };
        Server { shared: Arc::new(shared) }
    }

    /// The gRPC service to mount, e.g. with `tonic::transport::Server::add_service`.
    pub fn service(&self) -> AggregatedDiscoveryServiceServer<AdsService> {
        // A reconnecting client of a large mesh lists every resource it has in its first
        // request (`initial_resource_versions`): more than tonic's 4 MiB default.
        AggregatedDiscoveryServiceServer::new(AdsService { shared: self.shared.clone() })
            .max_decoding_message_size(MAX_REQUEST)
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.shared.cache
    }

    pub fn metrics(&self) -> &XdsMetrics {
        &self.shared.metrics
    }

    /// Every open stream, oldest first.
    pub fn connections(&self) -> Vec<ConnectionStatus> {
        let connections: Vec<_> = lock(&self.shared.connections).values().cloned().collect();
        connections.iter().map(|c| lock(c).clone()).collect()
    }

    /// Ends every open stream (clients reconnect); new streams are still accepted. For a
    /// graceful shutdown, call it before stopping the transport, which otherwise waits for the
    /// streams to end.
    pub fn close_connections(&self) {
        self.shared.close.send_modify(|generation| *generation += 1);
    }
}

/// The tonic service behind [`Server::service`].
pub struct AdsService {
    shared: Arc<Shared>,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type DeltaAggregatedResourcesStream = ResponseStream;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let peer = request.remote_addr().map(|a| a.to_string());
        let caller = match &self.shared.authenticator {
            None => None,
            Some(authenticator) => {
                let authenticated = match bearer_token(request.metadata()) {
                    Ok(token) => authenticator.authenticate(token).await,
                    Err(error) => Err(error),
                };
                match authenticated {
                    Ok(caller) => Some(caller),
                    Err(error) => {
                        warn!(peer = peer.as_deref().unwrap_or("unknown"), %error, "xDS stream refused");
                        return Err(error.into());
                    }
                }
            }
        };
        let shared = self.shared.clone();
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let connected_since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let status = Arc::new(Mutex::new(ConnectionStatus {
            id,
            peer: peer.clone(),
            node_id: String::new(),
            pod_name: None,
            pod_namespace: None,
            node_name: None,
            caller: caller.as_ref().map(CallerStatus::from),
            connected_since,
            types: BTreeMap::new(),
        }));
        info!(connection = id, peer = peer.as_deref().unwrap_or("unknown"), caller = ?caller, "xDS stream opened");
        let (sender, mut receiver) = mpsc::channel(shared.options.queue);
        let registration = Registration::new(shared.clone(), id, status.clone());
        let connection = Connection::new(shared, id, status);
        tokio::spawn(async move {
            connection.run(request.into_inner(), sender).await;
            drop(registration);
        });
        let responses = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        Ok(Response::new(Box::pin(responses)))
    }
}

/// A stream's entry in `connections()` and the connected-clients gauge, undone on drop (also
/// if the connection task panics).
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Registration {
    fn new(shared: Arc<Shared>, id: u64, status: Arc<Mutex<ConnectionStatus>>) -> Self {
        lock(&shared.connections).insert(id, status);
        shared.metrics.connected_clients.inc();
        Registration { shared, id }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.shared.connections).remove(&self.id);
        self.shared.metrics.connected_clients.dec();
        info!(connection = self.id, "xDS stream closed");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
