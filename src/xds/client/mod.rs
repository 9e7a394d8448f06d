//! The delta ADS client: what ztunnel uses to receive its configuration, and what the control
//! plane's tests and benchmarks use to observe the server.
//!
//! ```ignore
//! let client = Client::start(ClientConfig {
//!     subscriptions: vec![Subscription::wildcard(AUTHORIZATION_TYPE), Subscription::on_demand(ADDRESS_TYPE)],
//!     ..ClientConfig::new("http://127.0.0.1:15010", NodeInfo::new("ztunnel~node1"))
//! })?;
//! let workload = client.demand(ADDRESS_TYPE, "/10.0.0.1").await?;
//! ```

mod state;
mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

pub use self::state::ClientResource;
use self::state::TypeState;
use crate::xds::proto::discovery::Node;
use crate::xds::proto::google::protobuf::{Struct, Value, value::Kind};

/// Why the client could not start, connect, or answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address {address:?}: {source}")]
    InvalidAddress { address: String, source: tonic::transport::Error },
    #[error("TLS settings for {address}: {source}")]
    Tls { address: String, source: tonic::transport::Error },
    #[error("cannot read the xDS token file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: std::io::Error },
    #[error("the xDS token is not a valid header value")]
    InvalidToken,
    #[error("cannot connect to the xDS server {address}: {source}")]
    Connect { address: String, source: tonic::transport::Error },
    #[error("xDS stream to {address} failed: {status}")]
    Stream { address: String, status: tonic::Status },
    #[error("type {0} is not subscribed by this client")]
    UnknownType(String),
    #[error("the xDS client stopped")]
    Closed,
}

/// How to subscribe to a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Everything of the type.
    Wildcard,
    /// Only the names asked for with [`Client::demand`].
    OnDemand,
}

/// The changes of one response, handed to the type's [`Handler`] before they are applied.
pub struct Changes<'a> {
    pub type_url: &'a str,
    pub upserts: &'a [Arc<ClientResource>],
    /// Names of resources this client had that are gone.
    pub removals: &'a [String],
}

/// A resource the handler could not use; the client NACKs the response with these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub name: String,
    pub reason: String,
}

/// Receives every change of a type. Called on the client's task, without locks held: it may
/// read the client's state (which does not include the changes yet). Rejected resources are
/// not applied (the previous version, if any, stays) and the response is NACKed.
pub trait Handler: Send + Sync + 'static {
    fn apply(&self, changes: &Changes<'_>) -> Result<(), Vec<Rejection>>;
}

/// A handler for one message type: bodies are decoded into `M`, undecodable ones rejected.
pub struct Decoded<M, F> {
    handle: F,
    _message: std::marker::PhantomData<fn() -> M>,
}

impl<M, F> Decoded<M, F>
where
    M: prost::Message + Default + 'static,
    F: Fn(Vec<(Arc<ClientResource>, M)>, &[String]) -> Result<(), Vec<Rejection>> + Send + Sync + 'static,
{
    pub fn new(handle: F) -> Self {
        Decoded { handle, _message: std::marker::PhantomData }
    }
}

impl<M, F> Handler for Decoded<M, F>
where
    M: prost::Message + Default + 'static,
    F: Fn(Vec<(Arc<ClientResource>, M)>, &[String]) -> Result<(), Vec<Rejection>> + Send + Sync + 'static,
{
    fn apply(&self, changes: &Changes<'_>) -> Result<(), Vec<Rejection>> {
        let mut decoded = Vec::with_capacity(changes.upserts.len());
        let mut rejections = Vec::new();
        for resource in changes.upserts {
            match resource.decode::<M>() {
                Ok(message) => decoded.push((resource.clone(), message)),
                Err(error) => rejections
                    .push(Rejection { name: resource.name.clone(), reason: format!("cannot decode: {error}") }),
            }
        }
        if let Err(more) = (self.handle)(decoded, changes.removals) {
            rejections.extend(more);
        }
        if rejections.is_empty() { Ok(()) } else { Err(rejections) }
    }
}

/// One subscribed type.
#[derive(Clone)]
pub struct Subscription {
    pub type_url: String,
    pub mode: Mode,
    pub handler: Option<Arc<dyn Handler>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("type_url", &self.type_url)
            .field("mode", &self.mode)
            .field("handler", &self.handler.is_some())
            .finish()
    }
}

