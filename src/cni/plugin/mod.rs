//! The chained CNI plugin (`ambient cni plugin`, or the binary exec'd as `ambient-cni`).
//!
//! It runs after the primary plugin, so the pod already has its interface and addresses
//! (`prevResult`). ADD asks the node agent whether the pod is enrolled; if so it installs the
//! in-pod redirection *before* returning, so the runtime never starts the pod's containers
//! outside the mesh, then hands the pod to the agent (and through it to ztunnel). Any failure
//! after the rules are in removes them again and fails ADD: a pod must not start half-configured.
//! A non-enrolled pod is passed through untouched. DEL is best-effort, as the spec asks.
//!
//! Only the result (or the CNI error JSON) goes to stdout; diagnostics go to stderr.

pub mod agent;
pub mod conf;
pub mod result;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cni::iptables::{self, RedirectConfig};
use crate::cni::protocol::{PluginPod, PluginRequest};
use crate::sys::netns::Netns;
use agent::{AgentClient, AgentError};
use conf::{CniCommand, CniEnv, NetConf};

/// CNI error codes: 1-99 are the spec's, 100+ this plugin's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    IncompatibleVersion = 1,
    InvalidEnvironment = 4,
    DecodingFailure = 6,
    InvalidNetworkConfig = 7,
    /// The node agent is not reachable (yet): the runtime retries the sandbox.
    TryAgainLater = 11,
    /// `CNI_NETNS` cannot be opened as a network namespace.
    Netns = 100,
    /// The node agent answered with an error or something that is not the protocol.
    Agent = 101,
    /// Installing, checking or removing the in-pod redirection failed.
    Redirection = 102,
}

/// A CNI error result: printed as `{"cniVersion", "code", "msg", "details"}`, exit status 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg} ({details})")]
pub struct PluginError {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl PluginError {
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> PluginError {
        PluginError { code, msg: msg.into(), details: details.into() }
    }

    fn from_agent(error: AgentError, doing: &str) -> PluginError {
        let code = if error.is_transient() { ErrorCode::TryAgainLater } else { ErrorCode::Agent };
        let details = if error.is_transient() {
            "is the ambient node agent (`ambient cni`) running on this node? agentSocket in the CNI configuration \
             must match its --plugin-socket"
        } else {
            ""
        };
        PluginError::new(code, format!("{doing}: {error}"), details)
    }

