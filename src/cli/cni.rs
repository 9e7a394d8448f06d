//! `ambient cni` (the node agent): flags to an [`AgentConfig`], then run until a signal, and
//! remove the installed plugin on the way out.

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::components::{CniArgs, ConfigSourceKind};
use crate::cni::agent::{self, AgentConfig, InstallConfig};
use crate::config::SourceConfig;
use crate::config::files::FilesConfig;
use crate::config::kube::KubeConfig;
use crate::mesh::MeshConfig;
use crate::sys::netns::Netns;

pub fn config(args: CniArgs) -> anyhow::Result<AgentConfig> {
    let Some(node_name) = args.node_name.filter(|n| !n.is_empty()) else {
        bail!("--node-name (or NODE_NAME) is required: the agent enrols the pods of one node");
    };
    let source = match args.config_source {
        ConfigSourceKind::Files => {
            if args.config.is_empty() {
                bail!("--config-source files needs at least one --config PATH");
            }
            SourceConfig::Files(FilesConfig::new(args.config))
        }
        ConfigSourceKind::Kube => SourceConfig::Kube(KubeConfig {
            context: args.context,
            kubeconfig: args.kubeconfig,
            kinds: Some(agent::WATCHED_KINDS.to_vec()),
        }),
    };
    // Installing into the host's CNI folders is what a DaemonSet does; a files setup provides
    // the plugin itself unless asked.
    let install = args.install_plugin || (!args.no_install_plugin && args.config_source == ConfigSourceKind::Kube);
    let mut config = AgentConfig::new(source, node_name);
    config.mesh = MeshConfig::new(&args.trust_domain, &args.root_namespace)
        .with_context(|| format!("--trust-domain {} / --root-namespace {}", args.trust_domain, args.root_namespace))?;
    config.zds_socket = args.zds_socket;
    config.plugin_socket = args.plugin_socket;
    if args.probe_snat || (!args.no_probe_snat && args.config_source == ConfigSourceKind::Kube) {
        // The agent runs in the node's network namespace (hostNetwork).
        config.probe_snat = Some(Netns::current().context("opening the node's network namespace")?);
    }
    if let Some(prefix) = args.netns_prefix.filter(|p| !p.is_empty()) {
        config.discovery = agent::Discovery::NamedPrefix(prefix);
    }
    if install {
        let binary = std::env::current_exe().context("locating the agent's own binary to install as the plugin")?;
        config.install = Some(InstallConfig { bin_dir: args.cni_bin_dir, conf_dir: args.cni_conf_dir, binary });
    }
    Ok(config)
}

pub fn run(args: CniArgs) -> anyhow::Result<ExitCode> {
    let readiness = match &args.readiness_address {
        Some(text) => Some(super::controlplane::listen_address("--readiness-address", text)?),
        None => None,
    };
    let config = config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let agent = agent::start(config).await.context("cni agent")?;
        // Bound only once the agent runs: answering at all is the readiness signal.
        if let Some(address) = readiness {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("--readiness-address {address}: cannot listen"))?;
            tokio::spawn(serve_ready(listener));
        }
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
            _ = terminate.recv() => tracing::info!("terminated; stopping"),
        }
        agent.shutdown().await.context("cni agent: removing the installed plugin")?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Answers every HTTP request on `listener` with 200 (`/healthz/ready`) or 404.
pub(super) async fn serve_ready(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut request)).await;
            let Ok(Ok(n)) = read else { return };
            let ready = request[..n].starts_with(b"GET /healthz/ready ");
            let response: &[u8] = if ready {
                b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nready\n"
            } else {
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            let _ = stream.write_all(response).await;
        });
    }
}
