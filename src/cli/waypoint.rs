//! `ambient waypoint`: waypoint Gateways (apply, list, delete) and the waypoint proxy (`run`).

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::{OutputFormat, not_implemented};

#[derive(Debug, Subcommand)]
pub enum WaypointCommand {
    /// Create or update a waypoint for a namespace.
    #[command(
        after_help = "Examples:\n  ambient waypoint apply -n bookinfo --enroll-namespace\n  ambient waypoint apply -n bookinfo --name reviews-wp --for service"
    )]
    Apply(WaypointApplyArgs),
    /// List waypoints.
    #[command(after_help = "Examples:\n  ambient waypoint list -n bookinfo\n  ambient waypoint list -A")]
    List(WaypointListArgs),
    /// Delete waypoints.
    #[command(
        after_help = "Examples:\n  ambient waypoint delete -n bookinfo waypoint\n  ambient waypoint delete -n bookinfo --all"
    )]
    Delete(WaypointDeleteArgs),
    /// Run the waypoint proxy (component entrypoint).
    #[command(after_help = "Examples:\n  ambient waypoint run --xds-address controlplane.istio-system:15012")]
    Run(WaypointRunArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TrafficType {
    Service,
    Workload,
    All,
    None,
}

#[derive(Debug, Args)]
pub struct WaypointApplyArgs {
    /// Namespace of the waypoint.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Name of the waypoint Gateway.
    #[arg(long, default_value = "waypoint")]
    pub name: String,
    /// Also label the namespace to use this waypoint.
    #[arg(long)]
    pub enroll_namespace: bool,
    /// Which traffic the waypoint handles.
    #[arg(long = "for", value_enum, default_value = "service")]
    pub traffic_type: TrafficType,
    /// Wait for the waypoint to be ready.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct WaypointListArgs {
    /// Namespace to list.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// List waypoints in all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct WaypointDeleteArgs {
    /// Names of the waypoints to delete.
    pub names: Vec<String>,
    /// Namespace of the waypoints.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Delete every waypoint in the namespace.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct WaypointRunArgs {
    /// Control plane xDS address.
    #[arg(long, env = "AMBIENT_XDS_ADDRESS", value_name = "HOST:PORT")]
    pub xds_address: Option<String>,
}

pub fn run(cmd: WaypointCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        WaypointCommand::Apply(_) => not_implemented("waypoint apply"),
        WaypointCommand::List(_) => not_implemented("waypoint list"),
        WaypointCommand::Delete(_) => not_implemented("waypoint delete"),
        WaypointCommand::Run(_) => not_implemented("waypoint run"),
    }
}
