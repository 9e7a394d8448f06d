//! Running a node's CNI configuration list exactly as a container runtime (containerd's libcni)
//! does: each plugin exec'd from `CNI_PATH` with the `CNI_*` environment and its network
//! configuration on stdin, each one's result handed to the next as `prevResult`, DEL in reverse.
//!
//! The conflist is Debian's `bridge` + `host-local` with our own `ambient-cni` chained last, so a
//! local pod goes through the very plugin a cluster pod does. Every plugin runs inside the
//! cluster network namespace: that is the "host" side for them (the bridge and the pods'
//! host-side veths live there), and nothing is made in the machine's own namespace.
//!
//! ADD results are kept in memory to be passed back as `prevResult` on DEL, as the spec asks; a
//! restarted runtime that lost them still gets a correct DEL, since all three plugins can
//! release a pod from the container id and the namespace alone.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::LocalError;
use super::network::{BRIDGE, NETNS_DIR};
use super::state::StateDir;
use crate::sys::netns::{Netns, command_in};

/// Where Debian's `containernetworking-plugins` installs `bridge`, `host-local` and friends.
pub const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";
/// The network name in the conflist.
pub const NETWORK_NAME: &str = "ambient-local";
/// The spec version the conflist is written in.
pub const CNI_VERSION: &str = "1.0.0";
/// The name our binary acts as the CNI plugin under.
pub const PLUGIN_BINARY: &str = "ambient-cni";
/// How long one plugin invocation may take before it is killed and the call fails.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The pods' interface name.
pub const POD_IFNAME: &str = "eth0";

/// What the plugins get when the runtime's own `PATH` is unset (`ambient-cni` runs
/// `iptables-restore`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One pod as the runtime hands it to the plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `CNI_CONTAINERID` (the pod sandbox's id); host-local keys its allocation on it.
    pub container_id: String,
    /// The pod's network namespace name, under `/var/run/netns`.
    pub netns: String,
}

/// The outcome of a successful ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    /// The pod's address (its first IPv4 one).
    pub ip: IpAddr,
    /// The final plugin's result, as printed.
    pub result: Value,
}

/// One node's CNI configuration and the means to run it.
#[derive(Debug)]
pub struct CniRuntime {
    node: String,
    cluster: Netns,
    conflist: Value,
    conflist_path: PathBuf,
    cni_path: String,
    /// ADD results by container id, passed back as `prevResult` on DEL.
    results: Mutex<HashMap<String, Value>>,
}

/// Why one plugin invocation failed.
struct PluginFailure {
    plugin: String,
    message: String,
}

