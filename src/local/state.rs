//! The local mesh's state file and folder layout: what `up` created, written by the runtime on
//! every change, and read by `status`, `exec`, `logs`, `metrics` and `down` (which also works
//! from it after a crash or a killed runtime).

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LocalError;
use crate::sys::process::ProcessRecord;

/// The default state folder (`--state-dir`, or `AMBIENT_LOCAL_STATE_DIR`).
pub const DEFAULT_STATE_DIR: &str = "/var/run/ambient-local";

/// Where one local mesh keeps everything. All paths hang off the one folder, so two meshes with
/// two folders never share a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The folder, made absolute (it need not exist yet) so that the mesh id does not depend on
    /// the caller's working directory.
    pub fn new(root: &Path) -> io::Result<Self> {
        let root = std::path::absolute(root)?;
        Ok(StateDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `state.json`: the [`MeshState`].
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// What the runtime publishes for the components (the local "API server"): one JSON
    /// document per object, pods with their status.
    pub fn cluster_dir(&self) -> PathBuf {
        self.root.join("cluster")
    }
    /// The control plane's `--state-dir` (its generated CA root lives in `ca/`).
    pub fn controlplane_dir(&self) -> PathBuf {
        self.root.join("controlplane")
    }
    /// The mesh root certificate, once the control plane has generated it.
    pub fn root_cert(&self) -> PathBuf {
        self.controlplane_dir().join("ca").join(crate::controlplane::ca::ROOT_CERT_FILE)
    }
    /// The control plane's tokens file (one token per node's ztunnel).
    pub fn tokens_file(&self) -> PathBuf {
        self.root.join("tokens")
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }
    /// The ZDS socket between a node's CNI agent and ztunnel.
    pub fn zds_socket(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("ztunnel.sock")
    }
    /// The CNI agent's plugin socket.
    pub fn plugin_socket(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("cni.sock")
    }
    /// The node's ztunnel token file.
    pub fn node_token(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("token")
    }
    /// The node's CNI network configuration list.
    pub fn node_conflist(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("conflist.json")
    }
    /// Plugin binaries of our own (`ambient-cni`), first in CNI_PATH.
    pub fn cni_bin_dir(&self) -> PathBuf {
        self.root.join("cni").join("bin")
    }
    /// host-local's `dataDir` (address allocations).
    pub fn ipam_dir(&self) -> PathBuf {
        self.root.join("cni").join("ipam")
    }
    /// The `/etc/hosts` bind-mounted into a pod's processes.
    pub fn hosts_file(&self, namespace: &str, pod: &str) -> PathBuf {
        self.root.join("pods").join(namespace).join(pod).join("hosts")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// The runtime's own log.
    pub fn runtime_log(&self) -> PathBuf {
        self.logs_dir().join("runtime.log")
    }
    /// A component's log: `controlplane`, `ztunnel/node-1` -> `logs/ztunnel-node-1.log`.
    pub fn component_log(&self, component: &str) -> PathBuf {
        self.logs_dir().join(format!("{}.log", component.replace('/', "-")))
    }
    /// A container's log (stdout and stderr, appended across restarts).
    pub fn container_log(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        self.logs_dir().join("pods").join(namespace).join(pod).join(format!("{container}.log"))
    }

    /// The mesh id: a short stable hash of the folder's absolute path. Every network namespace
    /// the mesh creates is named `amb-<id>-...`, so meshes in different folders never collide
    /// and `down` finds its namespaces even without a state file.
    pub fn mesh_id(&self) -> String {
        // FNV-1a: stable across Rust versions, unlike std's hasher.
        let mut hash: u32 = 0x811c_9dc5;
        for byte in self.root.as_os_str().as_encoded_bytes() {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        format!("{hash:08x}")
    }
    /// The prefix of every network namespace name of this mesh.
    pub fn netns_prefix(&self) -> String {
        format!("amb-{}-", self.mesh_id())
    }
    /// The "cluster" namespace: the pod bridge, service rules; no route leaves it.
    pub fn cluster_netns(&self) -> String {
        format!("{}cluster", self.netns_prefix())
    }
    /// A pod's network namespace name: `amb-<id>-<namespace>.<pod>` (a namespace name has no
    /// dot, so no two pods share one).
    pub fn pod_netns(&self, namespace: &str, pod: &str) -> String {
        format!("{}{namespace}.{pod}", self.netns_prefix())
    }

    /// The state file, if a mesh was started here.
    pub fn load(&self) -> Result<Option<MeshState>, LocalError> {
        let path = self.state_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LocalError::Io { what: format!("reading {}", path.display()), source: e }),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| LocalError::StateFile { path, message: e.to_string() })
    }

    /// Writes the state file atomically (a reader never sees half of it).
    pub fn save(&self, state: &MeshState) -> Result<(), LocalError> {
        let path = self.state_file();
        // A name per write: the runtime and `down` may save at the same moment, and a shared
        // temporary file could be renamed into place half-written.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.root.join(format!(".state.json.{}.{n}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(state).expect("the state always serializes");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| LocalError::Io { what: format!("writing {}", path.display()), source: e })
    }
}

/// Where the mesh is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase", content = "message")]
pub enum Phase {
    Starting,
    Ready,
    /// `up` failed; the message says why (cleanup follows).
    Failed(String),
    Stopping,
}

/// Everything one local mesh created and runs: enough for `down` to remove all of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshState {
    pub id: String,
    pub state_dir: PathBuf,
    pub phase: Phase,
    /// The runtime process (`ambient local up` leaves it running in the background).
    pub runtime: Option<ProcessRecord>,
    /// The YAML files and folders the mesh was started from.
    pub paths: Vec<PathBuf>,
    pub nodes: Vec<String>,
    /// Every network namespace name starts with this.
    pub netns_prefix: String,
    pub cluster_netns: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub components: Vec<ComponentState>,
    pub pods: Vec<PodState>,
    pub services: Vec<ServiceState>,
    /// Current problems in the input files (`file:line: message`).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    Controlplane,
    Ztunnel,
    Cni,
}

