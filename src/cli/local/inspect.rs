//! `ambient local status|exec|logs|metrics|down`: everything that acts on a local mesh from its
//! state file. Each command splits what it shows (pure functions of the [`MeshState`], tested)
//! from the I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use super::{LocalExecArgs, LocalLogsArgs, LocalMetricsArgs, LocalStatusArgs, StateDirArgs};
use crate::cli::OutputFormat;
use crate::local::state::{ComponentKind, ComponentState, MeshState, Phase, PodState, StateDir};
use crate::local::teardown::{self, NETNS_DIR, TeardownReport};
use crate::sys::netns::{Netns, command_in_pod};

#[cfg(test)]
mod tests;

/// How long a component gets to answer its readiness URL in `status`.
const READY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a component gets to send its metrics.
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often `logs -f` looks for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub fn status(args: LocalStatusArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir(&args.state)?;
    let state = load(&dir)?;
    let observed = observe(&state);
    match args.output {
        OutputFormat::Table => print!("{}", render_status(&state, &observed)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&StatusView::new(&state, &observed))?),
        OutputFormat::Yaml => {
            print!("{}", serde_saphyr::to_string(&StatusView::new(&state, &observed)).context("rendering YAML")?)
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn exec(args: LocalExecArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir(&args.state)?;
    let state = load(&dir)?;
    let (namespace, name) = (args.namespace.as_str(), args.pod.as_str());
    let pod = find_pod(&state, namespace, name)?;
    let netns_name = pod.netns.as_deref().ok_or_else(|| {
        anyhow!("pod {namespace}/{name} has no network namespace yet (phase {}{})", pod.phase, reason(pod))
    })?;
    require_root("local exec", "it enters the pod's namespaces")?;
    let netns = Netns::open(&Path::new(NETNS_DIR).join(netns_name))
        .with_context(|| format!("opening the network namespace of pod {namespace}/{name}"))?;
    let hosts = dir.hosts_file(namespace, name);
    if !hosts.exists() {
        bail!("pod {namespace}/{name} is not set up yet: its hosts file {} is missing", hosts.display());
    }
    let (program, program_args) = args.command.split_first().context("no command given after `--`")?;
    let mut command = command_in_pod(&netns, &hosts, false, program)
        .with_context(|| format!("preparing `{program}` for pod {namespace}/{name}"))?;
    command.args(program_args);
    let status = command.status().with_context(|| format!("running `{program}` in pod {namespace}/{name}"))?;
    Ok(exit_code(status))
}

pub fn logs(args: LocalLogsArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir(&args.state)?;
    let state = match dir.load()? {
        Some(state) => Some(state),
        // After a failed `up` the logs may be all there is; the runtime's and components' paths
        // do not need the state file.
        None if dir.logs_dir().exists() => None,
        None => return Err(no_mesh(&dir)),
    };
    let target = LogTarget {
        name: &args.name,
        namespace: &args.namespace,
        container: args.container.as_deref(),
        node: args.node.as_deref(),
    };
    let sources = resolve_logs(&dir, state.as_ref(), &target)?;
    let result = if args.follow { follow(&sources) } else { print_logs(&sources) };
    match result {
        // `ambient local logs x | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS).context("printing logs"),
    }
}

pub fn metrics(args: LocalMetricsArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir(&args.state)?;
    let state = load(&dir)?;
    let url = metrics_url(&state, &args.component)?;
    let (code, body) =
        http_get(&url, METRICS_TIMEOUT).with_context(|| format!("fetching {}'s metrics", args.component))?;
    if code != 200 {
        bail!("{}'s metrics endpoint {url} answered HTTP {code}", args.component);
    }
    std::io::stdout().write_all(&body).context("printing metrics")?;
    Ok(ExitCode::SUCCESS)
}

pub fn down(args: StateDirArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir(&args)?;
    if teardown::leftovers(&dir).is_empty() {
        println!("no local mesh at {}", dir.root().display());
        return Ok(ExitCode::SUCCESS);
    }
    require_root("local down", "it stops the mesh's processes and deletes its network namespaces")?;
    let report = teardown::teardown(&dir)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    println!("{}", render_down(&dir, &report));
    Ok(ExitCode::SUCCESS)
}

fn state_dir(args: &StateDirArgs) -> anyhow::Result<StateDir> {
    StateDir::new(&args.state_dir).with_context(|| format!("state folder {}", args.state_dir.display()))
}

fn no_mesh(dir: &StateDir) -> anyhow::Error {
    anyhow!("no local mesh at {} (start one with `ambient local up -f PATH`)", dir.root().display())
}

/// The state file, or the "no local mesh" error.
fn load(dir: &StateDir) -> anyhow::Result<MeshState> {
    dir.load()?.ok_or_else(|| no_mesh(dir))
}

fn require_root(command: &str, why: &str) -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("`ambient {command}` needs root ({why}); run it with sudo");
    }
    Ok(())
}

