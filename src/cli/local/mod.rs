//! `ambient local`: the mesh on one Linux machine, pods as network namespaces.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

mod inspect;
mod up;

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Start a local mesh from Kubernetes YAML.
    #[command(
        after_help = "Examples:\n  sudo ambient local up -f examples/bookinfo/\n  sudo ambient local up -f mesh.yaml --nodes 2"
    )]
    Up(LocalUpArgs),
    /// Stop the local mesh and remove everything it created.
    #[command(after_help = "Examples:\n  sudo ambient local down")]
    Down(StateDirArgs),
    /// Show the local mesh's nodes, pods and components.
    #[command(after_help = "Examples:\n  ambient local status\n  ambient local status -o json")]
    Status(LocalStatusArgs),
    /// Run a command inside a pod's network namespace.
    #[command(after_help = "Examples:\n  sudo ambient local exec sleep -n default -- curl -s http://httpbin:8000/get")]
    Exec(LocalExecArgs),
    /// Show a pod's or component's logs.
    #[command(
        after_help = "Examples:\n  ambient local logs productpage -n bookinfo\n  ambient local logs ztunnel --node node-1 -f"
    )]
    Logs(LocalLogsArgs),
    /// Print a component's Prometheus metrics.
    #[command(after_help = "Examples:\n  ambient local metrics ztunnel/node-1\n  ambient local metrics controlplane")]
    Metrics(LocalMetricsArgs),
    /// The runtime behind `up` (started by `up`, not by hand).
    #[command(hide = true, after_help = "Examples:\n  ambient local runtime -f mesh/ --nodes 2 --state-dir /var/run/ambient-local")]
    Runtime(LocalUpArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StateDirArgs {
    /// Where the local mesh keeps its state (one folder per mesh).
    #[arg(long, env = "AMBIENT_LOCAL_STATE_DIR", default_value = crate::local::state::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LocalStatusArgs {
    /// Output format (json and yaml add each component's observed health to the state file).
    #[arg(short, long, value_enum, default_value_t)]
    pub output: crate::cli::OutputFormat,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Args)]
pub struct LocalMetricsArgs {
    /// `controlplane`, or `ztunnel/NODE` (e.g. `ztunnel/node-1`).
    pub component: String,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LocalUpArgs {
    /// Files or folders of Kubernetes YAML (repeatable).
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Number of nodes to spread pods over.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Args)]
pub struct LocalExecArgs {
    /// Pod name.
    pub pod: String,
    /// Pod namespace.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Command and arguments to run.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub state: StateDirArgs,
}

#[derive(Debug, Args)]
pub struct LocalLogsArgs {
    /// Pod or component name.
    pub name: String,
    /// Pod namespace.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Container, for pods with several.
    #[arg(short, long)]
    pub container: Option<String>,
    /// Node, for per-node components.
    #[arg(long)]
    pub node: Option<String>,
    /// Keep printing new lines.
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub state: StateDirArgs,
}

pub fn run(cmd: LocalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LocalCommand::Up(args) => up::up(args),
        LocalCommand::Runtime(args) => up::runtime(args),
        LocalCommand::Down(args) => inspect::down(args),
        LocalCommand::Status(args) => inspect::status(args),
        LocalCommand::Exec(args) => inspect::exec(args),
        LocalCommand::Logs(args) => inspect::logs(args),
        LocalCommand::Metrics(args) => inspect::metrics(args),
    }
}