impl Subscription {
    pub fn wildcard(type_url: &str) -> Self {
        Subscription { type_url: type_url.to_string(), mode: Mode::Wildcard, handler: None }
    }

    pub fn on_demand(type_url: &str) -> Self {
        Subscription { type_url: type_url.to_string(), mode: Mode::OnDemand, handler: None }
    }

    pub fn with_handler(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handler = Some(handler);
        self
    }
}

/// Where the bearer token comes from. A file is read again on every (re)connect, so rotated
/// tokens are picked up.
#[derive(Clone, Debug)]
pub enum TokenSource {
    Value(String),
    File(PathBuf),
}

/// The Node sent on each stream: its id and the metadata Istio's ztunnel sends.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub id: String,
    /// Metadata `NAME`, `NAMESPACE`, `NODE_NAME`, `CLUSTER_ID`.
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub node_name: Option<String>,
    pub cluster_id: Option<String>,
}

impl NodeInfo {
    pub fn new(id: impl Into<String>) -> Self {
        NodeInfo { id: id.into(), ..NodeInfo::default() }
    }

    fn to_proto(&self) -> Node {
        let mut fields = HashMap::new();
        for (key, value) in [
            ("NAME", &self.name),
            ("NAMESPACE", &self.namespace),
            ("NODE_NAME", &self.node_name),
            ("CLUSTER_ID", &self.cluster_id),
        ] {
            if let Some(value) = value {
                fields.insert(key.to_string(), Value { kind: Some(Kind::StringValue(value.clone())) });
            }
        }
        Node {
            id: self.id.clone(),
            cluster: self.cluster_id.clone().unwrap_or_default(),
            metadata: Some(Struct { fields }),
            user_agent_name: "ambient".to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `http://host:port`, or `https://host:port` with `tls`.
    pub address: String,
    /// Root CA (PEM) to verify the server with, and the name to verify (default: the host).
    pub tls: Option<TlsOptions>,
    pub token: Option<TokenSource>,
    pub node: NodeInfo,
    pub subscriptions: Vec<Subscription>,
    /// Reconnect delay: doubles from `backoff_initial` up to `backoff_max`, reset after a stream
    /// that received a response.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub connect_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct TlsOptions {
    pub root_ca_pem: Vec<u8>,
    pub server_name: Option<String>,
}

impl ClientConfig {
    pub fn new(address: impl Into<String>, node: NodeInfo) -> Self {
        ClientConfig {
            address: address.into(),
            tls: None,
            token: None,
            node,
            subscriptions: Vec::new(),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
        }
    }

    fn endpoint(&self) -> Result<Endpoint, ClientError> {
        control_plane_endpoint(&self.address, self.connect_timeout, self.tls.as_ref())
    }
}

/// A gRPC endpoint as the control plane's clients (xDS, CA) dial it: TCP_NODELAY, HTTP/2
/// keep-alives, and, with `tls`, TLS verified against its root (and server name).
pub fn control_plane_endpoint(
    address: &str,
    connect_timeout: Duration,
    tls: Option<&TlsOptions>,
) -> Result<Endpoint, ClientError> {
    let endpoint = Endpoint::from_shared(address.to_string())
        .map_err(|source| ClientError::InvalidAddress { address: address.to_string(), source })?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let Some(tls) = tls else { return Ok(endpoint) };
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.root_ca_pem));
    if let Some(name) = &tls.server_name {
        config = config.domain_name(name.clone());
    }
    endpoint.tls_config(config).map_err(|source| ClientError::Tls { address: address.to_string(), source })
}

/// What the client has done so far; watch it with [`Client::status`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStatus {
    pub connected: bool,
    /// Streams opened (1 after the first connect).
    pub streams: u64,
    /// Responses applied; bumps on every change of the state.
    pub revision: u64,
    pub acks: u64,
    pub nacks: u64,
    pub last_error: Option<String>,
}

pub(super) enum Command {
    Subscribe { type_url: String, name: String },
    Unsubscribe { type_url: String, name: String },
}