/// The child's exit status as ours: its code, or 128 + the signal that killed it (as shells do).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from(128u8.wrapping_add(signal as u8)),
        (None, None) => ExitCode::FAILURE,
    }
}

fn find_pod<'a>(state: &'a MeshState, namespace: &str, name: &str) -> anyhow::Result<&'a PodState> {
    state.pod(namespace, name).ok_or_else(|| {
        let known: Vec<String> = state.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        anyhow!("no pod {name} in namespace {namespace} (pods: {known})")
    })
}

fn reason(pod: &PodState) -> String {
    pod.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// status

/// How a component is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "health", content = "detail")]
pub enum Health {
    /// Running and its readiness URL answers 200.
    Healthy,
    /// Running; it has no readiness URL to ask.
    Running,
    /// Running, but its readiness URL does not answer 200 (why).
    NotReady(String),
    /// Not running (the runtime restarts it, or the runtime itself is gone).
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => write!(f, "healthy"),
            Health::Running => write!(f, "running"),
            Health::NotReady(why) => write!(f, "not ready: {why}"),
            Health::Down => write!(f, "down"),
        }
    }
}

/// What `status` observed of the live processes, beside the state file.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub runtime_alive: bool,
    /// By component name.
    pub health: BTreeMap<String, Health>,
}

fn observe(state: &MeshState) -> Observed {
    Observed {
        runtime_alive: state.runtime.is_some_and(|r| r.is_alive()),
        health: state.components.iter().map(|c| (c.name.clone(), component_health(c))).collect(),
    }
}

fn component_health(component: &ComponentState) -> Health {
    if !component.process.is_some_and(|p| p.is_alive()) {
        return Health::Down;
    }
    let Some(url) = &component.ready_url else { return Health::Running };
    match http_get(url, READY_TIMEOUT) {
        Ok((200, _)) => Health::Healthy,
        Ok((code, _)) => Health::NotReady(format!("{url} answered HTTP {code}")),
        Err(e) => Health::NotReady(format!("{e:#}")),
    }
}