    /// The error as the spec's JSON, in `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> Value {
        json!({
            "cniVersion": cni_version,
            "code": self.code as u32,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

/// What the plugin prints and its exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginOutput {
    /// JSON (a result, the VERSION answer or a CNI error), or empty (DEL, CHECK).
    pub stdout: String,
    /// 0 on success, 1 on a CNI error.
    pub exit_status: u8,
}

/// Runs one invocation: `vars` is the process environment, `stdin` the network configuration.
pub fn run(vars: &HashMap<String, String>, stdin: &[u8]) -> PluginOutput {
    // Errors are answered in the caller's version when it is one we speak.
    let version = conf::requested_version(stdin)
        .filter(|v| conf::check_version(v).is_ok())
        .unwrap_or_else(|| conf::LATEST_VERSION.to_owned());
    match dispatch(vars, stdin) {
        Ok(Some(value)) => PluginOutput { stdout: format!("{value}\n"), exit_status: 0 },
        Ok(None) => PluginOutput { stdout: String::new(), exit_status: 0 },
        Err(error) => {
            tracing::warn!(code = error.code as u32, "{error}");
            PluginOutput { stdout: format!("{}\n", error.to_json(&version)), exit_status: 1 }
        }
    }
}

/// The process entry point: environment and stdin in, result on stdout, exit status out.
pub fn main() -> ExitCode {
    let vars: HashMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let mut stdin = Vec::new();
    let output = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => run(&vars, &stdin),
        Err(e) => {
            let error = PluginError::new(ErrorCode::DecodingFailure, format!("reading stdin: {e}"), "");
            PluginOutput { stdout: format!("{}\n", error.to_json(conf::LATEST_VERSION)), exit_status: 1 }
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A runtime that closed our stdout cannot be told anything else either.
    let _ = stdout.write_all(output.stdout.as_bytes()).and_then(|()| stdout.flush());
    ExitCode::from(output.exit_status)
}

fn dispatch(vars: &HashMap<String, String>, stdin: &[u8]) -> Result<Option<Value>, PluginError> {
    let command = conf::command(vars)?;
    if command == CniCommand::Version {
        return Ok(Some(version_answer(stdin)));
    }
    let env = CniEnv::from_vars(vars)?;
    let conf = conf::parse(stdin)?;
    match command {
        CniCommand::Add => add(&env, &conf).map(Some),
        CniCommand::Del => del(&env, &conf).map(|()| None),
        CniCommand::Check => check(&env, &conf).map(|()| None),
        CniCommand::Version => unreachable!("answered above"),
    }
}

/// VERSION: the versions this plugin speaks, answered in the requested version when readable.
fn version_answer(stdin: &[u8]) -> Value {
    let version = conf::requested_version(stdin).unwrap_or_else(|| conf::LATEST_VERSION.to_owned());
    json!({ "cniVersion": version, "supportedVersions": conf::SUPPORTED_VERSIONS })
}

fn add(env: &CniEnv, conf: &NetConf) -> Result<Value, PluginError> {
    let container_id = CniEnv::require(&env.container_id, "CNI_CONTAINERID")?;
    CniEnv::require(&env.ifname, "CNI_IFNAME")?;
    let prev_result = conf.prev_result.as_ref().ok_or_else(|| {
        PluginError::new(
            ErrorCode::InvalidNetworkConfig,
            "ADD without prevResult",
            "ambient-cni is a chained plugin: list it after the primary plugin in a conflist",
        )
    })?;
    let ips = result::pod_ips(prev_result)?;
    let output = result::in_version(prev_result, &conf.cni_version)?;
    let netns = open_netns(env)?;
    let Some((namespace, name)) = env.kube_pod() else {
        tracing::info!(container_id, "no K8S_POD_NAMESPACE/K8S_POD_NAME in CNI_ARGS: not a pod, passed through");
        return Ok(output);
    };
    let client = AgentClient::new(conf.agent_socket(), conf.agent_timeout());
    let enrolled = client
        .enrolled(namespace, name)
        .map_err(|e| PluginError::from_agent(e, &format!("asking whether pod {namespace}/{name} is enrolled")))?;
    if !enrolled {
        tracing::debug!(namespace, name, "pod not enrolled: passed through");
        return Ok(output);
    }
    iptables::install(&netns, &RedirectConfig::default()).map_err(|e| {
        PluginError::new(
            ErrorCode::Redirection,
            format!("installing the traffic redirection in pod {namespace}/{name}: {e}"),
            format!("network namespace {}", env.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
        )
    })?;
    let pod = PluginPod {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: env.kube_pod_uid(),
        container_id: container_id.clone(),
        netns: env.netns.clone().unwrap_or_default(),
        ips,
    };
    if let Err(error) = client.expect_ok(&PluginRequest::Added { pod }) {
        // Without the agent (and so ztunnel) the redirected pod would have no connectivity.
        let mut error = PluginError::from_agent(error, &format!("handing pod {namespace}/{name} to the node agent"));
        if let Err(undo) = iptables::remove(&netns) {
            error.details = format!("{}; removing the redirection again also failed: {undo}", error.details);
        }
        return Err(error);
    }
    tracing::info!(namespace, name, "pod enrolled: redirection installed and handed to the node agent");
    Ok(output)
}

fn del(env: &CniEnv, conf: &NetConf) -> Result<(), PluginError> {
    if let Some((namespace, name)) = env.kube_pod() {
        let ips = conf.prev_result.as_ref().and_then(|prev| result::pod_ips(prev).ok()).unwrap_or_default();
        let pod = PluginPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: env.kube_pod_uid(),
            container_id: env.container_id.clone().unwrap_or_default(),
            netns: env.netns.clone().unwrap_or_default(),
            ips,
        };
        let client = AgentClient::new(conf.agent_socket(), conf.agent_timeout());
        // Best-effort: the agent also notices gone pods through the config store.
        if let Err(error) = client.expect_ok(&PluginRequest::Deleted { pod }) {
            tracing::warn!(namespace, name, "DEL: telling the node agent failed (ignored): {error}");
        }
    }
    // A namespace already gone took its rules with it (the spec lets DEL run after that).
    let Some(path) = &env.netns else { return Ok(()) };
    let Ok(netns) = Netns::open(path) else { return Ok(()) };
    let redirection_error = |e: iptables::IptablesError| {
        PluginError::new(
            ErrorCode::Redirection,
            format!("removing the traffic redirection from {}: {e}", path.display()),
            "",
        )
    };
    if iptables::installed(&netns).map_err(redirection_error)? {
        iptables::remove(&netns).map_err(redirection_error)?;
    }
    Ok(())
}

fn check(env: &CniEnv, conf: &NetConf) -> Result<(), PluginError> {
    if !conf.has_check() {
        return Err(PluginError::new(
            ErrorCode::IncompatibleVersion,
            format!("CHECK is not defined for cniVersion {}", conf.cni_version),
            "CHECK needs cniVersion 0.4.0 or later",
        ));
    }
    CniEnv::require(&env.container_id, "CNI_CONTAINERID")?;
    if conf.prev_result.is_none() {
        return Err(PluginError::new(
            ErrorCode::InvalidNetworkConfig,
            "CHECK without prevResult",
            "ambient-cni is a chained plugin",
        ));
    }
    let netns = open_netns(env)?;
    let Some((namespace, name)) = env.kube_pod() else { return Ok(()) };
    let client = AgentClient::new(conf.agent_socket(), conf.agent_timeout());
    let enrolled = client
        .enrolled(namespace, name)
        .map_err(|e| PluginError::from_agent(e, &format!("asking whether pod {namespace}/{name} is enrolled")))?;
    if enrolled {
        iptables::check(&netns, &RedirectConfig::default()).map_err(|e| {
            PluginError::new(
                ErrorCode::Redirection,
                format!("pod {namespace}/{name} is enrolled but its traffic redirection is not as installed: {e}"),
                "",
            )
        })?;
    }
    Ok(())
}

/// `CNI_NETNS`, opened: the pod's network namespace must exist on ADD and CHECK.
fn open_netns(env: &CniEnv) -> Result<Netns, PluginError> {
    let path = CniEnv::require(&env.netns, "CNI_NETNS")?;
    Netns::open(path).map_err(|e| {
        PluginError::new(
            ErrorCode::Netns,
            format!("pod network namespace CNI_NETNS={} cannot be used: {e}", path.display()),
            "the runtime must create the namespace before ADD",
        )
    })
}
