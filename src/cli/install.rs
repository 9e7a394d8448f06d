//! `ambient install`, `uninstall`, `verify-install`, `manifest generate` and `profile`: putting
//! ambient on a cluster.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::config::kube::KubeConfig;
use crate::install::cluster::{self, Cluster, Confirm, InstallOptions, Ui, UninstallOptions};
use crate::install::{Manifest, render};

#[derive(Debug, Args)]
pub struct ValuesArgs {
    /// Install profile.
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Override one value (repeatable), e.g. `--set trustDomain=example.org`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Values file(s) merged over the profile.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub values_files: Vec<std::path::PathBuf>,
}

/// Which cluster to talk to.
#[derive(Debug, Args)]
pub struct KubeArgs {
    /// Kubernetes context (default: the kubeconfig's current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

impl KubeArgs {
    fn config(&self) -> KubeConfig {
        KubeConfig { context: self.context.clone(), kubeconfig: self.kubeconfig.clone(), kinds: None }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ambient install --profile=ambient -y\n  ambient install --profile=ambient --set global.hub=registry.example/ambient --dry-run\n  ambient install --context staging --wait-timeout 10m"
)]
pub struct InstallArgs {
    #[command(flatten)]
    pub values: ValuesArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// How long to wait for the Deployments and DaemonSets to roll out (s, m or h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_wait)]
    pub wait_timeout: Duration,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "skip-confirmation")]
    pub yes: bool,
    /// Validate with the API server's dry-run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ambient uninstall -y\n  ambient uninstall --purge -y")]
pub struct UninstallArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Also remove the CRDs (and with them every mesh policy in the cluster).
    #[arg(long)]
    pub purge: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "skip-confirmation")]
    pub yes: bool,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ambient verify-install\n  ambient verify-install --profile=ambient --context staging"
)]
pub struct VerifyInstallArgs {
    #[command(flatten)]
    pub values: ValuesArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Print the manifests `install` would apply.
    #[command(after_help = "Examples:\n  ambient manifest generate --profile=ambient > ambient.yaml")]
    Generate(ValuesArgs),
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the built-in profiles.
    #[command(after_help = "Examples:\n  ambient profile list")]
    List,
    /// Print a profile's values.
    #[command(
        after_help = "Examples:\n  ambient profile dump ambient\n  ambient profile dump > values.yaml   # the default profile"
    )]
    Dump {
        /// Profile name.
        #[arg(default_value = "default")]
        name: String,
    },
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    // parse_duration's own message for zero speaks of certificate lifetimes.
    if text.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()).parse::<u64>() == Ok(0) {
        return Err(format!("{text:?}: the wait must be positive"));
    }
    crate::controlplane::ca::parse_duration(text)
}

/// Renders the manifest the values ask for.
fn render(values: &ValuesArgs) -> anyhow::Result<Manifest> {
    render::build(&values.request()).context("rendering the install manifest")
}

/// Runs one cluster command on a fresh single-threaded runtime.
fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

fn confirm(yes: bool) -> Confirm {
    if yes { Confirm::Yes } else { Confirm::Ask }
}

/// `ambient install`.
pub fn run_install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let manifest = render(&args.values)?;
    let opts = InstallOptions { dry_run: args.dry_run, wait_timeout: args.wait_timeout, ..InstallOptions::default() };
    block_on(async {
        // Cluster errors say what failed and where on their own: no context added, one line.
        let cluster = Cluster::connect(&args.kube.config()).await?;
        cluster::install(&cluster, &manifest, &opts, &Ui::terminal(confirm(args.yes))).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `ambient uninstall`.
pub fn run_uninstall(args: UninstallArgs) -> anyhow::Result<ExitCode> {
    let opts = UninstallOptions { purge: args.purge, dry_run: args.dry_run, ..UninstallOptions::default() };
    block_on(async {
        let cluster = Cluster::connect(&args.kube.config()).await?;
        cluster::uninstall(&cluster, &opts, &Ui::terminal(confirm(args.yes))).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `ambient verify-install`: exit status 1 when anything is missing, unlabelled or not rolled out.
pub fn run_verify(args: VerifyInstallArgs) -> anyhow::Result<ExitCode> {
    let manifest = render(&args.values)?;
    block_on(async {
        let cluster = Cluster::connect(&args.kube.config()).await?;
        let report = cluster::verify(&cluster, &manifest, &Ui::terminal(Confirm::Yes)).await?;
        Ok(if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    })
}
