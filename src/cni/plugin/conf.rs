//! What the runtime hands the plugin: the `CNI_*` environment and the network configuration on
//! stdin (spec: "Section 3: Execution Protocol" and "Section 1: Network configuration format").

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ErrorCode, PluginError};

/// Spec versions whose configuration and result formats the plugin reads and writes. 0.3.x
/// results are laid out like 0.4.0 ones, so they come for free; CHECK needs 0.4.0 or later.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
/// Used in replies when the request did not say (or could not be read).
pub const LATEST_VERSION: &str = "1.0.0";
/// The `type` this plugin is configured as in a conflist.
pub const PLUGIN_TYPE: &str = "ambient-cni";
/// How long to wait for the node agent when the configuration does not say. The agent itself
/// waits up to ~2 s for a pod it has not seen yet, so this leaves room for that.
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
    Version,
}

/// The `CNI_*` variables; each is checked where the command needs it.
#[derive(Clone, Debug, Default)]
pub struct CniEnv {
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
    /// `CNI_ARGS`, `KEY=VALUE;KEY=VALUE`.
    pub args: HashMap<String, String>,
}

/// Reads `CNI_COMMAND`. Unset or unknown commands (GC and STATUS of spec 1.1.0 included, which
/// this plugin does not claim) are invalid environment (code 4).
pub fn command(vars: &HashMap<String, String>) -> Result<CniCommand, PluginError> {
    match vars.get("CNI_COMMAND").map(String::as_str) {
        Some("ADD") => Ok(CniCommand::Add),
        Some("DEL") => Ok(CniCommand::Del),
        Some("CHECK") => Ok(CniCommand::Check),
        Some("VERSION") => Ok(CniCommand::Version),
        Some(other) => Err(PluginError::new(
            ErrorCode::InvalidEnvironment,
            format!("unknown CNI_COMMAND {other:?}"),
            "this plugin implements ADD, DEL, CHECK and VERSION (CNI spec 0.3.0 to 1.0.0)",
        )),
        None => Err(PluginError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_COMMAND is not set",
            "ambient-cni is a CNI plugin, exec'd by the container runtime with CNI_COMMAND=ADD|DEL|CHECK|VERSION \
             and the network configuration on stdin",
        )),
    }
}

impl CniEnv {
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<CniEnv, PluginError> {
        let non_empty = |key: &str| vars.get(key).filter(|value| !value.is_empty()).cloned();
        Ok(CniEnv {
            container_id: non_empty("CNI_CONTAINERID"),
            netns: non_empty("CNI_NETNS").map(PathBuf::from),
            ifname: non_empty("CNI_IFNAME"),
            args: parse_cni_args(vars.get("CNI_ARGS").map(String::as_str).unwrap_or(""))?,
        })
    }

    /// A variable the command cannot do without: unset is invalid environment (code 4).
    pub fn require<'a, T>(value: &'a Option<T>, key: &str) -> Result<&'a T, PluginError> {
        value.as_ref().ok_or_else(|| {
            PluginError::new(ErrorCode::InvalidEnvironment, format!("{key} is not set"), "the runtime must pass it")
        })
    }

    /// The Kubernetes pod (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`), when the runtime says.
    pub fn kube_pod(&self) -> Option<(&str, &str)> {
        let namespace = self.args.get("K8S_POD_NAMESPACE").filter(|v| !v.is_empty())?;
        let name = self.args.get("K8S_POD_NAME").filter(|v| !v.is_empty())?;
        Some((namespace, name))
    }

    pub fn kube_pod_uid(&self) -> Option<String> {
        self.args.get("K8S_POD_UID").filter(|v| !v.is_empty()).cloned()
    }
}

/// `CNI_ARGS`: `;`-separated `KEY=VALUE` pairs (empty pieces are skipped, as libcni does).
fn parse_cni_args(text: &str) -> Result<HashMap<String, String>, PluginError> {
    let mut args = HashMap::new();
    for pair in text.split(';').filter(|pair| !pair.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(PluginError::new(
                ErrorCode::InvalidEnvironment,
                format!("CNI_ARGS has {pair:?}, not KEY=VALUE"),
                format!("CNI_ARGS={text:?}"),
            ));
        };
        args.insert(key.to_owned(), value.to_owned());
    }
    Ok(args)
}

