//! The runtime behind `ambient local up`: sets the mesh up, then keeps the pods, services and
//! published objects in line with the input files until it is told to stop, and takes it all
//! down again. It reports its progress to `up` through [`Progress`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LocalError;
use super::board::{self, Board};
use super::cni_runtime::CniRuntime;
use super::components::{self, Components, ComponentsConfig};
use super::network::{self, ClusterNetwork, Protocol, ServiceRule, VipAllocator};
use super::pods::{self, PodContext, PodHandle};
use super::publish::{self, Publisher};
use super::state::{MeshState, Phase, ServiceState, StateDir};
use crate::config::files::{FileLoader, FilesConfig};
use crate::config::{Snapshot, Store};
use crate::mesh::labels;
use crate::model::{Kind, Resource};
use crate::sys::netns::NetnsExecutor;
use crate::sys::process::ProcessRecord;

/// What the runtime is asked to run.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub dir: StateDir,
    pub paths: Vec<PathBuf>,
    pub nodes: u32,
    /// This binary (the components are its subcommands; it is also the CNI plugin).
    pub binary: PathBuf,
    /// How long `up` waits for every pod to be ready.
    pub ready_timeout: Duration,
}

/// What the runtime tells `up` while it starts (one JSON object per line on its stdout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    Step(String),
    Warning(String),
    Ready { pods: usize, nodes: usize },
    Failed(String),
}

pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

const DOMAIN: &str = "cluster.local";
/// A container that has restarted this often while `up` waits is crash-looping.
const CRASH_LOOP: u32 = 3;
/// The cluster name the control plane puts in workload uids (its default).
const CLUSTER_ID: &str = "Kubernetes";

/// Runs the mesh until `shutdown` resolves. Everything created is removed before returning,
/// whether starting failed or the mesh was stopped.
pub async fn run(
    config: LocalConfig,
    progress: ProgressSink,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), LocalError> {
    let dir = config.dir.clone();
    std::fs::create_dir_all(dir.root()).map_err(LocalError::io(format!("creating {}", dir.root().display())))?;
    let board = Board::new(initial_state(&config));
    let writer = tokio::spawn(board::write_state_file(board.clone(), dir.clone()));
    let mut mesh = Mesh { board: board.clone(), components: None, network: None, pods: None };
    let outcome = async {
        let started = mesh.start(&config, &progress).await?;
        // The state file says ready before `up` returns: whatever runs next reads it.
        board.update(|s| s.phase = Phase::Ready);
        dir.save(&board.snapshot())?;
        progress(Progress::Ready { pods: started.0, nodes: started.1 });
        Ok::<_, LocalError>(())
    };
    tokio::pin!(shutdown);
    let result = tokio::select! {
        result = outcome => match result {
            Ok(()) => {
                (&mut shutdown).await;
                tracing::info!("stopping the local mesh");
                Ok(())
            }
            Err(e) => {
                progress(Progress::Failed(e.to_string()));
                board.update(|s| s.phase = Phase::Failed(e.to_string()));
                Err(e)
            }
        },
        () = &mut shutdown => {
            let e = LocalError::Failed("stopped while starting".into());
            progress(Progress::Failed(e.to_string()));
            Err(e)
        }
    };
    board.update(|s| {
        if s.phase == Phase::Ready {
            s.phase = Phase::Stopping;
        }
    });
    mesh.stop().await;
    board.update(|s| s.runtime = None);
    // Let the writer record the last state before it goes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    writer.abort();
    let _ = dir.save(&board.snapshot());
    result
}

fn initial_state(config: &LocalConfig) -> MeshState {
    let dir = &config.dir;
    MeshState {
        id: dir.mesh_id(),
        state_dir: dir.root().to_path_buf(),
        phase: Phase::Starting,
        runtime: ProcessRecord::of(std::process::id()).ok(),
        paths: config.paths.clone(),
        nodes: node_names(config.nodes),
        netns_prefix: dir.netns_prefix(),
        cluster_netns: dir.cluster_netns(),
        pod_cidr: network::DEFAULT_POD_CIDR.into(),
        service_cidr: network::DEFAULT_SERVICE_CIDR.into(),
        components: Vec::new(),
        pods: Vec::new(),
        services: Vec::new(),
        problems: Vec::new(),
    }
}

/// `node-1` .. `node-N`.
pub fn node_names(nodes: u32) -> Vec<String> {
    (1..=nodes.max(1)).map(|i| format!("node-{i}")).collect()
}