impl CniRuntime {
    /// Writes the node's conflist (`dir.node_conflist(node)`) and puts the `ambient-cni` plugin in
    /// place: a symlink in `dir.cni_bin_dir()` to `ambient_binary` (our own executable acts as the
    /// plugin when run under that name). `cluster` is the namespace the plugins run in.
    pub fn new(
        dir: &StateDir,
        node: &str,
        cluster: Netns,
        pod_cidr: Ipv4Net,
        gateway: Ipv4Addr,
        ambient_binary: &Path,
    ) -> Result<Self, LocalError> {
        let conflist = conflist(dir, node, pod_cidr, gateway);
        let conflist_path = dir.node_conflist(node);
        if let Some(parent) = conflist_path.parent() {
            std::fs::create_dir_all(parent).map_err(LocalError::io(format!("creating folder {}", parent.display())))?;
        }
        let text = serde_json::to_string_pretty(&conflist).expect("a JSON value always serializes");
        std::fs::write(&conflist_path, text)
            .map_err(LocalError::io(format!("writing CNI configuration {}", conflist_path.display())))?;
        let bin_dir = dir.cni_bin_dir();
        link_plugin(&bin_dir, ambient_binary)?;
        Ok(CniRuntime {
            node: node.to_owned(),
            cluster,
            conflist,
            conflist_path,
            cni_path: format!("{}:{DEBIAN_CNI_DIR}", bin_dir.display()),
            results: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration list the plugins are run from.
    pub fn conflist(&self) -> &Value {
        &self.conflist
    }

    /// Where the configuration list is written.
    pub fn conflist_path(&self) -> &Path {
        &self.conflist_path
    }

    /// `CNI_PATH`: our own plugin folder first, then Debian's.
    pub fn cni_path(&self) -> &str {
        &self.cni_path
    }

    /// ADD through the chain. When plugin k fails, DEL runs for plugins k..0 (best effort), and
    /// the error names the plugin, its exit status and its CNI error message.
    pub async fn add(&self, pod: &CniPod) -> Result<CniResult, LocalError> {
        let plugins = self.plugins();
        let mut prev: Option<Value> = None;
        for (index, _) in plugins.iter().enumerate() {
            match self.invoke(index, "ADD", pod, prev.as_ref()).await {
                Ok(Some(result)) => prev = Some(result),
                Ok(None) => {
                    let plugin = plugin_type(&plugins[index]).to_owned();
                    let failure = PluginFailure { plugin, message: "printed no result".into() };
                    return Err(self.add_failed(index, pod, prev.as_ref(), failure).await);
                }
                Err(failure) => return Err(self.add_failed(index, pod, prev.as_ref(), failure).await),
            }
        }
        let result =
            prev.ok_or_else(|| LocalError::Failed(format!("the CNI configuration of {} has no plugins", self.node)))?;
        let Some(ip) = result_ipv4(&result) else {
            let error = LocalError::Failed(format!(
                "CNI ADD of pod {}/{} on {}: the result has no IPv4 address: {result}",
                pod.namespace, pod.name, self.node
            ));
            let _ = self.del_from(plugins.len() - 1, pod, Some(&result)).await;
            return Err(error);
        };
        self.results.lock().unwrap_or_else(|e| e.into_inner()).insert(pod.container_id.clone(), result.clone());
        Ok(CniResult { ip: IpAddr::V4(ip), result })
    }

    /// DEL in reverse order, best effort: every plugin runs even if one fails, and the failures
    /// are reported together.
    pub async fn del(&self, pod: &CniPod) -> Result<(), LocalError> {
        let prev = self.results.lock().unwrap_or_else(|e| e.into_inner()).remove(&pod.container_id);
        let count = self.plugins().len();
        if count == 0 {
            return Ok(());
        }
        let failures = self.del_from(count - 1, pod, prev.as_ref()).await;
        if failures.is_empty() {
            return Ok(());
        }
        Err(LocalError::Failed(format!(
            "CNI DEL of pod {}/{} on {}: {}",
            pod.namespace,
            pod.name,
            self.node,
            failures.iter().map(|f| format!("plugin {}: {}", f.plugin, f.message)).collect::<Vec<_>>().join("; ")
        )))
    }

    /// Cleans up after plugin `failed` failed an ADD, and describes the failure.
    async fn add_failed(
        &self,
        failed: usize,
        pod: &CniPod,
        prev: Option<&Value>,
        failure: PluginFailure,
    ) -> LocalError {
        let undo = self.del_from(failed, pod, prev).await;
        let mut message = format!(
            "CNI ADD of pod {}/{} on {}: plugin {} {}",
            pod.namespace, pod.name, self.node, failure.plugin, failure.message
        );
        if !undo.is_empty() {
            message += &format!(
                " (cleaning up with DEL also failed: {})",
                undo.iter().map(|f| format!("plugin {}: {}", f.plugin, f.message)).collect::<Vec<_>>().join("; ")
            );
        }
        LocalError::Failed(message)
    }

    /// DEL for plugins `last`..0; the failures.
    async fn del_from(&self, last: usize, pod: &CniPod, prev: Option<&Value>) -> Vec<PluginFailure> {
        let mut failures = Vec::new();
        for index in (0..=last).rev() {
            if let Err(failure) = self.invoke(index, "DEL", pod, prev).await {
                failures.push(failure);
            }
        }
        failures
    }

    fn plugins(&self) -> &[Value] {
        self.conflist["plugins"].as_array().map(Vec::as_slice).unwrap_or_default()
    }

    /// The runtime's view of plugin `index`'s configuration: its entry plus the list's name and
    /// cniVersion, and the previous result.
    fn plugin_conf(&self, index: usize, prev_result: Option<&Value>) -> Value {
        let mut conf = self.plugins()[index].clone();
        conf["name"] = self.conflist["name"].clone();
        conf["cniVersion"] = self.conflist["cniVersion"].clone();
        if let Some(prev) = prev_result {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    /// Finds a plugin binary by its type in `CNI_PATH`.
    fn find_plugin(&self, plugin: &str) -> Result<PathBuf, PluginFailure> {
        self.cni_path.split(':').map(|dir| Path::new(dir).join(plugin)).find(|path| path.exists()).ok_or_else(|| {
            PluginFailure {
                plugin: plugin.to_owned(),
                message: format!(
                    "is not installed: no {plugin} in CNI_PATH {} (install Debian's containernetworking-plugins)",
                    self.cni_path
                ),
            }
        })
    }

    /// Runs plugin `index` once, inside the cluster namespace. `Ok(Some)` is the result it
    /// printed (ADD), `Ok(None)` an empty success (DEL).
    async fn invoke(
        &self,
        index: usize,
        command: &str,
        pod: &CniPod,
        prev: Option<&Value>,
    ) -> Result<Option<Value>, PluginFailure> {
        let conf = self.plugin_conf(index, prev);
        let plugin = plugin_type(&conf).to_owned();
        let failure = |message: String| PluginFailure { plugin: plugin.clone(), message };
        let binary = self.find_plugin(&plugin)?;
        let mut std_command = command_in(&self.cluster, &binary.to_string_lossy());
        std_command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned()))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &pod.container_id)
            .env("CNI_NETNS", Path::new(NETNS_DIR).join(&pod.netns))
            .env("CNI_IFNAME", POD_IFNAME)
            .env("CNI_PATH", &self.cni_path)
            .env("CNI_ARGS", cni_args(pod))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Our plugin logs with tracing; keep its verbosity when the runtime has one set.
        if let Ok(filter) = std::env::var("RUST_LOG") {
            std_command.env("RUST_LOG", filter);
        }
        let mut child = tokio::process::Command::from(std_command)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failure(format!("({}) could not be started: {e}", binary.display())))?;
        let stdin_bytes = conf.to_string().into_bytes();
        let mut stdin = child.stdin.take();
        let feed = async move {
            if let Some(stdin) = stdin.as_mut() {
                // A plugin that exits without reading its configuration reports that itself.
                let _ = stdin.write_all(&stdin_bytes).await;
                let _ = stdin.shutdown().await;
            }
            drop(stdin);
        };
        let run = async { tokio::join!(feed, child.wait_with_output()).1 };
        let output = match tokio::time::timeout(PLUGIN_TIMEOUT, run).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(failure(format!("({}) could not be waited for: {e}", binary.display()))),
            // Dropping the child (kill_on_drop) ends the plugin.
            Err(_) => {
                return Err(failure(format!(
                    "({}) did not finish {command} within {} s",
                    binary.display(),
                    PLUGIN_TIMEOUT.as_secs()
                )));
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(failure(describe_failure(&binary, command, output.status, &stdout, &stderr)));
        }
        if stdout.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&stdout).map(Some).map_err(|e| {
            failure(format!(
                "({}) printed a {command} result that is not JSON ({e}): {}",
                binary.display(),
                stdout.trim()
            ))
        })
    }
}

