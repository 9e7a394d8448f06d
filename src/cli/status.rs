//! `ambient proxy-status` and `ambient ztunnel-config`: what the proxies are running.

use clap::{Args, ValueEnum};

use super::OutputFormat;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ambient proxy-status\n  ambient proxy-status ztunnel-x7k2p.istio-system")]
pub struct ProxyStatusArgs {
    /// A single proxy (`<pod>.<namespace>`); all proxies when omitted.
    pub proxy: Option<String>,
    /// Control plane debug address (default: found in the cluster or the local mesh).
    #[arg(long, value_name = "HOST:PORT")]
    pub controlplane_address: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ZtunnelConfigKind {
    All,
    Workloads,
    Services,
    Policies,
    Certificates,
    Connections,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ambient ztunnel-config workloads\n  ambient ztunnel-config policies --node node-1 -o json"
)]
pub struct ZtunnelConfigArgs {
    /// What to show.
    #[arg(value_enum, default_value = "all")]
    pub what: ZtunnelConfigKind,
    /// The node whose ztunnel to ask (default: any).
    #[arg(long)]
    pub node: Option<String>,
    /// ztunnel admin address to ask directly.
    #[arg(long, value_name = "HOST:PORT")]
    pub admin_address: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}
