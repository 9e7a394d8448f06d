//! One pod's life, as kubelet and a container runtime would run it: a network namespace, the
//! CNI chain (which puts the pod on the bridge and, through `ambient-cni`, in the mesh), an
//! `/etc/hosts` with the services, the containers' commands as supervised processes in it, and
//! readiness. Stopping reverses it all. Each pod is one task; its progress goes to the board.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::board::Board;
use super::cni_runtime::{CniPod, CniRuntime};
use super::network;
use super::state::{ContainerState, PodState, ServiceState, StateDir};
use super::supervise::{self, ProcessEvent, ProcessSpec, Restart};
use crate::sys::netns::{Netns, NetnsExecutor};

/// How often readiness is checked.
const READINESS_INTERVAL: Duration = Duration::from_millis(250);
/// How often a ready pod is checked again.
const READY_INTERVAL: Duration = Duration::from_secs(2);
/// How long a readiness connection may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// Retry interval when the pod's network cannot be set up.
const SANDBOX_RETRY: Duration = Duration::from_secs(2);
/// The longest a container gets between SIGTERM and SIGKILL here.
const MAX_GRACE: Duration = Duration::from_secs(5);
/// The environment every container starts from (as an image's would give it).
const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What every pod task shares.
pub struct PodContext {
    pub dir: StateDir,
    pub board: Arc<Board>,
    /// Each node's CNI runtime (its conflist names that node's agent).
    pub cni: BTreeMap<String, Arc<CniRuntime>>,
    pub executor: NetnsExecutor,
    /// The services, for the pods' hosts files.
    pub services: watch::Receiver<Arc<Vec<ServiceState>>>,
    pub domain: String,
}

/// A running pod task.
pub struct PodHandle {
    /// The spec it was started from: a changed spec means a new pod.
    pub spec: serde_json::Value,
    pub node: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PodHandle {
    /// Stops the pod and waits until everything it created is gone.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts `pod` on `node`: records it on the board at once (so it is published, scheduled, before
/// its network is set up — the CNI agent looks it up during ADD) and sets it up in a task.
pub fn start(ctx: &Arc<PodContext>, pod: Pod, node: String, enrolled: bool) -> PodHandle {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let containers = pod.spec.iter().flat_map(|s| &s.containers).map(|c| ContainerState {
        name: c.name.clone(),
        process: None,
        restarts: 0,
        last_exit: None,
        log: ctx.dir.container_log(&namespace, &name, &c.name),
    });
    let state = PodState {
        namespace: namespace.clone(),
        name: name.clone(),
        node: node.clone(),
        ip: None,
        netns: None,
        enrolled,
        ready: false,
        phase: "Pending".into(),
        message: None,
        containers: containers.collect(),
    };
    ctx.board.update(|s| {
        s.pods.retain(|p| !(p.namespace == namespace && p.name == name));
        s.pods.push(state);
        s.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    });
    let spec = serde_json::to_value(&pod.spec).unwrap_or_default();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(ctx.clone(), pod, node.clone(), stop_rx));
    PodHandle { spec, node, stop, task }
}

/// Edits this pod's board entry.
fn update(ctx: &PodContext, namespace: &str, name: &str, edit: impl FnOnce(&mut PodState)) {
    ctx.board.update(|s| {
        if let Some(p) = s.pods.iter_mut().find(|p| p.namespace == namespace && p.name == name) {
            edit(p);
        }
    });
}

async fn run(ctx: Arc<PodContext>, pod: Pod, node: String, mut stop: watch::Receiver<bool>) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let netns_name = ctx.dir.pod_netns(&namespace, &name);
    let fail = |message: String| {
        tracing::warn!(pod = %format!("{namespace}/{name}"), "{message}");
        update(&ctx, &namespace, &name, |p| {
            p.phase = "Failed".into();
            p.message = Some(message);
        });
    };

    let plan = match Plan::from_pod(&pod) {
        Ok(plan) => plan,
        Err(message) => {
            fail(message);
            let _ = stop.wait_for(|s| *s).await;
            remove(&ctx, &namespace, &name, None, None).await;
            return;
        }
    };
    let Some(cni) = ctx.cni.get(&node).cloned() else {
        fail(format!("node {node} does not exist"));
        let _ = stop.wait_for(|s| *s).await;
        remove(&ctx, &namespace, &name, None, None).await;
        return;
    };