/// What is running, for [`Mesh::stop`].
struct Mesh {
    board: Arc<Board>,
    components: Option<Components>,
    network: Option<ClusterNetwork>,
    pods: Option<(JoinHandle<()>, watch::Sender<bool>)>,
}

impl Mesh {
    /// Sets everything up; returns (pods, nodes) once every pod is ready.
    async fn start(&mut self, config: &LocalConfig, progress: &ProgressSink) -> Result<(usize, usize), LocalError> {
        let dir = &config.dir;
        let nodes = node_names(config.nodes);
        let step = |message: String| progress(Progress::Step(message));

        step(format!("reading {}", display_paths(&config.paths)));
        let loader = FileLoader::new(FilesConfig::new(config.paths.clone()))
            .map_err(|e| LocalError::Failed(format!("reading the input: {e}")))?;
        let store = Store::new();
        let files = tokio::spawn(crate::config::files::run(loader, store.clone()));
        store.synced().await;
        let problems = problems(&store);
        for problem in &problems {
            progress(Progress::Warning(problem.clone()));
        }
        self.board.update(|s| s.problems = problems);

        step("creating the cluster network".into());
        let pod_cidr: Ipv4Net = network::DEFAULT_POD_CIDR.parse().expect("valid default");
        let service_cidr: Ipv4Net = network::DEFAULT_SERVICE_CIDR.parse().expect("valid default");
        let net = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || ClusterNetwork::create(&dir, pod_cidr, service_cidr))
                .await
                .map_err(|e| LocalError::Failed(format!("creating the cluster network: {e}")))??
        };
        let cluster_netns = net.netns.clone();
        let gateway = net.gateway;
        self.network = Some(net);

        let components_config = ComponentsConfig {
            dir: dir.clone(),
            nodes: nodes.clone(),
            binary: config.binary.clone(),
            netns_prefix: dir.netns_prefix(),
        };
        // The components read the published objects: start with the folder in place.
        let mut publisher = Publisher::new(dir.cluster_dir())?;
        publisher.publish(&[])?;
        self.components = Some(components::start(&components_config, &self.board, &|m| step(m)).await?);

        let mut cni = BTreeMap::new();
        for node in &nodes {
            let runtime = CniRuntime::new(dir, node, cluster_netns.clone(), pod_cidr, gateway, &config.binary)?;
            cni.insert(node.clone(), Arc::new(runtime));
        }
        let executor = NetnsExecutor::start("local-probes").map_err(LocalError::io("starting the probe thread"))?;
        let (services_tx, services_rx) = watch::channel(Arc::new(Vec::new()));
        let ctx = Arc::new(PodContext {
            dir: dir.clone(),
            board: self.board.clone(),
            cni,
            executor,
            services: services_rx,
            domain: DOMAIN.into(),
        });
        let reconciler = Reconciler {
            ctx,
            store: store.clone(),
            nodes: nodes.clone(),
            pods: BTreeMap::new(),
            stopping: BTreeMap::new(),
            vips: VipAllocator::new(service_cidr),
            services: BTreeSet::new(),
            services_tx,
            rules: None,
            network: self.network.take().expect("set above"),
            publisher,
            problems: Vec::new(),
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let board = self.board.clone();
        let task = tokio::spawn(async move {
            let _files = AbortOnDrop(files);
            reconciler.run(board, stop_rx).await;
        });
        self.pods = Some((task, stop_tx));

        // Wait for every pod the input names to be ready.
        let expected = store.snapshot().iter().filter(|r| r.kind() == Kind::Pod).count();
        step(format!("starting {expected} pods on {} nodes", nodes.len()));
        let deadline = Instant::now() + config.ready_timeout;
        let mut changes = self.board.subscribe();
        loop {
            let (total, ready, failed) = self.board.read(|s| {
                let ready = s.pods.iter().filter(|p| p.ready || p.phase == "Succeeded").count();
                // Failed, or crash-looping: waiting longer would not help.
                let failed: Vec<String> = s
                    .pods
                    .iter()
                    .filter(|p| {
                        p.phase == "Failed" || (!p.ready && p.containers.iter().any(|c| c.restarts >= CRASH_LOOP))
                    })
                    .map(|p| {
                        let mut line =
                            format!("{}/{}: {}", p.namespace, p.name, p.message.as_deref().unwrap_or("keeps exiting"));
                        for c in &p.containers {
                            let tail = components::tail(&c.log, 3);
                            if !tail.is_empty() {
                                line.push_str(&format!("\n    {} log: {}", c.name, tail.replace('\n', "\n      ")));
                            }
                        }
                        line
                    })
                    .collect();
                (s.pods.len(), ready, failed)
            });
            if !failed.is_empty() {
                return Err(LocalError::Failed(format!("pods failed:\n  {}", failed.join("\n  "))));
            }
            if total >= expected && ready == total && self.converged().await {
                return Ok((total, nodes.len()));
            }
            if Instant::now() >= deadline {
                return Err(LocalError::Failed(not_ready_report(&self.board.snapshot(), config.ready_timeout)));
            }
            step(format!("pods ready: {ready}/{}", total.max(expected)));
            let _ = tokio::time::timeout(Duration::from_millis(500), changes.changed()).await;
        }
    }

    /// Whether every ztunnel knows every ready pod as a healthy workload: until then a client
    /// could resolve a service with no endpoint yet, so `up` is not done.
    async fn converged(&self) -> bool {
        let (pods, ztunnels, services) = self.board.read(|s| {
            let pods: Vec<String> = s
                .pods
                .iter()
                .filter(|p| p.ready)
                .map(|p| format!("{}//Pod/{}/{}", CLUSTER_ID, p.namespace, p.name))
                .collect();
            let ztunnels: Vec<String> = s
                .components
                .iter()
                .filter(|c| c.kind == super::state::ComponentKind::Ztunnel)
                .filter_map(|c| c.admin_url.clone())
                .collect();
            let services: Vec<(String, Vec<String>)> = s
                .services
                .iter()
                .map(|svc| {
                    let hostname = format!("{}.{}.svc.{DOMAIN}", svc.name, svc.namespace);
                    let uids =
                        svc.endpoints.iter().map(|p| format!("{CLUSTER_ID}//Pod/{}/{p}", svc.namespace)).collect();
                    (hostname, uids)
                })
                .collect();
            (pods, ztunnels, services)
        });
        for url in ztunnels {
            let Ok((200, body)) = super::http::get(&url, Duration::from_secs(2)).await else { return false };
            let Ok(dump) = serde_json::from_str::<serde_json::Value>(&body) else { return false };
            let healthy: BTreeSet<&str> = dump["state"]["workloads"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|w| w["healthy"].as_bool() == Some(true))
                .filter_map(|w| w["uid"].as_str())
                .collect();
            if !pods.iter().all(|uid| healthy.contains(uid.as_str())) {
                return false;
            }
            // And every service has every ready backend as a healthy endpoint.
            let known = dump["state"]["services"].as_array().cloned().unwrap_or_default();
            for (hostname, uids) in &services {
                let entry = known.iter().find(|s| s["service"]["hostname"].as_str() == Some(hostname.as_str()));
                let Some(entry) = entry else { return false };
                let endpoints: BTreeSet<&str> =
                    entry["endpoints"].as_array().into_iter().flatten().filter_map(|e| e.as_str()).collect();
                if !uids.iter().all(|uid| endpoints.contains(uid.as_str())) {
                    return false;
                }
            }
        }
        true
    }

    /// Stops the pods (while the agents still answer their CNI DEL), then the components, then
    /// removes the cluster network.
    async fn stop(&mut self) {
        if let Some((task, stop)) = self.pods.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
        if let Some(components) = self.components.take() {
            components.stop().await;
        }
        // Once the reconciler runs it owns the network and deletes it on its way out; this is
        // for a start that failed before handing it over.
        if let Some(net) = self.network.take() {
            match tokio::task::spawn_blocking(move || net.delete()).await {
                Ok(Err(e)) => tracing::warn!("{e}"),
                Err(e) => tracing::warn!("deleting the cluster network: {e}"),
                Ok(Ok(())) => {}
            }
        }
    }
}

