//! Component entrypoints: `controlplane`, `ztunnel`, `cni` (the container images run these).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::not_implemented;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigSourceKind {
    /// Watch the Kubernetes API (in-cluster config or kubeconfig).
    Kube,
    /// Watch files and folders of Kubernetes YAML.
    Files,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ambient controlplane --config-source files --config mesh/ --state-dir /var/lib/ambient\n  ambient controlplane --config-source kube"
)]
pub struct ControlplaneArgs {
    /// Where mesh configuration comes from.
    #[arg(long, value_enum, env = "AMBIENT_CONFIG_SOURCE", default_value = "kube")]
    pub config_source: ConfigSourceKind,
    /// Files or folders of YAML, with `--config-source files` (repeatable; `-` for stdin).
    #[arg(long = "config", value_name = "PATH", required_if_eq("config_source", "files"))]
    pub config: Vec<PathBuf>,
    /// Trust domain of workload identities.
    #[arg(long, env = "AMBIENT_TRUST_DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
    /// Namespace whose policies apply mesh-wide.
    #[arg(long, env = "AMBIENT_ROOT_NAMESPACE", default_value = "istio-system")]
    pub root_namespace: String,
    /// xDS and CA listen address (TLS).
    #[arg(long, env = "AMBIENT_XDS_LISTEN", default_value = "[::]:15012")]
    pub xds_address: String,
    /// Debug and metrics listen address.
    #[arg(long, env = "AMBIENT_DEBUG_LISTEN", default_value = "127.0.0.1:15014")]
    pub debug_address: String,
    /// Where to keep state that must survive restarts (CA key, in files mode).
    #[arg(long, env = "AMBIENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ambient ztunnel --xds-address https://controlplane:15012 --node-name node-1")]
pub struct ZtunnelArgs {
    /// Control plane xDS address.
    #[arg(long, env = "AMBIENT_XDS_ADDRESS", value_name = "URL")]
    pub xds_address: Option<String>,
    /// Certificate authority address (default: the xDS address).
    #[arg(long, env = "AMBIENT_CA_ADDRESS", value_name = "URL")]
    pub ca_address: Option<String>,
    /// This node's name.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Service account token presented to the control plane.
    #[arg(long, env = "AMBIENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Root certificate of the control plane.
    #[arg(long, env = "AMBIENT_ROOT_CERT")]
    pub root_cert: Option<PathBuf>,
    /// The CNI agent's ZDS socket to connect to.
    #[arg(long, env = "AMBIENT_ZDS_SOCKET", default_value = "/var/run/ztunnel/ztunnel.sock")]
    pub zds_socket: PathBuf,
    /// Admin API listen address (localhost only).
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin_address: String,
    /// Prometheus metrics listen address.
    #[arg(long, default_value = "[::]:15020")]
    pub metrics_address: String,
    /// Readiness listen address.
    #[arg(long, default_value = "[::]:15021")]
    pub readiness_address: String,
    /// Data-path worker threads (default: number of CPUs).
    #[arg(long, env = "AMBIENT_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
}

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  ambient cni --node-name node-1 --config-source kube\n  ambient cni plugin < cni-request.json   # as exec'd by the container runtime"
)]
pub struct CniArgs {
    #[command(subcommand)]
    pub command: Option<CniCommand>,
    /// This node's name: only its pods are enrolled.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Where pod information comes from.
    #[arg(long, value_enum, env = "AMBIENT_CONFIG_SOURCE", default_value = "kube")]
    pub config_source: ConfigSourceKind,
    /// Files or folders of YAML, with `--config-source files`.
    #[arg(long = "config", value_name = "PATH")]
    pub config: Vec<PathBuf>,
    /// The ZDS socket to listen on for ztunnel.
    #[arg(long, env = "AMBIENT_ZDS_SOCKET", default_value = "/var/run/ztunnel/ztunnel.sock")]
    pub zds_socket: PathBuf,
    /// Host folder for CNI plugin binaries.
    #[arg(long, default_value = "/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    /// Host folder for CNI network configuration.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum CniCommand {
    /// Act as the chained CNI plugin (CNI_COMMAND and friends in the environment, config on stdin).
    #[command(after_help = "Examples:\n  CNI_COMMAND=VERSION ambient cni plugin")]
    Plugin,
}

pub fn run_cni(args: CniArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(CniCommand::Plugin) => not_implemented("cni plugin"),
        None => not_implemented("cni"),
    }
}
