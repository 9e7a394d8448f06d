//! The node agent (`ambient cni`): follows the pods of its node through the config store and the
//! mesh index, keeps the in-pod redirection of every enrolled pod in place, hands those pods to
//! ztunnel over ZDS, and answers the CNI plugin.
//!
//! Layout: `pods` (the agent's view of its pods, the one place state changes), `reconcile`
//! (mesh index -> pods: enrol, un-enrol, forget), `discover` (find a running pod's netns by IP),
//! `zds` (the ztunnel connection: snapshot, then updates), `plugin_server` (the plugin's socket),
//! `install` (plugin binary and conflist entry on the host).

mod discover;
pub mod install;
mod plugin_server;
mod pods;
mod reconcile;
mod zds;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::info;

pub use self::discover::{Discovery, find_netns_by_ip};
pub use self::install::{InstallConfig, InstallError};
use self::pods::Pods;
use super::iptables::RedirectConfig;
use crate::config::{self, ConfigError, SourceConfig};
use crate::mesh::{Mesh, MeshConfig};
use crate::sys::netns::{Netns as NetnsHandle, NetnsExecutor};
use crate::zds::{PodInfo, ZdsListener};

/// The kinds the agent reads from the Kubernetes API: its RBAC grants list and watch on these
/// and nothing else (a test holds the install's ClusterRole to this list).
pub const WATCHED_KINDS: &[crate::model::Kind] = &[crate::model::Kind::Pod, crate::model::Kind::Namespace];

/// How long an `Enrolled` request waits for a pod the store does not know yet.
pub const DEFAULT_ENROLLED_WAIT: Duration = Duration::from_secs(2);
/// How long the plugin's Added waits for ztunnel to take the pod: within the plugin's default
/// agent timeout (5 s), together with the wait for the store.
pub const DEFAULT_ZTUNNEL_WAIT: Duration = Duration::from_secs(2);
/// How often pods that should be in the mesh but whose namespace was not found are looked for.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Everything the agent needs, checked by the CLI.
#[derive(Debug)]
pub struct AgentConfig {
    pub source: SourceConfig,
    pub mesh: MeshConfig,
    /// Only pods scheduled on this node are enrolled.
    pub node_name: String,
    /// Where ztunnel connects (SOCK_SEQPACKET).
    pub zds_socket: PathBuf,
    /// Where the plugin connects (unix stream, see [`crate::cni::protocol`]).
    pub plugin_socket: PathBuf,
    pub redirect: RedirectConfig,
    /// Install the plugin binary and its conflist entry on start, remove them on shutdown.
    pub install: Option<InstallConfig>,
    pub enrolled_wait: Duration,
    /// How long the plugin's Added waits for ztunnel to take the pod.
    pub ztunnel_wait: Duration,
    pub retry_interval: Duration,
    /// The node's namespace, where node-originated TCP to enrolled pods (kubelet probes) gets
    /// the probe source address (see `cni::iptables`); `None`: no probe rule.
    pub probe_snat: Option<NetnsHandle>,
    /// Where running pods are looked for by IP.
    pub discovery: Discovery,
}

