//! `ambient controlplane`: wires the config store, the mesh index, translation, the xDS server,
//! the CA and the debug endpoint together, and runs them until a signal or a fatal error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use super::auth::{ISTIO_CA_AUDIENCE, TokenReviewAuthenticator, TokensAuthenticator, TokensError};
use super::ca::{self, CaError, CaMetrics, CaService, CaSource, IssuancePolicy, ServiceAccountRef};
use super::translate::{TranslateConfig, Translator};
use super::{config_dump, debug};
use crate::config::{self, ConfigError, SourceConfig};
use crate::mesh::{Mesh, MeshConfig};
use crate::xds::auth::Authenticator;
use crate::xds::server::{Cache, Server, XdsMetrics};

/// Lifetime of the control plane's own serving certificate; it is issued anew at every start.
const SERVING_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything `ambient controlplane` needs, parsed and checked.
#[derive(Debug)]
pub struct ControlplaneConfig {
    pub source: SourceConfig,
    pub mesh: MeshConfig,
    pub translate: TranslateConfig,
    pub xds_address: SocketAddr,
    pub debug_address: SocketAddr,
    pub ca: CaConfig,
    /// Files mode: who may call (see [`super::auth::tokens`]). Without it, xDS is served to
    /// anyone and the CA refuses every request.
    pub tokens_file: Option<PathBuf>,
}

#[derive(Debug)]
pub struct CaConfig {
    /// `Files` (operator's CA), or where the generated root is kept.
    pub source: CaRootSource,
    pub cert_ttl: Duration,
    pub max_cert_ttl: Duration,
    pub node_proxies: Option<Vec<ServiceAccountRef>>,
    /// Extra DNS names / IPs for the serving certificate.
    pub server_names: Vec<String>,
    /// Kube mode: the ConfigMap of the root namespace to publish the root certificate in.
    pub root_cert_configmap: Option<String>,
}

/// Where the CA's root comes from; the kube client is made at start.
#[derive(Debug, Clone)]
pub enum CaRootSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
        chain: Option<PathBuf>,
        root: Option<PathBuf>,
    },
    StateDir(PathBuf),
    /// The Secret `<namespace>/<name>`.
    Secret {
        namespace: String,
        name: String,
    },
}

