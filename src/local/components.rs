//! The mesh's components as child processes of the runtime, exactly as a cluster runs them: one
//! control plane (files backend on the published objects), and per node a CNI agent and a
//! ztunnel. They listen on 127.0.0.1 only, on ports picked free at start, so several local meshes
//! never collide. Each is restarted when it dies, as a Deployment or DaemonSet would.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LocalError;
use super::board::Board;
use super::state::{ComponentKind, ComponentState, StateDir};
use super::supervise::{self, ProcessEvent, ProcessSpec, Restart};

/// How long a component has to become ready at start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The service account ztunnels authenticate as (trusted for their node's pods by default).
const ZTUNNEL_ACCOUNT: &str = "istio-system/ztunnel";

/// Component ports are picked here, below Linux's ephemeral range (32768 and up): a port taken
/// from the ephemeral range could be handed to some outgoing connection before the component
/// binds it, and several meshes starting at once would race for the same few ports.
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;

/// A port of [`PORT_RANGE`] that is free on 127.0.0.1 now, picked at random.
fn free_port() -> Result<u16, LocalError> {
    let span = PORT_RANGE.end - PORT_RANGE.start;
    for _ in 0..200 {
        let mut seed = [0u8; 2];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| LocalError::Failed("no randomness to pick a port".into()))?;
        let port = PORT_RANGE.start + u16::from_le_bytes(seed) % span;
        if std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(LocalError::Failed(format!("no free port on 127.0.0.1 in {PORT_RANGE:?}")))
}