/// This plugin's entry of a conflist, as the runtime passes it (with `name`, `cniVersion` and
/// `prevResult` filled in).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// Where the node agent listens; [`crate::cni::protocol::DEFAULT_AGENT_SOCKET`] when unset.
    #[serde(default)]
    pub agent_socket: Option<PathBuf>,
    #[serde(default)]
    pub agent_timeout_seconds: Option<f64>,
    /// The primary plugin's result (kept as JSON: it is printed back, not interpreted beyond
    /// the pod's addresses).
    #[serde(default)]
    pub prev_result: Option<serde_json::Value>,
}

impl NetConf {
    pub fn agent_socket(&self) -> PathBuf {
        self.agent_socket.clone().unwrap_or_else(|| PathBuf::from(crate::cni::protocol::DEFAULT_AGENT_SOCKET))
    }

    pub fn agent_timeout(&self) -> Duration {
        self.agent_timeout_seconds.map(Duration::from_secs_f64).unwrap_or(DEFAULT_AGENT_TIMEOUT)
    }

    /// Spec versions before 0.4.0 have no CHECK.
    pub fn has_check(&self) -> bool {
        !self.cni_version.starts_with("0.3.")
    }
}

/// The `cniVersion` of a request, if stdin is a JSON object carrying one (used to answer errors
/// and VERSION in the caller's version).
pub fn requested_version(stdin: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(stdin).ok()?;
    value.get("cniVersion")?.as_str().map(str::to_owned)
}

/// Decodes the network configuration: not JSON is a decode failure (code 6), an unsupported
/// `cniVersion` is code 1, a missing or mistyped field is an invalid configuration (code 7).
pub fn parse(stdin: &[u8]) -> Result<NetConf, PluginError> {
    let value: serde_json::Value = serde_json::from_slice(stdin).map_err(|e| {
        PluginError::new(
            ErrorCode::DecodingFailure,
            format!("network configuration on stdin is not JSON: {e}"),
            format!("stdin ({} bytes) starts with {:?}", stdin.len(), preview(stdin)),
        )
    })?;
    if !value.is_object() {
        return Err(PluginError::new(
            ErrorCode::DecodingFailure,
            "network configuration on stdin is not a JSON object",
            format!("stdin starts with {:?}", preview(stdin)),
        ));
    }
    match value.get("cniVersion") {
        Some(serde_json::Value::String(version)) => check_version(version)?,
        Some(other) => {
            return Err(PluginError::new(
                ErrorCode::InvalidNetworkConfig,
                format!("cniVersion is {other}, not a string"),
                "",
            ));
        }
        None => {
            return Err(PluginError::new(
                ErrorCode::InvalidNetworkConfig,
                "network configuration has no cniVersion",
                "",
            ));
        }
    }
    let conf: NetConf = serde_path_to_error::deserialize(value).map_err(|e| {
        PluginError::new(
            ErrorCode::InvalidNetworkConfig,
            format!("network configuration: {}: {}", e.path(), e.inner()),
            "",
        )
    })?;
    if conf.plugin_type != PLUGIN_TYPE {
        // Not fatal on its own (a renamed binary still works), but the runtime looked it up by type.
        tracing::debug!(plugin_type = conf.plugin_type, "configured under a type other than {PLUGIN_TYPE}");
    }
    if let Some(seconds) = conf.agent_timeout_seconds
        && !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0)
    {
        return Err(PluginError::new(
            ErrorCode::InvalidNetworkConfig,
            format!("agentTimeoutSeconds is {seconds}; use a number of seconds in (0, 3600]"),
            "",
        ));
    }
    Ok(conf)
}

pub fn check_version(version: &str) -> Result<(), PluginError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        return Ok(());
    }
    Err(PluginError::new(
        ErrorCode::IncompatibleVersion,
        format!("unsupported cniVersion {version:?}"),
        format!("ambient-cni supports {}", SUPPORTED_VERSIONS.join(", ")),
    ))
}

/// The first bytes of stdin, for error messages about garbage input.
fn preview(stdin: &[u8]) -> String {
    String::from_utf8_lossy(&stdin[..stdin.len().min(40)]).into_owned()
}