/// One component process (`controlplane`, `ztunnel/node-1`, `cni/node-1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentState {
    pub name: String,
    pub kind: ComponentKind,
    pub node: Option<String>,
    /// The running process; `None` while it is being restarted.
    pub process: Option<ProcessRecord>,
    pub restarts: u32,
    pub log: PathBuf,
    /// `http://127.0.0.1:PORT/metrics`, for components that serve Prometheus metrics.
    pub metrics_url: Option<String>,
    /// An HTTP endpoint answering 200 when the component is ready.
    pub ready_url: Option<String>,
    /// Admin/debug endpoint (ztunnel's `/config_dump`, the control plane's `/debug`).
    pub admin_url: Option<String>,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ip: Option<IpAddr>,
    /// Its network namespace name (under `/var/run/netns`), once created.
    pub netns: Option<String>,
    /// In the ambient mesh (namespace or pod labelled `istio.io/dataplane-mode=ambient`).
    pub enrolled: bool,
    pub ready: bool,
    /// Kubernetes' pod phase: Pending, Running, Succeeded, Failed.
    pub phase: String,
    /// Why the pod is not running, if it is not.
    pub message: Option<String>,
    pub containers: Vec<ContainerState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    pub name: String,
    pub process: Option<ProcessRecord>,
    pub restarts: u32,
    pub last_exit: Option<i32>,
    pub log: PathBuf,
}

/// One service's virtual IP (DNAT rules in the cluster namespace, names in pods' hosts files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: IpAddr,
    pub ports: Vec<u16>,
    /// The ready pods behind it (`<name>`, in the service's namespace).
    #[serde(default)]
    pub endpoints: Vec<String>,
}

impl MeshState {
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodState> {
        self.pods.iter().find(|p| p.namespace == namespace && p.name == name)
    }
    pub fn component(&self, name: &str) -> Option<&ComponentState> {
        self.components.iter().find(|c| c.name == name)
    }
}