impl AgentConfig {
    pub fn new(source: SourceConfig, node_name: impl Into<String>) -> Self {
        AgentConfig {
            source,
            mesh: MeshConfig::default(),
            node_name: node_name.into(),
            zds_socket: PathBuf::from("/var/run/ztunnel/ztunnel.sock"),
            plugin_socket: PathBuf::from(super::protocol::DEFAULT_AGENT_SOCKET),
            redirect: RedirectConfig::default(),
            install: None,
            enrolled_wait: DEFAULT_ENROLLED_WAIT,
            ztunnel_wait: DEFAULT_ZTUNNEL_WAIT,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            probe_snat: None,
            discovery: Discovery::Node,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cni agent: cannot listen on the {what} socket {path}: {source}")]
    Listen { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cni agent: cannot start the netns executor: {0}")]
    Executor(std::io::Error),
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// Shared between the agent's tasks.
pub(crate) struct Context {
    pub pods: Pods,
    pub mesh: Mesh,
    pub node_name: String,
    pub redirect: RedirectConfig,
    pub executor: NetnsExecutor,
    pub enrolled_wait: Duration,
    pub ztunnel_wait: Duration,
    pub retry_interval: Duration,
    pub discovery: Discovery,
    /// True once the first pass over the synced store is done.
    pub synced: tokio::sync::watch::Receiver<bool>,
}

/// The running agent. Dropping it stops every task; [`Agent::shutdown`] also uninstalls the plugin.
pub struct Agent {
    context: Arc<Context>,
    install: Option<InstallConfig>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _zds: Arc<ZdsListener>,
    _source: config::Source,
}

impl Agent {
    /// The pods currently in the mesh (redirected and handed to ztunnel), sorted by uid.
    pub fn active_pods(&self) -> Vec<PodInfo> {
        self.context.pods.active_infos()
    }

    /// Stops every task, closes both sockets and removes the plugin and its conflist entry if
    /// they were installed. Pods keep their redirection: they stay in the mesh while the agent
    /// is away (a restarted agent finds them again).
    pub async fn shutdown(mut self) -> Result<(), InstallError> {
        self.stop_tasks();
        // Wait for the aborted tasks so the sockets they own are closed and removed on return.
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        match self.install.take() {
            Some(install) => install::uninstall(&install),
            None => Ok(()),
        }
    }

    fn stop_tasks(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

/// Keeps the node-side probe rule in step with the pods in the mesh.
async fn sync_probe_rules(ctx: Arc<Context>, node: NetnsHandle, probe_source: std::net::Ipv4Addr) {
    let (_, mut updates) = ctx.pods.subscribe();
    loop {
        let ips = ctx.pods.active_ipv4();
        let node = node.clone();
        let synced =
            tokio::task::spawn_blocking(move || crate::cni::iptables::sync_probe_snat(&node, &ips, probe_source)).await;
        if let Ok(Err(error)) = synced {
            tracing::warn!(%error, "cni agent: cannot update the node's probe rule");
        }
        match updates.recv().await {
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Starts the agent: the config source and mesh index, both sockets, the reconciler, and (when
/// configured) the plugin installation. Returns once the sockets listen.
pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
    let executor = NetnsExecutor::start("cni-netns").map_err(AgentError::Executor)?;
    let source = config::start(config.source).await?;
    let mesh = Mesh::new(config.mesh.clone());
    let (synced_tx, synced) = tokio::sync::watch::channel(false);
    let context = Arc::new(Context {
        pods: Pods::new(),
        mesh: mesh.clone(),
        node_name: config.node_name,
        redirect: config.redirect,
        executor,
        enrolled_wait: config.enrolled_wait,
        ztunnel_wait: config.ztunnel_wait,
        retry_interval: config.retry_interval,
        discovery: config.discovery,
        synced,
    });

    let zds = Arc::new(ZdsListener::bind(&config.zds_socket).map_err(|source| AgentError::Listen {
        what: "ZDS",
        path: config.zds_socket.clone(),
        source,
    })?);
    let plugin = plugin_server::PluginListener::bind(&config.plugin_socket).map_err(|source| AgentError::Listen {
        what: "plugin",
        path: config.plugin_socket.clone(),
        source,
    })?;

    let mut tasks = Vec::new();
    let subscription = source.store.subscribe();
    tasks.push(tokio::spawn(async move { mesh.follow(subscription).await }));
    tasks.push(tokio::spawn(reconcile::run(context.clone(), source.store.clone(), synced_tx)));
    tasks.push(tokio::spawn(zds::serve(zds.clone(), context.clone())));
    tasks.push(tokio::spawn(plugin_server::serve(plugin, context.clone())));
    if let Some(node) = config.probe_snat.clone() {
        tasks.push(tokio::spawn(sync_probe_rules(context.clone(), node, context.redirect.probe_source)));
    }

    if let Some(install) = &config.install {
        if let Err(e) = install::install(install, &config.plugin_socket) {
            for task in &tasks {
                task.abort();
            }
            return Err(e.into());
        }
        info!(bin_dir = %install.bin_dir.display(), conf_dir = %install.conf_dir.display(), "cni plugin installed");
    } else {
        info!("cni plugin not installed by the agent: the host provides it");
    }
    info!(node = %context.node_name, zds = %config.zds_socket.display(), plugin = %config.plugin_socket.display(), "cni agent started");
    Ok(Agent { context, install: config.install, tasks, _zds: zds, _source: source })
}
