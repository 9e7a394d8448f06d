//! What can go wrong on the cluster side, each message naming the object (kind, namespace/name)
//! and what the API server said (HTTP status, reason, its Status message).

use std::time::Duration;

/// An error of install, uninstall or verify-install against a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("{0}")]
    Config(String),
    /// The API server did not answer (connection refused, DNS, TLS, timeout).
    #[error("cannot reach the Kubernetes API server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The API server answered a request with an error Status.
    #[error("{action} {what}: HTTP {code} {reason}: {message}")]
    Api { action: String, what: String, code: u16, reason: String, message: String },
    /// The client failed otherwise (building the request, decoding the answer, credentials).
    #[error("{action} {what}: {detail}")]
    Client { action: String, what: String, detail: String },
    /// `/version` did not name a Kubernetes version.
    #[error("the API server at {url} reports no usable version (major {major:?}, minor {minor:?})")]
    UnknownVersion { url: String, major: String, minor: String },
    /// The cluster is older than ambient supports.
    #[error("Kubernetes {version} is not supported: ambient needs {min} or newer")]
    UnsupportedVersion { version: String, min: String },
    /// Something ambient would install is already there, put there by something else.
    #[error("{what} already exists and was not installed by ambient (managed by {manager}): {hint}")]
    Foreign { what: String, manager: String, hint: String },
    /// Server-side apply refused to take over fields another field manager owns.
    #[error(
        "applying {what}: HTTP 409 Conflict: {}; install stopped at this object. To proceed, stop {} \
         from managing these fields (remove what it installed, or the object), then run `ambient install` again",
        describe_conflicts(conflicts),
        managers(conflicts)
    )]
    Conflict { what: String, conflicts: Vec<FieldConflict> },
    /// An applied CRD did not become Established in time.
    #[error("CustomResourceDefinition {name} was not established within {}", seconds(*timeout))]
    CrdNotEstablished { name: String, timeout: Duration },
    /// A pod of a workload failed for a reason waiting will not fix.
    #[error("rollout of {workload} failed: pod {pod}: {detail}")]
    RolloutFailed { workload: String, pod: String, detail: String },
    /// Workloads were not rolled out before the deadline.
    #[error("timed out after {} waiting for rollouts: {pending}", seconds(*timeout))]
    RolloutTimeout { timeout: Duration, pending: String },
    /// Confirmation is needed but nobody can be asked.
    #[error("not asking for confirmation: standard input is not a terminal; pass -y to proceed")]
    NeedsConfirmation,
    /// Reading the answer to the confirmation failed.
    #[error("reading the answer from standard input: {0}")]
    Stdin(#[source] std::io::Error),
    /// The user answered no.
    #[error("{0} cancelled: nothing was changed")]
    Cancelled(&'static str),
    /// Objects with the install label were still there when the uninstall wait ended.
    #[error("uninstall did not finish within {}: still present: {left}", seconds(*timeout))]
    UninstallIncomplete { timeout: Duration, left: String },
    /// The manifest holds an object install cannot handle.
    #[error("invalid manifest: {0}")]
    Manifest(String),
}

/// One field another manager owns, from a 409 apply conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The other manager as the API server names it, e.g. `"helm" using apps/v1`.
    pub manager: String,
    /// The field path, e.g. `.spec.replicas` (empty if the server did not say).
    pub field: String,
}

/// A timeout as the user would have written it: `5m`, `90s`, `200ms`.
fn seconds(d: Duration) -> String {
    match (d.as_secs(), d.subsec_millis()) {
        (0, ms) => format!("{ms}ms"),
        (s, 0) if s % 3600 == 0 => format!("{}h", s / 3600),
        (s, 0) if s % 60 == 0 => format!("{}m", s / 60),
        (s, 0) => format!("{s}s"),
        _ => format!("{:.1}s", d.as_secs_f64()),
    }
}

fn describe_conflicts(conflicts: &[FieldConflict]) -> String {
    let fields: Vec<String> = conflicts
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                format!("conflict with {}", c.manager)
            } else {
                format!("{} is owned by {}", c.field, c.manager)
            }
        })
        .collect();
    fields.join(", ")
}