/// The running components.
pub struct Components {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Components {
    /// Stops every component (SIGTERM, then SIGKILL) and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What starts the components.
pub struct ComponentsConfig {
    pub dir: StateDir,
    pub nodes: Vec<String>,
    /// This very binary: the components are its subcommands.
    pub binary: PathBuf,
    pub netns_prefix: String,
}

/// Starts the control plane, then each node's CNI agent and ztunnel, waiting for each to be
/// ready. `progress` is told each step.
pub async fn start(
    config: &ComponentsConfig,
    board: &Arc<Board>,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Components, LocalError> {
    let dir = &config.dir;
    let (stop, stop_rx) = watch::channel(false);
    let mut components = Components { stop, tasks: Vec::new() };
    let started = async {
        write_tokens(dir, &config.nodes)?;
        let xds = free_port()?;
        let debug = free_port()?;

        progress("starting the control plane".into());
        let controlplane = ComponentState {
            name: "controlplane".into(),
            kind: ComponentKind::Controlplane,
            node: None,
            process: None,
            restarts: 0,
            log: dir.component_log("controlplane"),
            metrics_url: Some(format!("http://127.0.0.1:{debug}/metrics")),
            ready_url: Some(format!("http://127.0.0.1:{debug}/ready")),
            admin_url: Some(format!("http://127.0.0.1:{debug}/debug")),
        };
        let argv = args(&[
            "controlplane",
            "--config-source",
            "files",
            "--config",
            &path(&dir.cluster_dir()),
            "--state-dir",
            &path(&dir.controlplane_dir()),
            "--tokens-file",
            &path(&dir.tokens_file()),
            "--xds-address",
            &format!("127.0.0.1:{xds}"),
            "--debug-address",
            &format!("127.0.0.1:{debug}"),
        ]);
        components.tasks.push(launch(config, board, &stop_rx, controlplane.clone(), argv));
        wait_ready(board, &controlplane, || dir.root_cert().exists()).await?;

        for node in &config.nodes {
            progress(format!("starting {node}'s CNI agent"));
            let name = format!("cni/{node}");
            let agent = ComponentState {
                name: name.clone(),
                kind: ComponentKind::Cni,
                node: Some(node.clone()),
                process: None,
                restarts: 0,
                log: dir.component_log(&name),
                metrics_url: None,
                ready_url: None,
                admin_url: None,
            };
            std::fs::create_dir_all(dir.node_dir(node)).map_err(LocalError::io("creating the node folder"))?;
            let argv = args(&[
                "cni",
                "--node-name",
                node,
                "--config-source",
                "files",
                "--config",
                &path(&dir.cluster_dir()),
                "--zds-socket",
                &path(&dir.zds_socket(node)),
                "--plugin-socket",
                &path(&dir.plugin_socket(node)),
                "--no-install-plugin",
                "--no-probe-snat",
                "--netns-prefix",
                &config.netns_prefix,
            ]);
            components.tasks.push(launch(config, board, &stop_rx, agent.clone(), argv));
            let socket = dir.plugin_socket(node);
            wait_ready(board, &agent, || socket.exists()).await?;
        }

        for node in &config.nodes {
            progress(format!("starting {node}'s ztunnel"));
            let name = format!("ztunnel/{node}");
            let (admin, metrics, readiness) = (free_port()?, free_port()?, free_port()?);
            let ztunnel = ComponentState {
                name: name.clone(),
                kind: ComponentKind::Ztunnel,
                node: Some(node.clone()),
                process: None,
                restarts: 0,
                log: dir.component_log(&name),
                metrics_url: Some(format!("http://127.0.0.1:{metrics}/metrics")),
                ready_url: Some(format!("http://127.0.0.1:{readiness}/healthz/ready")),
                admin_url: Some(format!("http://127.0.0.1:{admin}/config_dump")),
            };
            let argv = args(&[
                "ztunnel",
                "--xds-address",
                &format!("https://127.0.0.1:{xds}"),
                "--server-name",
                "localhost",
                "--node-name",
                node,
                "--token-file",
                &path(&dir.node_token(node)),
                "--root-cert",
                &path(&dir.root_cert()),
                "--zds-socket",
                &path(&dir.zds_socket(node)),
                "--admin-address",
                &format!("127.0.0.1:{admin}"),
                "--metrics-address",
                &format!("127.0.0.1:{metrics}"),
                "--readiness-address",
                &format!("127.0.0.1:{readiness}"),
                // Every node's ztunnel shares this one machine: one data thread each.
                "--worker-threads",
                "1",
            ]);
            components.tasks.push(launch(config, board, &stop_rx, ztunnel, argv));
        }
        for node in &config.nodes {
            let ztunnel = board.read(|s| s.component(&format!("ztunnel/{node}")).cloned());
            if let Some(ztunnel) = ztunnel {
                wait_ready(board, &ztunnel, || true).await?;
            }
        }
        Ok(())
    };
    match started.await {
        Ok(()) => Ok(components),
        Err(e) => {
            components.stop().await;
            Err(e)
        }
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// One random token per node's ztunnel, in the control plane's tokens file (`0600`).
fn write_tokens(dir: &StateDir, nodes: &[String]) -> Result<(), LocalError> {
    let mut lines = String::new();
    for node in nodes {
        let mut bytes = [0u8; 24];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| LocalError::Failed("no randomness for node tokens".into()))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::create_dir_all(dir.node_dir(node)).map_err(LocalError::io("creating the node folder"))?;
        write_private(&dir.node_token(node), &token)?;
        lines.push_str(&format!("{token} {ZTUNNEL_ACCOUNT} node={node}\n"));
    }
    write_private(&dir.tokens_file(), &lines)
}

fn write_private(path: &Path, text: &str) -> Result<(), LocalError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(LocalError::io(format!("writing {}", path.display())))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(LocalError::io(format!("writing {}", path.display())))
}

/// Records the component on the board and supervises its process (restarted whenever it ends).
fn launch(
    config: &ComponentsConfig,
    board: &Arc<Board>,
    stop: &watch::Receiver<bool>,
    component: ComponentState,
    args: Vec<String>,
) -> JoinHandle<()> {
    let name = component.name.clone();
    board.update(|s| {
        s.components.retain(|c| c.name != name);
        s.components.push(component.clone());
    });
    let binary = config.binary.clone();
    let make: supervise::MakeCommand = Arc::new(move || {
        let mut command = std::process::Command::new(&binary);
        command.args(&args);
        // A component must not outlive the runtime that supervises it (even if it is killed).
        crate::sys::process::die_with_parent(&mut command);
        Ok(command)
    });
    let spec = ProcessSpec {
        name: name.clone(),
        make,
        log: component.log.clone(),
        restart: Restart::Always,
        grace: Duration::from_secs(5),
    };
    let board = board.clone();
    tokio::spawn(supervise::supervise(spec, stop.clone(), move |event| {
        board.update(|s| {
            let Some(c) = s.components.iter_mut().find(|c| c.name == name) else { return };
            match event {
                ProcessEvent::Started(record) => c.process = Some(record),
                ProcessEvent::Exited { .. } | ProcessEvent::SpawnFailed { .. } => {
                    c.process = None;
                    c.restarts += 1;
                }
                ProcessEvent::Stopped => c.process = None,
            }
        })
    }))
}

/// Waits until the component's process runs, `extra` holds and its ready URL answers 200; fails
/// with the end of its log if that takes longer than [`READY_TIMEOUT`].
async fn wait_ready(
    board: &Arc<Board>,
    component: &ComponentState,
    extra: impl Fn() -> bool,
) -> Result<(), LocalError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let running = board.read(|s| s.component(&component.name).and_then(|c| c.process).is_some());
        let ready = running
            && extra()
            && match &component.ready_url {
                Some(url) => super::http::is_ready(url).await,
                None => true,
            };
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LocalError::Failed(format!(
                "{} did not become ready within {}s; the end of its log ({}):\n{}",
                component.name,
                READY_TIMEOUT.as_secs(),
                component.log.display(),
                tail(&component.log, 15)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
