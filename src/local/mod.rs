//! `ambient local`: a real ambient mesh on one Linux machine, without Kubernetes.
//!
//! The runtime (started by `up`, left running in the background) plays the API server, the
//! scheduler, kubelet, kube-proxy and a container runtime: it reads ordinary Kubernetes YAML,
//! gives each pod a network namespace through real CNI plugins (Debian's `bridge` + `host-local`,
//! `ambient-cni` chained last), runs the pods' commands in them, publishes the objects with their
//! status for the components, and runs the very same components as a cluster (one control plane,
//! a ztunnel and a CNI agent per node) as child processes.
//!
//! Layout: `state` (the state file and folder layout, the contract with the CLI), `preflight`
//! (root, tools), `network` (the cluster namespace, service rules), `cni_runtime` (running the
//! conflist), `pods` (pod lifecycle and supervision), `components`, `publish`, `runtime` (the
//! loop), `teardown` (`down`, also from the state file alone).

pub mod board;
pub mod cni_runtime;
pub mod components;
pub mod http;
pub mod network;
pub mod pods;
pub mod preflight;
pub mod publish;
pub mod runtime;
pub mod state;
pub mod supervise;
pub mod teardown;

use std::path::PathBuf;

/// What went wrong in the local runtime.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("state file {path} is unreadable: {message}")]
    StateFile { path: PathBuf, message: String },
    #[error("{0}")]
    Preflight(String),
    #[error("{0}")]
    Failed(String),
}

impl LocalError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalError {
        let what = what.into();
        move |source| LocalError::Io { what, source }
    }
}
