//! `ambient install`, `uninstall`, `manifest generate` and `profile`: putting ambient on a cluster.

use clap::{Args, Subcommand};

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

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ambient install --profile=ambient -y\n  ambient install --profile=ambient --set global.hub=registry.example/ambient --dry-run"
)]
pub struct InstallArgs {
    #[command(flatten)]
    pub values: ValuesArgs,
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