struct AbortOnDrop(JoinHandle<Result<(), crate::config::ConfigError>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn problems(store: &Store) -> Vec<String> {
    store.diagnostics().iter().map(ToString::to_string).collect()
}

/// Which pods are not ready and why, with the end of their logs.
fn not_ready_report(state: &MeshState, timeout: Duration) -> String {
    let mut report = format!("pods not ready after {}s:", timeout.as_secs());
    for pod in state.pods.iter().filter(|p| !p.ready && p.phase != "Succeeded") {
        report.push_str(&format!("\n  {}/{} on {} ({})", pod.namespace, pod.name, pod.node, pod.phase));
        if let Some(message) = &pod.message {
            report.push_str(&format!(": {message}"));
        }
        for c in &pod.containers {
            let tail = components::tail(&c.log, 3);
            if !tail.is_empty() {
                report.push_str(&format!("\n    {} log: {}", c.name, tail.replace('\n', "\n      ")));
            }
        }
    }
    report
}

type PodKey = (String, String);

/// Keeps pods, services and the published objects in line with the input.
struct Reconciler {
    ctx: Arc<PodContext>,
    store: Store,
    nodes: Vec<String>,
    pods: BTreeMap<PodKey, PodHandle>,
    /// Pods being stopped: a pod of the same name starts only once its namespace is gone.
    stopping: BTreeMap<PodKey, JoinHandle<()>>,
    vips: VipAllocator,
    /// The services that hold a VIP, to release those that are gone.
    services: BTreeSet<PodKey>,
    services_tx: watch::Sender<Arc<Vec<ServiceState>>>,
    rules: Option<Vec<ServiceRule>>,
    network: ClusterNetwork,
    publisher: Publisher,
    problems: Vec<String>,
}

impl Reconciler {
    async fn run(mut self, board: Arc<Board>, mut stop: watch::Receiver<bool>) {
        let mut subscription = self.store.subscribe();
        let mut board_changes = board.subscribe();
        loop {
            self.reconcile();
            tokio::select! {
                () = super::supervise::stopped(&mut stop) => break,
                update = subscription.next() => if update.is_none() { break },
                _ = board_changes.changed() => {}
            }
            // Coalesce bursts (a file save, a pod turning ready).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stops: Vec<_> = std::mem::take(&mut self.pods).into_values().map(|h| tokio::spawn(h.stop())).collect();
        for task in stops.into_iter().chain(std::mem::take(&mut self.stopping).into_values()) {
            let _ = task.await;
        }
        let name = self.network.name.clone();
        if let Err(e) = network::delete_netns(&name) {
            tracing::warn!("{e}");
        }
    }

    fn reconcile(&mut self) {
        let snapshot = self.store.snapshot();
        let problems = problems(&self.store);
        if problems != self.problems {
            for p in problems.iter().filter(|p| !self.problems.contains(p)) {
                tracing::warn!("{p}");
            }
            self.problems = problems.clone();
            self.ctx.board.update(|s| s.problems = problems);
        }
        self.stopping.retain(|_, task| !task.is_finished());
        self.reconcile_pods(&snapshot);
        let vips = self.reconcile_services(&snapshot);
        self.publish(&snapshot, &vips);
    }

    fn reconcile_pods(&mut self, snapshot: &Snapshot) {
        let namespaces_enrolled: BTreeSet<String> = snapshot
            .iter()
            .filter_map(|r| match r.as_ref() {
                Resource::Namespace(ns) if labels::labels_enrol(&labels_of(&ns.metadata.labels)) => {
                    ns.metadata.name.clone()
                }
                _ => None,
            })
            .collect();
        let mut wanted: BTreeMap<PodKey, &Pod> = BTreeMap::new();
        for resource in snapshot.iter() {
            if let Resource::Pod(pod) = resource.as_ref() {
                let key = (
                    pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
                    pod.metadata.name.clone().unwrap_or_default(),
                );
                wanted.insert(key, pod);
            }
        }
        // Gone, or changed beyond labels: stop.
        let stale: Vec<PodKey> = self
            .pods
            .iter()
            .filter(|(key, handle)| {
                wanted.get(*key).is_none_or(|pod| serde_json::to_value(&pod.spec).unwrap_or_default() != handle.spec)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(handle) = self.pods.remove(&key) {
                tracing::info!(pod = %format!("{}/{}", key.0, key.1), "stopping pod");
                self.stopping.insert(key, tokio::spawn(handle.stop()));
            }
        }
        for (key, pod) in wanted {
            let enrolled =
                labels::pod_wants_enrolment(&labels_of(&pod.metadata.labels), namespaces_enrolled.contains(&key.0));
            if self.pods.contains_key(&key) {
                let current = self.ctx.board.read(|s| s.pod(&key.0, &key.1).map(|p| p.enrolled));
                if current.is_some_and(|e| e != enrolled) {
                    self.ctx.board.update(|s| {
                        if let Some(p) = s.pods.iter_mut().find(|p| p.namespace == key.0 && p.name == key.1) {
                            p.enrolled = enrolled;
                        }
                    });
                }
                continue;
            }
            if self.stopping.contains_key(&key) {
                continue;
            }
            let node = self.schedule(pod);
            tracing::info!(pod = %format!("{}/{}", key.0, key.1), %node, "starting pod");
            let handle = pods::start(&self.ctx, pod.clone(), node, enrolled);
            self.pods.insert(key, handle);
        }
    }

    /// `spec.nodeName` if set, else the node with the fewest pods.
    fn schedule(&self, pod: &Pod) -> String {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) {
            return node;
        }
        let mut load: BTreeMap<&str, usize> = self.nodes.iter().map(|n| (n.as_str(), 0)).collect();
        for handle in self.pods.values() {
            if let Some(count) = load.get_mut(handle.node.as_str()) {
                *count += 1;
            }
        }
        let least = self.nodes.iter().min_by_key(|n| load.get(n.as_str()).copied().unwrap_or(0));
        least.cloned().unwrap_or_else(|| "node-1".into())
    }

    /// VIPs, DNAT rules and the services list for hosts files. Returns each service's VIP.
    fn reconcile_services(&mut self, snapshot: &Snapshot) -> BTreeMap<PodKey, Ipv4Addr> {
        let board = self.ctx.board.snapshot();
        let mut vips = BTreeMap::new();
        let mut states = Vec::new();
        let mut rules = Vec::new();
        let mut present = BTreeSet::new();
        for resource in snapshot.iter() {
            let Resource::Service(service) = resource.as_ref() else { continue };
            let Some(spec) = &service.spec else { continue };
            let key = (
                service.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
                service.metadata.name.clone().unwrap_or_default(),
            );
            present.insert(key.clone());
            if spec.cluster_ip.as_deref() == Some("None") {
                continue; // headless
            }
            if let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
                self.vips.assign(&key, ip);
            }
            let Some(vip) = self.vips.allocate(&key) else {
                tracing::warn!(service = %format!("{}/{}", key.0, key.1), "no free service address");
                continue;
            };
            vips.insert(key.clone(), vip);
            let selector = labels_of(&spec.selector);
            let mut ports = Vec::new();
            let mut backends = BTreeSet::new();
            for port in spec.ports.iter().flatten() {
                let Ok(number) = u16::try_from(port.port) else { continue };
                ports.push(number);
                let protocol = match port.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => continue,
                    _ => Protocol::Tcp,
                };
                let mut endpoints = Vec::new();
                if !selector.is_empty() {
                    for pod in board.pods.iter().filter(|p| p.namespace == key.0 && p.ready) {
                        let Some(std::net::IpAddr::V4(ip)) = pod.ip else { continue };
                        let Some(Resource::Pod(object)) = snapshot
                            .get(&crate::model::ObjectRef::new(Kind::Pod, &pod.namespace, &pod.name))
                            .map(|r| r.as_ref())
                        else {
                            continue;
                        };
                        if !labels::selector_matches(&selector, &labels_of(&object.metadata.labels)) {
                            continue;
                        }
                        if let Some(target) = target_port(port.target_port.as_ref(), number, object) {
                            endpoints.push(std::net::SocketAddrV4::new(ip, target));
                            backends.insert(pod.name.clone());
                        }
                    }
                }
                rules.push(ServiceRule { cluster_ip: vip, port: number, protocol, endpoints });
            }
            states.push(ServiceState {
                namespace: key.0.clone(),
                name: key.1.clone(),
                cluster_ip: vip.into(),
                ports,
                endpoints: backends.into_iter().collect(),
            });
        }
        for key in self.services.difference(&present) {
            self.vips.release(key);
        }
        self.services = present;
        rules.sort_by_key(|r| (r.cluster_ip, r.port));
        if self.rules.as_ref() != Some(&rules) {
            match self.network.sync_services(&rules) {
                Ok(()) => self.rules = Some(rules),
                Err(e) => tracing::warn!("service rules: {e}"),
            }
        }
        states.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        if **self.services_tx.borrow() != states {
            self.ctx.board.update(|s| s.services = states.clone());
            self.services_tx.send_replace(Arc::new(states));
        }
        vips
    }

    fn publish(&mut self, snapshot: &Snapshot, vips: &BTreeMap<PodKey, Ipv4Addr>) {
        let board = self.ctx.board.snapshot();
        let objects: Vec<serde_json::Value> = snapshot
            .iter()
            .filter_map(|resource| {
                let meta = resource.meta();
                let key =
                    (meta.namespace.clone().unwrap_or_else(|| "default".into()), meta.name.clone().unwrap_or_default());
                publish::published(resource, || board.pod(&key.0, &key.1).cloned(), || vips.get(&key).copied())
            })
            .collect();
        if let Err(e) = self.publisher.publish(&objects) {
            tracing::warn!("{e}");
        }
    }
}

fn labels_of(labels: &Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
    labels.clone().unwrap_or_default()
}

/// The pod port a service port sends to: a number, a named container port, or the same port.
fn target_port(target: Option<&IntOrString>, port: u16, pod: &Pod) -> Option<u16> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}