    // The sandbox: namespace, then the CNI chain (retried, as kubelet retries sandboxes).
    let netns = {
        let n = netns_name.clone();
        match tokio::task::spawn_blocking(move || network::add_netns(&n)).await {
            Ok(Ok(netns)) => netns,
            Ok(Err(e)) => {
                fail(e.to_string());
                let _ = stop.wait_for(|s| *s).await;
                remove(&ctx, &namespace, &name, None, None).await;
                return;
            }
            Err(e) => {
                fail(format!("creating the network namespace: {e}"));
                return;
            }
        }
    };
    update(&ctx, &namespace, &name, |p| p.netns = Some(netns_name.clone()));
    let hosts = ctx.dir.hosts_file(&namespace, &name);
    write_hosts(&ctx, &hosts, &namespace, &name, None);
    if let Err(e) =
        network::write_hosts(&hosts.with_file_name("resolv.conf"), &network::render_resolv(&namespace, &ctx.domain))
    {
        tracing::warn!("{e}");
    }
    let cni_pod = CniPod {
        namespace: namespace.clone(),
        name: name.clone(),
        uid: plan.uid.clone(),
        container_id: netns_name.clone(),
        netns: netns_name.clone(),
    };
    let ip = loop {
        tokio::select! {
            result = cni.add(&cni_pod) => match result {
                Ok(result) => break result.ip,
                Err(e) => update(&ctx, &namespace, &name, |p| p.message = Some(format!("setting up the pod network: {e}"))),
            },
            () = supervise::stopped(&mut stop) => {
                remove(&ctx, &namespace, &name, None, Some(netns_name.as_str())).await;
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SANDBOX_RETRY) => {}
            () = supervise::stopped(&mut stop) => {
                remove(&ctx, &namespace, &name, None, Some(netns_name.as_str())).await;
                return;
            }
        }
    };
    update(&ctx, &namespace, &name, |p| {
        p.ip = Some(ip);
        p.message = None;
        p.phase = "Running".into();
    });
    write_hosts(&ctx, &hosts, &namespace, &name, Some(ip));

