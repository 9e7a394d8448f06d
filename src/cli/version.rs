//! `ambient version`.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("AMBIENT_GIT_COMMIT");
/// `--version` text: version and commit.
pub const LONG: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("AMBIENT_GIT_COMMIT"), ")");

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum VersionFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ambient version\n  ambient version -o json")]
pub struct VersionArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: VersionFormat,
}

#[derive(Serialize)]
struct VersionInfo {
    version: &'static str,
    commit: &'static str,
    target: &'static str,
}

pub fn run(args: VersionArgs) -> anyhow::Result<ExitCode> {
    let info = VersionInfo { version: VERSION, commit: COMMIT, target: env!("AMBIENT_TARGET") };
    match args.output {
        VersionFormat::Text => println!("ambient {} (commit {}, {})", info.version, info.commit, info.target),
        VersionFormat::Json => println!("{}", serde_json::to_string_pretty(&info)?),
    }
    Ok(ExitCode::SUCCESS)
}