/// Why the control plane stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControlplaneError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("certificate authority: {0}")]
    Ca(#[from] CaError),
    #[error("tokens file: {0}")]
    Tokens(#[from] TokensError),
    #[error("TLS for the xDS endpoint: {0}")]
    Tls(#[from] crate::tls::ConfigError),
    #[error("cannot listen on {what} address {address}: {source}")]
    Listen { what: &'static str, address: SocketAddr, source: std::io::Error },
    #[error("xDS server stopped: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The running control plane's handles, for tests and embedding.
pub struct Controlplane {
    pub xds_address: SocketAddr,
    pub debug_address: SocketAddr,
    pub root_cert_pem: String,
    pub server: Server,
    pub mesh: Mesh,
    pub ready: watch::Receiver<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    serve: tokio::task::JoinHandle<Result<(), ControlplaneError>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _source: config::Source,
}

impl Controlplane {
    /// Waits until the xDS endpoint fails (it does not stop on its own).
    pub async fn wait(&mut self) -> Result<(), ControlplaneError> {
        match (&mut self.serve).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Stops serving: ends every xDS stream (clients reconnect elsewhere or later), closes the
    /// connections and the listeners, and stops the background tasks.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut self.serve).await.is_err() {
            warn!("connections did not close in time; dropping them");
        }
    }

    fn begin_shutdown(&mut self) {
        // Streams never end on their own; tonic's graceful shutdown waits for them.
        self.server.close_connections();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Controlplane {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// Starts every part and returns once both endpoints listen. Readiness (`ready`) follows when
/// the config store has synced and the xDS state is built from it.
pub async fn start(config: ControlplaneConfig) -> Result<Controlplane, ControlplaneError> {
    crate::tls::install_default_provider();
    let kube_client = match &config.source {
        SourceConfig::Kube(kube) => Some(config::kube::client(kube).await?),
        SourceConfig::Files(_) => None,
    };

    // The CA first: without it nothing can be trusted, so its failure stops the start.
    let ca_source = match config.ca.source.clone() {
        CaRootSource::Files { cert, key, chain, root } => CaSource::Files { cert, key, chain, root },
        CaRootSource::StateDir(dir) => CaSource::StateDir(dir),
        CaRootSource::Secret { namespace, name } => match &kube_client {
            Some(client) => CaSource::Secret { client: client.clone(), namespace, name },
            None => unreachable!("the CLI only picks a Secret in kube mode"),
        },
    };
    let authority = Arc::new(ca_source.load(&config.mesh.trust_domain).await?);
    info!(source = ?ca_source, "certificate authority loaded");
    let names = ca::serving_names(&config.mesh.root_namespace, &config.ca.server_names);
    let serving = authority.serving_certificate(&names, SERVING_CERT_TTL)?;

    let authenticator: Option<Arc<dyn Authenticator>> = match (&kube_client, &config.tokens_file) {
        (Some(client), _) => {
            Some(Arc::new(TokenReviewAuthenticator::new(client.clone(), vec![ISTIO_CA_AUDIENCE.to_string()])))
        }
        (None, Some(path)) => Some(Arc::new(TokensAuthenticator::from_file(path.clone())?)),
        (None, None) => {
            warn!("no --tokens-file: xDS is served to any caller and every certificate request is refused");
            None
        }
    };

    let mut registry = Registry::default();
    let xds_metrics = XdsMetrics::register(registry.sub_registry_with_prefix("ambient_controlplane_xds"));
    let ca_metrics = CaMetrics::register(registry.sub_registry_with_prefix("ambient_controlplane"));

    let source = config::start(config.source).await?;
    let mesh = Mesh::new(config.mesh.clone());
    let cache = Arc::new(Cache::new());
    let server = Server::new(cache.clone(), authenticator.clone(), xds_metrics);
    let (ready_tx, ready) = watch::channel(false);

    let mut tasks = Vec::new();
    if let (Some(client), Some(name)) = (&kube_client, &config.ca.root_cert_configmap) {
        let publish = ca::publish::publish_root_cert(
            client.clone(),
            config.mesh.root_namespace.clone(),
            name.clone(),
            authority.root_pem().to_string(),
        );
        tasks.push(tokio::spawn(publish));
    }
    let follow = mesh.clone();
    let subscription = source.store.subscribe();
    tasks.push(tokio::spawn(async move { follow.follow(subscription).await }));
    let translator = Translator::new(config.translate.clone());
    let (translated_tx, translated) = watch::channel(0);
    tasks.push(tokio::spawn(push_changes(mesh.clone(), translator, cache.clone(), translated_tx)));
    tasks.push(tokio::spawn(mark_ready(source.store.clone(), translated, ready_tx)));

    let mut policy = IssuancePolicy::new(config.mesh.trust_domain.clone(), &config.mesh.root_namespace);
    policy.default_ttl = config.ca.cert_ttl;
    policy.max_ttl = config.ca.max_cert_ttl;
    if let Some(node_proxies) = config.ca.node_proxies {
        policy.node_proxies = node_proxies;
    }
    let ca_authenticator: Arc<dyn Authenticator> = match authenticator {
        Some(a) => a,
        None => Arc::new(NoCallers),
    };
    let ca_service = CaService::new(authority.clone(), ca_authenticator, mesh.clone(), policy, ca_metrics);

    let xds_listener = TcpListener::bind(config.xds_address).await.map_err(|source| ControlplaneError::Listen {
        what: "xDS",
        address: config.xds_address,
        source,
    })?;
    let xds_address = xds_listener.local_addr().map_err(|source| ControlplaneError::Listen {
        what: "xDS",
        address: config.xds_address,
        source,
    })?;
    let debug_listener = debug::bind(config.debug_address).await.map_err(|source| ControlplaneError::Listen {
        what: "debug",
        address: config.debug_address,
        source,
    })?;
    let debug_address = debug_listener.local_addr().map_err(|source| ControlplaneError::Listen {
        what: "debug",
        address: config.debug_address,
        source,
    })?;

    let sources = debug::DebugSources {
        ready: ready.clone(),
        mesh: mesh.clone(),
        registry: Arc::new(registry),
        syncz: {
            let server = server.clone();
            Arc::new(move || serde_json::to_value(server.connections()).unwrap_or_default())
        },
        config_dump: {
            let cache = cache.clone();
            Arc::new(move || config_dump::view(&cache))
        },
    };
    tasks.push(tokio::spawn(debug::serve(debug_listener, sources)));

    let incoming = crate::tls::tls_incoming(xds_listener, serving.server_config()?);
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(server.service())
        .add_service(ca_service.into_server());
    let (shutdown, stopping) = tokio::sync::oneshot::channel::<()>();
    let serve = tokio::spawn(async move {
        let stopping = async {
            let _ = stopping.await;
        };
        router.serve_with_incoming_shutdown(incoming, stopping).await.map_err(ControlplaneError::from)
    });
    info!(%xds_address, %debug_address, "control plane listening (xDS and CA over TLS; debug over plain HTTP)");

    Ok(Controlplane {
        xds_address,
        debug_address,
        root_cert_pem: authority.root_pem().to_string(),
        server,
        mesh,
        ready,
        tasks,
        serve,
        shutdown: Some(shutdown),
        _source: source,
    })
}

/// Keeps the xDS cache equal to the translation of the mesh index: the full state first, then
/// the resources each batch of mesh events touched. Publishes the mesh revision the cache
/// reflects in `translated`.
async fn push_changes(mesh: Mesh, translator: Translator, cache: Arc<Cache>, translated: watch::Sender<u64>) {
    let full = |index: &crate::mesh::MeshIndex| (translator.full(index), index.revision());
    let ((initial, revision), mut batches) = mesh.subscribe(full);
    cache.apply(initial);
    translated.send_replace(revision);
    loop {
        match batches.recv().await {
            Ok(batch) => {
                let update = mesh.read(|index| translator.changes(index, &batch.events));
                if !update.is_empty() {
                    cache.apply(update);
                }
                translated.send_replace(batch.revision);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(missed, "translation fell behind the mesh index; rebuilding the xDS state");
                let ((update, revision), receiver) = mesh.subscribe(full);
                batches = receiver;
                cache.apply(update);
                translated.send_replace(revision);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Ready once the store has synced and the xDS state reflects at least that store revision.
async fn mark_ready(store: config::Store, mut translated: watch::Receiver<u64>, ready: watch::Sender<bool>) {
    store.synced().await;
    let target = store.snapshot().revision;
    if translated.wait_for(|revision| *revision >= target).await.is_ok() {
        ready.send_replace(true);
        info!(revision = target, "configuration synced; control plane ready");
    }
}

/// Files mode without a tokens file: nobody can be authenticated, so the CA refuses everyone.
struct NoCallers;

impl Authenticator for NoCallers {
    fn authenticate<'a>(
        &'a self,
        _token: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<crate::xds::auth::Caller, crate::xds::auth::AuthError>> {
        Box::pin(async {
            Err(crate::xds::auth::AuthError::Rejected(
                "this control plane has no --tokens-file, so it authenticates nobody".to_string(),
            ))
        })
    }
}
