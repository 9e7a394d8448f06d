//! Logging for every command: `--log-level` (or `RUST_LOG`) and `--log-format`.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log level or filter directives (e.g. `debug`, `info,ambient::config=trace`). Defaults to
    /// `info` for components and `warn` for laptop commands.
    #[arg(long, global = true, env = "RUST_LOG", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log line format (components write structured logs to stderr).
    #[arg(long, global = true, env = "AMBIENT_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// Installs the global tracing subscriber (stderr). A bad filter is an error naming it.
pub fn init(args: &LogArgs, component: bool) -> anyhow::Result<()> {
    // kube's client logs every failed request at error level; laptop commands report those
    // failures themselves, as one line, so its request tracing stays off unless asked for.
    let default = if component { "info" } else { "warn,kube_client::client::builder=off" };
    let directives = args.log_level.as_deref().unwrap_or(default);
    let filter = EnvFilter::builder()
        .parse(directives)
        .map_err(|e| anyhow::anyhow!("invalid --log-level/RUST_LOG {directives:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already initialised (e.g. in tests that call `run` twice) is fine.
    let _ = result;
    Ok(())
}