pub(super) struct Shared {
    types: Mutex<Vec<TypeState>>,
    status: watch::Sender<ClientStatus>,
    node: Node,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TypeState>> {
        self.types.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running client; the connection task stops when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Client {
    /// Validates the configuration and starts connecting (in the background, forever, with
    /// backoff). Must be called within a Tokio runtime.
    pub fn start(config: ClientConfig) -> Result<Client, ClientError> {
        let endpoint = config.endpoint()?;
        let types = config.subscriptions.iter().map(|s| TypeState::new(s.type_url.clone(), s.mode, s.handler.clone()));
        let shared = Arc::new(Shared {
            types: Mutex::new(types.collect()),
            status: watch::channel(ClientStatus::default()).0,
            node: config.node.to_proto(),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(stream::run(shared.clone(), config, endpoint, receiver));
        Ok(Client { shared, commands, _task: Arc::new(AbortOnDrop(task)) })
    }

    /// The resource named (or aliased) `name`, once the server answered: `None` if it does not
    /// exist. On an on-demand type this subscribes to the name (kept across reconnects); on a
    /// wildcard type it waits for the first response of the type.
    pub async fn demand(&self, type_url: &str, name: &str) -> Result<Option<Arc<ClientResource>>, ClientError> {
        let mut status = self.shared.status.subscribe();
        let receiver = {
            let mut types = self.shared.lock();
            let state = types.iter_mut().find(|t| t.type_url == type_url);
            let state = state.ok_or_else(|| ClientError::UnknownType(type_url.to_string()))?;
            match state.mode {
                Mode::Wildcard if state.synced => return Ok(state.lookup(name).cloned()),
                Mode::Wildcard => None,
                Mode::OnDemand => {
                    if state.demanded.contains(name)
                        && let Some(found) = state.lookup(name)
                    {
                        return Ok(Some(found.clone()));
                    }
                    let (sender, receiver) = oneshot::channel();
                    state.add_waiter(name.to_string(), sender);
                    state.demanded.insert(name.to_string());
                    let command = Command::Subscribe { type_url: type_url.to_string(), name: name.to_string() };
                    self.commands.send(command).map_err(|_| ClientError::Closed)?;
                    Some(receiver)
                }
            }
        };
        if let Some(receiver) = receiver {
            return receiver.await.map_err(|_| ClientError::Closed);
        }
        // Wildcard: once the type's first response is applied, the state is the answer.
        loop {
            status.changed().await.map_err(|_| ClientError::Closed)?;
            let types = self.shared.lock();
            if let Some(state) = types.iter().find(|t| t.type_url == type_url && t.synced) {
                return Ok(state.lookup(name).cloned());
            }
        }
    }

    /// Stops receiving an on-demand name (the resource is dropped from the state).
    pub fn unsubscribe(&self, type_url: &str, name: &str) -> Result<(), ClientError> {
        // Forgotten now, so a reconnect does not subscribe it again; the stream task drops the
        // resource and tells the server.
        let mut types = self.shared.lock();
        let state = types.iter_mut().find(|t| t.type_url == type_url);
        let state = state.ok_or_else(|| ClientError::UnknownType(type_url.to_string()))?;
        state.demanded.remove(name);
        drop(types);
        let command = Command::Unsubscribe { type_url: type_url.to_string(), name: name.to_string() };
        self.commands.send(command).map_err(|_| ClientError::Closed)
    }

    /// The resource named or aliased `name`, if the client has it.
    pub fn get(&self, type_url: &str, name: &str) -> Option<Arc<ClientResource>> {
        self.shared.lock().iter().find(|t| t.type_url == type_url)?.lookup(name).cloned()
    }

    /// Every resource of a type the client has.
    pub fn resources(&self, type_url: &str) -> Vec<Arc<ClientResource>> {
        let types = self.shared.lock();
        types.iter().find(|t| t.type_url == type_url).map(|t| t.resources().cloned().collect()).unwrap_or_default()
    }

    /// Whether at least one response of `type_url` has been applied since the client started
    /// (the first response carries the full state, so the client has then synced that type).
    pub fn synced(&self, type_url: &str) -> bool {
        self.shared.lock().iter().any(|t| t.type_url == type_url && t.synced)
    }

    /// Changes on every applied response and connection event.
    pub fn status(&self) -> watch::Receiver<ClientStatus> {
        self.shared.status.subscribe()
    }

    /// Waits until `condition` holds for the client (checked after every status change).
    pub async fn wait_until(&self, condition: impl Fn(&Client) -> bool) -> Result<(), ClientError> {
        let mut status = self.status();
        loop {
            if condition(self) {
                return Ok(());
            }
            status.changed().await.map_err(|_| ClientError::Closed)?;
        }
    }
}