    // The containers.
    let (containers_stop, containers_stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for container in &plan.containers {
        let spec = match container.spec(&ctx, &plan, &netns, &hosts, ip, &node) {
            Ok(spec) => spec,
            Err(message) => {
                fail(message);
                continue;
            }
        };
        let (board, ns, pod_name, container_name) =
            (ctx.board.clone(), namespace.clone(), name.clone(), container.name.clone());
        tasks.push(tokio::spawn(supervise::supervise(spec, containers_stop_rx.clone(), move |event| {
            board.update(|s| {
                let Some(p) = s.pods.iter_mut().find(|p| p.namespace == ns && p.name == pod_name) else { return };
                let Some(c) = p.containers.iter_mut().find(|c| c.name == container_name) else { return };
                match event {
                    ProcessEvent::Started(record) => c.process = Some(record),
                    ProcessEvent::Exited { code, restarting } => {
                        c.process = None;
                        c.last_exit = Some(code);
                        if restarting {
                            c.restarts += 1;
                        }
                    }
                    ProcessEvent::SpawnFailed { error, restarting } => {
                        c.process = None;
                        c.last_exit = Some(127);
                        p.message = Some(format!("container {container_name}: {error}"));
                        if restarting {
                            c.restarts += 1;
                        }
                    }
                    ProcessEvent::Stopped => c.process = None,
                }
            })
        })));
    }

    // Readiness and hosts updates until stopped.
    let mut services = ctx.services.clone();
    let mut interval = READINESS_INTERVAL;
    loop {
        tokio::select! {
            () = supervise::stopped(&mut stop) => break,
            changed = services.changed() => {
                if changed.is_ok() {
                    write_hosts(&ctx, &hosts, &namespace, &name, Some(ip));
                }
            }
            _ = tokio::time::sleep(interval) => {
                let (ready, phase) = readiness(&ctx, &plan, &netns, &namespace, &name, ip).await;
                update_if_changed(&ctx, &namespace, &name, ready, phase);
                // Fast until ready (`up` waits for it), then at an easier pace.
                interval = if ready { READY_INTERVAL } else { READINESS_INTERVAL };
            }
        }
    }
    let _ = containers_stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    if let Err(e) = cni.del(&cni_pod).await {
        tracing::warn!(pod = %format!("{namespace}/{name}"), "removing the pod network: {e}");
    }
    remove(&ctx, &namespace, &name, Some(&hosts), Some(netns_name.as_str())).await;
}

fn update_if_changed(ctx: &PodContext, namespace: &str, name: &str, ready: bool, phase: &str) {
    let same = ctx.board.read(|s| s.pod(namespace, name).is_none_or(|p| p.ready == ready && p.phase == phase));
    if !same {
        tracing::info!(pod = %format!("{namespace}/{name}"), ready, phase, "pod status");
        update(ctx, namespace, name, |p| {
            p.ready = ready;
            p.phase = phase.to_string();
        });
    }
}

/// Deletes the pod's namespace and files and its board entry.
async fn remove(ctx: &PodContext, namespace: &str, name: &str, hosts: Option<&Path>, netns: Option<&str>) {
    if let Some(netns) = netns.map(str::to_string) {
        // Whatever still runs in the sandbox (a `local exec` command) goes with it, as a
        // container runtime ends a whole sandbox; it would keep the namespace alive otherwise.
        if let Ok(ns) = network::open_netns(&netns) {
            for process in crate::sys::process::processes_in_netns(ns.inode()) {
                process.signal(nix::sys::signal::Signal::SIGKILL);
            }
        }
        match tokio::task::spawn_blocking(move || network::delete_netns(&netns)).await {
            Ok(Err(e)) => tracing::warn!("{e}"),
            Err(e) => tracing::warn!("deleting a pod namespace: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(dir) = hosts.and_then(Path::parent) {
        let _ = std::fs::remove_dir_all(dir);
    }
    ctx.board.update(|s| s.pods.retain(|p| !(p.namespace == namespace && p.name == name)));
}

fn write_hosts(ctx: &PodContext, path: &Path, namespace: &str, name: &str, ip: Option<IpAddr>) {
    let services = ctx.services.borrow().clone();
    let text = network::render_hosts(namespace, name, ip, &services, &ctx.domain);
    if let Err(e) = network::write_hosts(path, &text) {
        tracing::warn!("{e}");
    }
}

/// Whether the pod is ready (every container running, every declared TCP port answering) and
/// its phase.
async fn readiness(
    ctx: &PodContext,
    plan: &Plan,
    netns: &Netns,
    namespace: &str,
    name: &str,
    ip: IpAddr,
) -> (bool, &'static str) {
    let containers = ctx.board.read(|s| s.pod(namespace, name).map(|p| p.containers.clone()).unwrap_or_default());
    let running = containers.iter().filter(|c| c.process.is_some()).count();
    if running == 0 && !containers.is_empty() {
        let finished = containers.iter().all(|c| c.last_exit.is_some());
        let all_ok = containers.iter().all(|c| c.last_exit == Some(0));
        match plan.restart {
            Restart::Never if finished => return (false, if all_ok { "Succeeded" } else { "Failed" }),
            Restart::OnFailure if finished && all_ok => return (false, "Succeeded"),
            _ => {}
        }
    }
    if running < containers.len() {
        return (false, "Running");
    }
    for port in &plan.probe_ports {
        if !accepts(ctx, netns, *port, ip).await {
            return (false, "Running");
        }
    }
    (true, "Running")
}

/// Whether the application listens on `port` at the pod's address, as kubelet probes it. The
/// probe carries ztunnel's mark, which the pod's redirection lets through (as it lets kubelet's
/// probes through): otherwise an enrolled pod's own ztunnel would answer for the application.
async fn accepts(ctx: &PodContext, netns: &Netns, port: u16, ip: IpAddr) -> bool {
    let mark = Some(crate::ztunnel::config::DEFAULT_PACKET_MARK);
    let connect = crate::sys::socket::tcp_connect_in(&ctx.executor, Some(netns), SocketAddr::new(ip, port), mark);
    matches!(tokio::time::timeout(PROBE_TIMEOUT, connect).await, Ok(Ok(_)))
}

/// What a pod spec asks the runtime to run.
struct Plan {
    uid: String,
    namespace: String,
    name: String,
    service_account: String,
    restart: Restart,
    grace: Duration,
    containers: Vec<ContainerPlan>,
    /// TCP ports that must accept connections for the pod to be ready.
    probe_ports: Vec<u16>,
}

struct ContainerPlan {
    name: String,
    program: String,
    args: Vec<String>,
    env: Vec<EnvValue>,
    working_dir: Option<String>,
}

enum EnvValue {
    Literal(String, String),
    /// `valueFrom.fieldRef`, resolved when the container starts.
    Field(String, String),
}

/// Fields `valueFrom.fieldRef` may name here.
const SUPPORTED_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.podIP",
];

impl Plan {
    fn from_pod(pod: &Pod) -> Result<Plan, String> {
        let spec = pod.spec.as_ref().ok_or("the pod has no spec")?;
        let restart = Restart::from_policy(spec.restart_policy.as_deref()).ok_or_else(|| {
            format!(
                "spec.restartPolicy {:?} is not Always, OnFailure or Never",
                spec.restart_policy.as_deref().unwrap_or("")
            )
        })?;
        if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err("spec.initContainers are not supported by ambient local".into());
        }
        let mut containers = Vec::new();
        let mut probe_ports = Vec::new();
        for (i, c) in spec.containers.iter().enumerate() {
            containers
                .push(ContainerPlan::from_container(c).map_err(|e| format!("spec.containers[{i}] ({}): {e}", c.name))?);
            for port in c.ports.iter().flatten() {
                let tcp = port.protocol.as_deref().is_none_or(|p| p == "TCP");
                if tcp && let Ok(port) = u16::try_from(port.container_port) {
                    probe_ports.push(port);
                }
            }
            if let Some(probe) = &c.readiness_probe {
                let port = probe.tcp_socket.as_ref().map(|t| &t.port).or(probe.http_get.as_ref().map(|h| &h.port));
                if let Some(port) = port.and_then(|p| resolve_port(c, p)) {
                    probe_ports.push(port);
                }
            }
        }
        probe_ports.sort_unstable();
        probe_ports.dedup();
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let grace = spec.termination_grace_period_seconds.map_or(MAX_GRACE, |s| Duration::from_secs(s.max(0) as u64));
        Ok(Plan {
            uid: pod.metadata.uid.clone().unwrap_or_else(|| format!("local-{namespace}-{name}")),
            service_account: spec.service_account_name.clone().unwrap_or_else(|| "default".into()),
            namespace,
            name,
            restart,
            grace: grace.min(MAX_GRACE),
            containers,
            probe_ports,
        })
    }
}

fn resolve_port(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

impl ContainerPlan {
    fn from_container(c: &Container) -> Result<ContainerPlan, String> {
        // Images are not pulled: the command runs on this machine, so it must be given.
        let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
        argv.extend(c.args.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err("no command or args: ambient local runs commands of this machine, not images".into());
        }
        let program = argv.remove(0);
        let mut env = Vec::new();
        for var in c.env.iter().flatten() {
            match (&var.value, &var.value_from) {
                (_, Some(from)) => match &from.field_ref {
                    Some(field) if SUPPORTED_FIELDS.contains(&field.field_path.as_str()) => {
                        env.push(EnvValue::Field(var.name.clone(), field.field_path.clone()))
                    }
                    Some(field) => {
                        return Err(format!(
                            "env {}: fieldRef {} is not supported (supported: {})",
                            var.name,
                            field.field_path,
                            SUPPORTED_FIELDS.join(", ")
                        ));
                    }
                    None => {
                        return Err(format!("env {}: only valueFrom.fieldRef is supported by ambient local", var.name));
                    }
                },
                (value, None) => env.push(EnvValue::Literal(var.name.clone(), value.clone().unwrap_or_default())),
            }
        }
        Ok(ContainerPlan { name: c.name.clone(), program, args: argv, env, working_dir: c.working_dir.clone() })
    }

    /// The supervised process for this container in the pod's namespace.
    fn spec(
        &self,
        ctx: &PodContext,
        plan: &Plan,
        netns: &Netns,
        hosts: &Path,
        ip: IpAddr,
        node: &str,
    ) -> Result<ProcessSpec, String> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), BASE_PATH.into()),
            ("HOME".into(), "/root".into()),
            ("HOSTNAME".into(), plan.name.clone()),
        ];
        for value in &self.env {
            env.push(match value {
                EnvValue::Literal(k, v) => (k.clone(), v.clone()),
                EnvValue::Field(k, field) => {
                    let v = match field.as_str() {
                        "metadata.name" => plan.name.clone(),
                        "metadata.namespace" => plan.namespace.clone(),
                        "metadata.uid" => plan.uid.clone(),
                        "spec.nodeName" => node.to_string(),
                        "spec.serviceAccountName" => plan.service_account.clone(),
                        _ => ip.to_string(),
                    };
                    (k.clone(), v)
                }
            });
        }
        let (netns, hosts, program, args, dir) =
            (netns.clone(), hosts.to_path_buf(), self.program.clone(), self.args.clone(), self.working_dir.clone());
        let make: supervise::MakeCommand = Arc::new(move || {
            let mut command = crate::sys::netns::command_in_pod(&netns, &hosts, true, &program)?;
            command.args(&args).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
            if let Some(dir) = &dir {
                command.current_dir(dir);
            }
            Ok(command)
        });
        Ok(ProcessSpec {
            name: format!("{}/{}/{}", plan.namespace, plan.name, self.name),
            make,
            log: ctx.dir.container_log(&plan.namespace, &plan.name, &self.name),
            restart: plan.restart,
            grace: plan.grace,
        })
    }
}