fn managers(conflicts: &[FieldConflict]) -> String {
    let mut names: Vec<&str> = conflicts.iter().map(|c| manager_name(&c.manager)).collect();
    names.sort_unstable();
    names.dedup();
    names.join(" and ")
}

/// `"helm" using apps/v1` -> `"helm"`: the manager without the API version it used.
fn manager_name(manager: &str) -> &str {
    manager.split_once(" using ").map_or(manager, |(name, _)| name)
}

/// Reads the conflicts of a 409 apply answer: the Status causes when the server sent them
/// (reason `FieldManagerConflict`, message `conflict with "helm" using apps/v1`, field
/// `.spec.replicas`), else the lines of its message.
pub(crate) fn conflicts(status: &kube::core::Status) -> Vec<FieldConflict> {
    let from_causes: Vec<FieldConflict> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .filter(|c| c.reason == "FieldManagerConflict")
        .map(|c| FieldConflict {
            manager: c.message.strip_prefix("conflict with ").unwrap_or(&c.message).to_string(),
            field: c.field.clone(),
        })
        .collect();
    if !from_causes.is_empty() {
        return from_causes;
    }
    parse_conflict_message(&status.message)
}

/// Parses the API server's conflict message. One conflict:
/// `Apply failed with 1 conflict: conflict with "helm" using apps/v1: .spec.replicas`;
/// several: `Apply failed with 2 conflicts: conflicts with "helm" using apps/v1:\n- .a\n- .b`.
pub(crate) fn parse_conflict_message(message: &str) -> Vec<FieldConflict> {
    let body = message.split_once(": ").map_or(message, |(_, rest)| rest);
    let mut out = Vec::new();
    let mut manager: Option<String> = None;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(field) = line.strip_prefix("- ") {
            let manager = manager.clone().unwrap_or_default();
            out.push(FieldConflict { manager, field: field.to_string() });
        } else if let Some(rest) = line.strip_prefix("conflicts with ") {
            manager = Some(rest.trim_end_matches(':').to_string());
        } else if let Some(rest) = line.strip_prefix("conflict with ") {
            // The field follows the last ": " (a manager name is quoted and has none).
            match rest.rsplit_once(": ") {
                Some((m, field)) => out.push(FieldConflict { manager: m.to_string(), field: field.to_string() }),
                None => out.push(FieldConflict { manager: rest.to_string(), field: String::new() }),
            }
        }
    }
    if out.is_empty() {
        out.push(FieldConflict { manager: one_line(message), field: String::new() });
    }
    out
}

/// A message on one line: the CLI prints every error as one line.
pub(crate) fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Turns a kube client error of `action` on `what` into a [`ClusterError`]: an API Status keeps
/// its code, reason and message; a transport failure means the server is unreachable.
pub(crate) fn from_kube(err: kube::Error, url: &str, action: &str, what: &str) -> ClusterError {
    match err {
        kube::Error::Api(status) => ClusterError::Api {
            action: action.to_string(),
            what: what.to_string(),
            code: status.code,
            reason: if status.reason.is_empty() { "Failure".to_string() } else { status.reason.clone() },
            message: one_line(&status.message),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            ClusterError::Unreachable { url: url.to_string(), reason: transport_reason(&err) }
        }
        other => ClusterError::Client { action: action.to_string(), what: what.to_string(), detail: chain(&other) },
    }
}

/// The most telling cause of a transport failure: the I/O error's kind when it is a plain
/// network condition (`connection refused`), else the innermost message.
fn transport_reason(err: &(dyn std::error::Error + 'static)) -> String {
    use std::io::ErrorKind::*;
    let mut innermost = err.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut | HostUnreachable
                | NetworkUnreachable | AddrNotAvailable | NotConnected => io.kind().to_string(),
                _ => one_line(&io.to_string()),
            };
        }
        innermost = cause.to_string();
        source = cause.source();
    }
    one_line(&innermost)
}

/// An error and the messages of its causes that it does not already include, on one line.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    one_line(&crate::config::kube::describe(err))
}
