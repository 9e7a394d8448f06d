//! The command line: one Args struct per command, one file per user-facing command.
//!
//! `main` parses [`Cli`] and calls [`run`]; errors end here as `anyhow` with context. A command
//! whose issue has not landed exits with status 2 and says so ([`not_implemented`]).

pub mod analyze;
pub mod cni;
pub mod completions;
pub mod components;
pub mod controlplane;
pub mod install;
pub mod local;
pub mod logging;
pub mod manifest;
pub mod status;
pub mod version;
pub mod waypoint;
pub mod ztunnel;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status of a command that is not built yet (and of clap's usage errors).
pub const EXIT_NOT_IMPLEMENTED: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "ambient",
    version = version::LONG,
    about = "A sidecar-less service mesh: Istio ambient-compatible mTLS, policy and telemetry in one binary",
    propagate_version = true,
    after_help = "Examples:\n  ambient local up -f examples/bookinfo/   # a real mesh on this machine\n  ambient analyze -f manifests/           # check config before applying it\n  ambient install --profile=ambient       # install into the current Kubernetes cluster"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: logging::LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Laptop CLI.
    /// Install ambient into a Kubernetes cluster.
    Install(install::InstallArgs),
    /// Remove what `ambient install` created.
    Uninstall(install::UninstallArgs),
    /// Check that what `ambient install` applies is in the cluster and rolled out.
    VerifyInstall(install::VerifyInstallArgs),
    /// Render install manifests.
    #[command(subcommand, after_help = "Examples:\n  ambient manifest generate --profile=ambient > ambient.yaml")]
    Manifest(install::ManifestCommand),
    /// List and show install profiles.
    #[command(subcommand, after_help = "Examples:\n  ambient profile list\n  ambient profile dump ambient")]
    Profile(install::ProfileCommand),
    /// Check mesh configuration for problems.
    Analyze(analyze::AnalyzeArgs),
    /// Show whether each proxy has the control plane's latest config.
    ProxyStatus(status::ProxyStatusArgs),
    /// Show a ztunnel's workloads, services, policies and certificates.
    ZtunnelConfig(status::ZtunnelConfigArgs),
    /// Manage waypoint proxies (Gateway resources of class istio-waypoint).
    #[command(
        subcommand,
        after_help = "Examples:\n  ambient waypoint apply -n bookinfo --enroll-namespace\n  ambient waypoint list -A"
    )]
    Waypoint(waypoint::WaypointCommand),
    /// Run a real ambient mesh on this Linux machine, without Kubernetes.
    #[command(
        subcommand,
        after_help = "Examples:\n  sudo ambient local up -f examples/bookinfo/\n  ambient local status\n  sudo ambient local down"
    )]
    Local(local::LocalCommand),
    /// Print shell completions.
    Completions(completions::CompletionsArgs),
    /// Print the version and git commit.
    Version(version::VersionArgs),

    // Component entrypoints (what the container images run).
    /// Run the control plane: xDS server and certificate authority.
    Controlplane(Box<components::ControlplaneArgs>),
    /// Run the per-node L4 proxy.
    Ztunnel(Box<components::ZtunnelArgs>),
    /// Run the CNI node agent (or, as `cni plugin`, the CNI plugin).
    Cni(components::CniArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    logging::init(&cli.log, cli.command.is_component())?;
    match cli.command {
        Command::Install(args) => install::run_install(args),
        Command::Uninstall(args) => install::run_uninstall(args),
        Command::VerifyInstall(args) => install::run_verify(args),
        Command::Manifest(command) => manifest::run_manifest(command),
        Command::Profile(command) => manifest::run_profile(command),
        Command::Analyze(args) => analyze::run(args),
        Command::ProxyStatus(_) => not_implemented("proxy-status"),
        Command::ZtunnelConfig(_) => not_implemented("ztunnel-config"),
        Command::Waypoint(cmd) => waypoint::run(cmd),
        Command::Local(cmd) => local::run(cmd),
        Command::Completions(args) => completions::run(args),
        Command::Version(args) => version::run(args),
        Command::Controlplane(args) => controlplane::run(*args),
        Command::Ztunnel(args) => ztunnel::run(*args),
        Command::Cni(args) => components::run_cni(args),
    }
}

impl Command {
    /// Components log at `info` by default and honour `--log-format`; laptop commands are quiet.
    pub fn is_component(&self) -> bool {
        matches!(
            self,
            Command::Controlplane(_)
                | Command::Ztunnel(_)
                | Command::Cni(_)
                | Command::Waypoint(waypoint::WaypointCommand::Run(_))
                | Command::Local(local::LocalCommand::Runtime(_))
        )
    }
}

/// Reports a command that is not built yet: status 2 and a plain message, never a fake success.
pub fn not_implemented(command: &str) -> anyhow::Result<ExitCode> {
    eprintln!("ambient {command}: not implemented yet");
    Ok(ExitCode::from(EXIT_NOT_IMPLEMENTED))
}

/// Output formats shared by commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

#[cfg(test)]
mod tests;
