//! The plugin <-> node agent protocol: one JSON request and one JSON response, each a single
//! line, per connection on a unix stream socket. The plugin is short-lived (exec'd by the
//! container runtime per pod event), so there is no session to keep.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the node agent listens for the plugin (configurable on both sides).
pub const DEFAULT_AGENT_SOCKET: &str = "/var/run/ambient/cni-agent.sock";

/// A pod as the plugin sees it during ADD/DEL (from the CNI environment and `prevResult`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginPod {
    pub namespace: String,
    pub name: String,
    /// `K8S_POD_UID` from `CNI_ARGS` when the runtime passes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    pub container_id: String,
    /// `CNI_NETNS`: the pod's network namespace path.
    pub netns: PathBuf,
    /// The pod's addresses from `prevResult`.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "camelCase")]
pub enum PluginRequest {
    /// ADD, before anything is installed: should this pod be in the mesh? The agent waits a
    /// little for a pod it has not seen yet, then answers from its store.
    Enrolled { namespace: String, name: String },
    /// ADD, after the redirection is installed in the pod's namespace: hand it to ztunnel.
    Added { pod: PluginPod },
    /// DEL: the pod is going away.
    Deleted { pod: PluginPod },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "camelCase")]
pub enum AgentResponse {
    Enrolled { enrolled: bool },
    Ok,
    Error { message: String },
}