fn phase_text(phase: &Phase) -> String {
    match phase {
        Phase::Starting => "starting".into(),
        Phase::Ready => "ready".into(),
        Phase::Failed(why) => format!("failed: {why}"),
        Phase::Stopping => "stopping".into(),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    table
}

/// `status` as text: the mesh's phase, its pods, services and components, and its problems.
pub fn render_status(state: &MeshState, observed: &Observed) -> String {
    let mut out = format!(
        "local mesh {} at {}: {} ({} node{}, {} pod{}, {} service{})\n",
        state.id,
        state.state_dir.display(),
        phase_text(&state.phase),
        state.nodes.len(),
        plural(state.nodes.len()),
        state.pods.len(),
        plural(state.pods.len()),
        state.services.len(),
        plural(state.services.len()),
    );
    if !observed.runtime_alive && state.phase != Phase::Stopping {
        let pid = state.runtime.map(|r| format!(" (pid {})", r.pid)).unwrap_or_default();
        out.push_str(&format!(
            "warning: the runtime{pid} is not running: nothing supervises the mesh; `ambient local down` removes it\n"
        ));
    }

    if !state.pods.is_empty() {
        let mut pods = table(&["POD", "NAMESPACE", "NODE", "IP", "ENROLLED", "READY", "PHASE", "RESTARTS"]);
        for pod in &state.pods {
            let restarts: u32 = pod.containers.iter().map(|c| c.restarts).sum();
            pods.add_row([
                pod.name.clone(),
                pod.namespace.clone(),
                pod.node.clone(),
                pod.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
                yes_no(pod.enrolled).into(),
                yes_no(pod.ready).into(),
                pod.phase.clone(),
                restarts.to_string(),
            ]);
        }
        out.push_str(&format!("\n{pods}\n"));
        for pod in state.pods.iter().filter(|p| p.message.is_some()) {
            out.push_str(&format!("  {}/{}{}\n", pod.namespace, pod.name, reason(pod)));
        }
    }

    if !state.services.is_empty() {
        let mut services = table(&["SERVICE", "NAMESPACE", "CLUSTER-IP", "PORTS"]);
        for service in &state.services {
            let ports: Vec<String> = service.ports.iter().map(u16::to_string).collect();
            services.add_row([
                service.name.clone(),
                service.namespace.clone(),
                service.cluster_ip.to_string(),
                ports.join(","),
            ]);
        }
        out.push_str(&format!("\n{services}\n"));
    }

    if !state.components.is_empty() {
        let mut components = table(&["COMPONENT", "NODE", "PID", "RESTARTS", "HEALTH"]);
        for component in &state.components {
            let health = observed.health.get(&component.name).map(Health::to_string).unwrap_or_else(|| "-".into());
            components.add_row([
                component.name.clone(),
                component.node.clone().unwrap_or_else(|| "-".into()),
                component.process.map(|p| p.pid.to_string()).unwrap_or_else(|| "-".into()),
                component.restarts.to_string(),
                health,
            ]);
        }
        out.push_str(&format!("\n{components}\n"));
    }

    if !state.problems.is_empty() {
        out.push_str(&format!(
            "\n{} problem{} in the input files:\n",
            state.problems.len(),
            plural(state.problems.len())
        ));
        for problem in &state.problems {
            out.push_str(&format!("  {problem}\n"));
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `status -o json|yaml`: the state file with each component's observed health.
#[derive(Serialize)]
pub struct StatusView<'a> {
    #[serde(flatten)]
    state: &'a MeshState,
    runtime_alive: bool,
    health: &'a BTreeMap<String, Health>,
}

impl<'a> StatusView<'a> {
    fn new(state: &'a MeshState, observed: &'a Observed) -> Self {
        StatusView { state, runtime_alive: observed.runtime_alive, health: &observed.health }
    }
}

/// What `down` prints.
pub fn render_down(dir: &StateDir, report: &TeardownReport) -> String {
    if !report.found {
        return format!("no local mesh at {}", dir.root().display());
    }
    let namespaces = report.namespaces.len();
    let mut text = if report.runtime_stopped { "stopped the runtime; removed ".to_string() } else { "removed ".into() };
    text.push_str(&format!(
        "{namespaces} network namespace{}, {} process{}",
        plural(namespaces),
        report.processes,
        if report.processes == 1 { "" } else { "es" }
    ));
    if report.state_dir_removed {
        text.push_str(&format!(", state dir {}", dir.root().display()));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// logs

/// What `logs` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct LogTarget<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub container: Option<&'a str>,
    pub node: Option<&'a str>,
}

/// One log file to print, with the header that introduces it when there are several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    pub header: Option<String>,
    pub path: PathBuf,
}

/// Which log files `logs` prints: a pod's containers, a component's, or the runtime's.
pub fn resolve_logs(dir: &StateDir, state: Option<&MeshState>, target: &LogTarget) -> anyhow::Result<Vec<LogSource>> {
    let single = |path| Ok(vec![LogSource { header: None, path }]);
    if target.name == "runtime" {
        return single(dir.runtime_log());
    }
    if let Some(pod) = state.and_then(|s| s.pod(target.namespace, target.name)) {
        let containers: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        return match target.container {
            Some(wanted) if containers.contains(&wanted) => {
                single(dir.container_log(&pod.namespace, &pod.name, wanted))
            }
            Some(wanted) => bail!(
                "pod {}/{} has no container {wanted} (containers: {})",
                pod.namespace,
                pod.name,
                containers.join(", ")
            ),
            None if containers.len() == 1 => single(dir.container_log(&pod.namespace, &pod.name, containers[0])),
            None => Ok(containers
                .iter()
                .map(|c| LogSource {
                    header: Some(format!("==> container {c} <==")),
                    path: dir.container_log(&pod.namespace, &pod.name, c),
                })
                .collect()),
        };
    }
    if let Some(component) = component_name(state, target.name, target.node)? {
        return single(dir.component_log(&component));
    }
    let pods = state
        .map(|s| s.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect::<Vec<_>>().join(", "))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "none".into());
    let components = state
        .map(|s| s.components.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join(", "))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "controlplane, ztunnel/NODE, cni/NODE".into());
    bail!(
        "no pod {} in namespace {} and no such component (pods: {pods}; components: {components}, runtime)",
        target.name,
        target.namespace
    )
}

/// A component's full name (`controlplane`, `ztunnel/node-1`) from `name` and `--node`, or
/// `None` if `name` is no component. A per-node component without a node is the only node's.
fn component_name(state: Option<&MeshState>, name: &str, node: Option<&str>) -> anyhow::Result<Option<String>> {
    let (kind, named_node) = match name.split_once('/') {
        Some((kind, node)) => (kind, Some(node)),
        None => (name, None),
    };
    if kind == "controlplane" && named_node.is_none() {
        return Ok(Some(kind.to_string()));
    }
    if kind != "ztunnel" && kind != "cni" {
        return Ok(None);
    }
    let nodes: Vec<&str> = state.map(|s| s.nodes.iter().map(String::as_str).collect()).unwrap_or_default();
    let node = match (named_node, node) {
        (Some(a), Some(b)) if a != b => bail!("{name} and --node {b} name different nodes"),
        (Some(node), _) | (None, Some(node)) => node,
        (None, None) if nodes.len() == 1 => nodes[0],
        (None, None) => {
            bail!("{kind} runs on every node; pick one with --node or {kind}/NODE (nodes: {})", nodes.join(", "))
        }
    };
    if !nodes.is_empty() && !nodes.contains(&node) {
        bail!("no node {node} (nodes: {})", nodes.join(", "));
    }
    Ok(Some(format!("{kind}/{node}")))
}

/// Prints each log once, with its header if there are several.
fn print_logs(sources: &[LogSource]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (i, source) in sources.iter().enumerate() {
        if let Some(header) = &source.header {
            writeln!(out, "{}{header}", if i > 0 { "\n" } else { "" })?;
        }
        match std::fs::File::open(&source.path) {
            Ok(mut file) => {
                std::io::copy(&mut file, &mut out)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("(no log yet at {})", source.path.display())
            }
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", source.path.display()))),
        }
    }
    out.flush()
}

/// Prints what is there, then new bytes as they come (polling), until interrupted. With several
/// sources, a header marks each switch from one to another, as `tail -f` does.
fn follow(sources: &[LogSource]) -> std::io::Result<()> {
    let mut offsets = vec![0u64; sources.len()];
    let mut last: Option<usize> = None;
    let mut buf = Vec::new();
    loop {
        for (i, source) in sources.iter().enumerate() {
            buf.clear();
            let Ok(mut file) = std::fs::File::open(&source.path) else { continue };
            let len = file.metadata()?.len();
            if len < offsets[i] {
                // Truncated or replaced: start over.
                offsets[i] = 0;
            }
            if len == offsets[i] {
                continue;
            }
            file.seek(SeekFrom::Start(offsets[i]))?;
            file.read_to_end(&mut buf)?;
            offsets[i] += buf.len() as u64;
            let mut out = std::io::stdout().lock();
            if last != Some(i)
                && let Some(header) = &source.header
            {
                writeln!(out, "{}{header}", if last.is_some() { "\n" } else { "" })?;
            }
            last = Some(i);
            out.write_all(&buf)?;
            out.flush()?;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// metrics

/// The metrics URL of `component` (`controlplane`, `ztunnel/NODE`, or `ztunnel` with one node).
pub fn metrics_url(state: &MeshState, component: &str) -> anyhow::Result<String> {
    let with_metrics: Vec<&str> =
        state.components.iter().filter(|c| c.kind != ComponentKind::Cni).map(|c| c.name.as_str()).collect();
    let listing = || with_metrics.join(", ");
    if component == "cni" || component.starts_with("cni/") {
        bail!("the CNI agent serves no metrics (components with metrics: {})", listing());
    }
    let name = match component_name(Some(state), component, None) {
        Ok(Some(name)) => name,
        Ok(None) => bail!("no component {component} (components with metrics: {})", listing()),
        Err(e) => return Err(e),
    };
    let found = state
        .component(&name)
        .ok_or_else(|| anyhow!("no component {name} (components with metrics: {})", listing()))?;
    found.metrics_url.clone().ok_or_else(|| anyhow!("{name} has no metrics endpoint yet (is it starting?)"))
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// GETs one of the components' own `http://127.0.0.1:PORT/...` endpoints (the runtime's
/// readiness checks use the same client).
pub fn http_get(url: &str, timeout: Duration) -> anyhow::Result<(u16, Vec<u8>)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = runtime.block_on(crate::local::http::get(url, timeout))?;
    Ok((status, body.into_bytes()))
}
