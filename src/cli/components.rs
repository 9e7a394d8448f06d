//! Component entrypoints: `controlplane`, `ztunnel`, `cni` (the container images run these).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

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
    /// Where to keep state that must survive restarts: the generated CA root, in files mode.
    #[arg(long, env = "AMBIENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The CA's signing certificate (PEM): a root, or an intermediate (plug-in CA).
    #[arg(long, env = "AMBIENT_CA_CERT", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The private key of --ca-cert (PEM).
    #[arg(long, env = "AMBIENT_CA_KEY", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Certificates between --ca-cert and the root (PEM, in order), for an intermediate CA.
    #[arg(long, env = "AMBIENT_CA_CHAIN", requires = "ca_cert")]
    pub ca_chain: Option<PathBuf>,
    /// The root certificate (PEM) when --ca-cert is an intermediate and --ca-chain lacks it.
    #[arg(long, env = "AMBIENT_CA_ROOT", requires = "ca_cert")]
    pub ca_root: Option<PathBuf>,
    /// Kube mode: the Secret (in the root namespace) that keeps the generated CA root.
    #[arg(long, env = "AMBIENT_CA_SECRET", default_value = "ambient-ca")]
    pub ca_secret: String,
    /// Kube mode: publish the root certificate (key `root-cert.pem`) into this ConfigMap of the
    /// root namespace, for ztunnels to mount; it must exist (install creates it).
    #[arg(long, env = "AMBIENT_ROOT_CERT_CONFIGMAP", value_name = "NAME")]
    pub root_cert_configmap: Option<String>,
    /// Lifetime of workload certificates when the request names none (s, m, h or d).
    #[arg(long, env = "AMBIENT_CERT_TTL", default_value = "24h", value_parser = parse_ttl)]
    pub cert_ttl: std::time::Duration,
    /// Longest workload certificate lifetime granted (s, m, h or d).
    #[arg(long, env = "AMBIENT_MAX_CERT_TTL", default_value = "90d", value_parser = parse_ttl)]
    pub max_cert_ttl: std::time::Duration,
    /// Files mode: the tokens that authenticate callers, one per line:
    /// `<token> <namespace>/<serviceaccount> [node=<node>] [pod=<pod>]`.
    #[arg(long, env = "AMBIENT_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Service accounts (`namespace/name`, comma separated) trusted to request certificates for
    /// pods on their own node [default: istio-system/ztunnel and <root-namespace>/ztunnel].
    #[arg(long, env = "AMBIENT_TRUSTED_NODE_ACCOUNTS", value_delimiter = ',')]
    pub trusted_node_accounts: Vec<String>,
    /// Extra DNS names or IPs for the xDS endpoint's certificate (repeatable).
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_names: Vec<String>,
    /// Cluster name in workload uids (`<cluster>//Pod/<ns>/<name>`).
    #[arg(long, env = "AMBIENT_CLUSTER_ID", default_value = "Kubernetes")]
    pub cluster_id: String,
    /// DNS suffix of service hostnames.
    #[arg(long, env = "AMBIENT_DOMAIN_SUFFIX", default_value = "cluster.local")]
    pub domain_suffix: String,
    /// Kubernetes context (kube mode).
    #[arg(long)]
    pub context: Option<String>,
    /// Kubeconfig file (kube mode; default: in-cluster, then $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    crate::controlplane::ca::parse_duration(text)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ambient ztunnel --xds-address https://controlplane:15012 --node-name node-1 \\\n    --root-cert /var/run/secrets/istio/root-cert.pem --token-file /var/run/secrets/tokens/istio-token"
)]
pub struct ZtunnelArgs {
    /// Control plane xDS address.
    #[arg(long, env = "AMBIENT_XDS_ADDRESS", value_name = "URL", default_value = "https://localhost:15012")]
    pub xds_address: String,
    /// Certificate authority address (default: the xDS address).
    #[arg(long, env = "AMBIENT_CA_ADDRESS", value_name = "URL")]
    pub ca_address: Option<String>,
    /// This node's name (ztunnel serves, and gets certificates for, the pods of this node).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Service account token presented to the control plane (read again on every reconnect).
    #[arg(long, env = "AMBIENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Root certificate (PEM) of the control plane and of the mesh.
    #[arg(long, env = "AMBIENT_ROOT_CERT")]
    pub root_cert: Option<PathBuf>,
    /// Wait for --root-cert to appear (and be non-empty) instead of failing: on Kubernetes it
    /// is a ConfigMap the control plane fills after ztunnel may already have started.
    #[arg(long, env = "AMBIENT_WAIT_FOR_ROOT_CERT")]
    pub wait_for_root_cert: bool,
    /// Name to verify in the control plane's certificate [default: the address's host].
    #[arg(long, env = "AMBIENT_XDS_SERVER_NAME")]
    pub server_name: Option<String>,
    /// The CNI agent's ZDS socket to connect to.
    #[arg(long, env = "AMBIENT_ZDS_SOCKET", default_value = "/var/run/ztunnel/ztunnel.sock")]
    pub zds_socket: PathBuf,
    /// Admin API listen address (config dump; keep it on localhost).
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin_address: String,
    /// Admin API port (shorthand for --admin-address 127.0.0.1:PORT).
    #[arg(long, conflicts_with = "admin_address")]
    pub admin_port: Option<u16>,
    /// Prometheus metrics listen address.
    #[arg(long, default_value = "0.0.0.0:15020")]
    pub metrics_address: String,
    /// Prometheus metrics port (shorthand for --metrics-address 0.0.0.0:PORT).
    #[arg(long, conflicts_with = "metrics_address")]
    pub metrics_port: Option<u16>,
    /// Readiness listen address.
    #[arg(long, default_value = "0.0.0.0:15021")]
    pub readiness_address: String,
    /// Readiness port (shorthand for --readiness-address 0.0.0.0:PORT).
    #[arg(long, conflicts_with = "readiness_address")]
    pub readiness_port: Option<u16>,
    /// Data-path worker threads [default: number of CPUs].
    #[arg(long, env = "AMBIENT_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Trust domain of the mesh.
    #[arg(long, env = "AMBIENT_TRUST_DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
    /// Cluster id (as the control plane names workloads).
    #[arg(long, env = "AMBIENT_CLUSTER_ID", default_value = "Kubernetes")]
    pub cluster_id: String,
    /// Network of this node's pods.
    #[arg(long, env = "AMBIENT_NETWORK", default_value = "")]
    pub network: String,
    /// Access log: one line per connection when it closes.
    #[arg(long, value_enum, env = "AMBIENT_ACCESS_LOG", default_value = "text")]
    pub access_log: crate::ztunnel::accesslog::AccessLogFormat,
    /// Mark on connections ztunnel opens for pods, which their redirect rules let through.
    #[arg(long, default_value_t = crate::ztunnel::config::DEFAULT_PACKET_MARK)]
    pub packet_mark: u32,
    /// Lifetime asked for workload certificates (e.g. 24h, 90m).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub cert_ttl: std::time::Duration,
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
    /// Where the agent listens for the CNI plugin.
    #[arg(long, env = "AMBIENT_CNI_PLUGIN_SOCKET", default_value = crate::cni::protocol::DEFAULT_AGENT_SOCKET)]
    pub plugin_socket: PathBuf,
    /// Install the plugin binary and its conflist entry on start, remove them on exit
    /// [default: on with --config-source kube, off with files].
    #[arg(long, conflicts_with = "no_install_plugin")]
    pub install_plugin: bool,
    /// Do not install the plugin (the host provides it).
    #[arg(long)]
    pub no_install_plugin: bool,
    /// Rewrite the source of node-originated TCP to enrolled pods (kubelet probes) to
    /// 169.254.7.127, which the pods' redirect rules let through [default: on with kube].
    #[arg(long, conflicts_with = "no_probe_snat")]
    pub probe_snat: bool,
    /// Do not install the node-side probe rule.
    #[arg(long)]
    pub no_probe_snat: bool,
    /// Serve `GET /healthz/ready` here (200 once the agent runs), for the kubelet's probe.
    #[arg(long, env = "AMBIENT_CNI_READINESS_ADDRESS", value_name = "HOST:PORT")]
    pub readiness_address: Option<String>,
    /// Look for running pods only in named network namespaces (`/var/run/netns`) whose name
    /// starts with PREFIX, instead of every namespace on the node.
    #[arg(long, value_name = "PREFIX")]
    pub netns_prefix: Option<String>,
    /// Trust domain of workload identities.
    #[arg(long, env = "AMBIENT_TRUST_DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
    /// Namespace whose policies apply mesh-wide.
    #[arg(long, env = "AMBIENT_ROOT_NAMESPACE", default_value = "istio-system")]
    pub root_namespace: String,
    /// Kubernetes context (kube mode).
    #[arg(long)]
    pub context: Option<String>,
    /// Kubeconfig file (kube mode; default: in-cluster, then $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CniCommand {
    /// Act as the chained CNI plugin (CNI_COMMAND and friends in the environment, config on stdin).
    #[command(after_help = "Examples:\n  CNI_COMMAND=VERSION ambient cni plugin")]
    Plugin,
}

pub fn run_cni(args: CniArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(CniCommand::Plugin) => Ok(crate::cni::plugin::main()),
        None => super::cni::run(args),
    }
}