/// The node's conflist: `bridge` with `host-local` on the pod CIDR (the pod gets the subnet route
/// and a default route via the gateway, which is the cluster namespace, itself without a route
/// out), then `ambient-cni` talking to the node's agent.
fn conflist(dir: &StateDir, node: &str, pod_cidr: Ipv4Net, gateway: Ipv4Addr) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr.trunc().to_string(), "gateway": gateway.to_string() }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": dir.ipam_dir(),
                },
            },
            {
                "type": PLUGIN_BINARY,
                "agentSocket": dir.plugin_socket(node),
            },
        ],
    })
}

/// `bin_dir/ambient-cni` -> `ambient_binary`, replacing what a previous run left there.
fn link_plugin(bin_dir: &Path, ambient_binary: &Path) -> Result<(), LocalError> {
    std::fs::create_dir_all(bin_dir).map_err(LocalError::io(format!("creating folder {}", bin_dir.display())))?;
    let link = bin_dir.join(PLUGIN_BINARY);
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link).map_err(LocalError::io(format!("removing the old {}", link.display())))?;
    }
    std::os::unix::fs::symlink(ambient_binary, &link).map_err(LocalError::io(format!(
        "linking {} to {}",
        link.display(),
        ambient_binary.display()
    )))
}

/// `CNI_ARGS` as the kubelet's runtimes pass it.
fn cni_args(pod: &CniPod) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        pod.namespace, pod.name, pod.container_id, pod.uid
    )
}

fn plugin_type(conf: &Value) -> &str {
    conf["type"].as_str().unwrap_or("<no type>")
}

/// A failed plugin run: the CNI error JSON's `msg` and `details` when it printed one, else its
/// output.
fn describe_failure(binary: &Path, command: &str, status: ExitStatus, stdout: &str, stderr: &str) -> String {
    let mut message = format!("({}) failed {command} with {status}", binary.display());
    match serde_json::from_str::<Value>(stdout) {
        Ok(error) if error.get("msg").is_some() => {
            message += &format!(": {}", error["msg"].as_str().unwrap_or_default());
            if let Some(details) = error["details"].as_str().filter(|d| !d.is_empty()) {
                message += &format!(" ({details})");
            }
            if let Some(code) = error["code"].as_u64() {
                message += &format!(" [CNI error code {code}]");
            }
        }
        _ => {
            let output = [stdout.trim(), stderr.trim()].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
            if !output.is_empty() {
                message += &format!(": {}", output.join(" / "));
            }
        }
    }
    message
}

/// The first IPv4 address of a CNI result (`ips[].address`, `A.B.C.D/len`).
pub fn result_ipv4(result: &Value) -> Option<Ipv4Addr> {
    result["ips"].as_array()?.iter().find_map(|ip| ip["address"].as_str()?.split('/').next()?.parse::<Ipv4Addr>().ok())
}
