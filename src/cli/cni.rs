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
use crate::model::Kind;
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
            // Pods and namespaces are all the agent reads: its RBAC grants only those.
            kinds: Some(vec![Kind::Pod, Kind::Namespace]),
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
    let config = config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let agent = agent::start(config).await.context("cni agent")?;
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
            _ = terminate.recv() => tracing::info!("terminated; stopping"),
        }
        agent.shutdown().await.context("cni agent: removing the installed plugin")?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
