//! Finding the network namespace of a pod that is already running (it existed before the agent
//! started, or it joined the mesh by a label change): every namespace on the node is entered
//! and the one holding the pod's IP on an interface is the pod's.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::sys::netns::{Netns, NetnsExecutor};

/// Where runtimes bind-mount pod namespaces (containerd, CRI-O, `ip netns`).
const NAMED_NETNS_DIR: &str = "/var/run/netns";

/// Which namespaces may hold the node's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// Every named namespace and every process's namespace on the node.
    Node,
    /// Only named namespaces (`/var/run/netns/<prefix>...`) whose name starts with the prefix:
    /// for a runtime that names its pods' namespaces, such as `ambient local`, so that several
    /// of them on one machine never look at each other's pods.
    NamedPrefix(String),
}

/// Candidate namespace paths: named ones first (no ptrace access check needed), then each
/// process's. Opening `/proc/<pid>/ns/net` of another user's process needs CAP_SYS_PTRACE.
fn candidate_paths(discovery: &Discovery) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Ok(entries) = std::fs::read_dir(NAMED_NETNS_DIR) {
        let wanted = |name: &str| match discovery {
            Discovery::Node => true,
            Discovery::NamedPrefix(prefix) => name.starts_with(prefix.as_str()),
        };
        paths
            .extend(entries.flatten().filter(|e| e.file_name().to_str().is_some_and(wanted)).map(|entry| entry.path()));
    }
    if let Discovery::NamedPrefix(_) = discovery {
        return paths;
    }
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
                paths.push(Path::new("/proc").join(name).join("ns/net"));
            }
        }
    }
    paths
}

/// The distinct namespaces of the node other than the agent's own (a host-network pod shares
/// it and is never redirected). Paths that vanish or cannot be opened are skipped.
fn node_namespaces(discovery: &Discovery) -> Vec<Netns> {
    let own = Netns::current().ok().map(|ns| ns.inode());
    let mut seen: HashSet<u64> = own.into_iter().collect();
    let mut found = Vec::new();
    for path in candidate_paths(discovery) {
        match Netns::open(&path) {
            Ok(ns) if seen.insert(ns.inode()) => found.push(ns),
            Ok(_) => {}
            Err(e) => debug!(path = %path.display(), error = %e, "cni agent: skipping namespace"),
        }
    }
    found
}

/// Whether an interface of the calling thread's namespace holds one of `ips`.
fn holds_any(ips: &[IpAddr]) -> io::Result<bool> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| crate::sys::context(e.into(), "getifaddrs"))?;
    for ifaddr in addrs {
        let Some(address) = ifaddr.address else { continue };
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if ips.contains(&ip) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The namespace holding one of the pod's `ips`, if exactly one does. Several matches mean the
/// IP is not unique on this node (a stale namespace, or a test elsewhere): none is picked,
/// since redirecting the wrong namespace is worse than waiting.
pub async fn find_netns_by_ip(
    executor: &NetnsExecutor,
    discovery: &Discovery,
    ips: &[IpAddr],
) -> io::Result<Option<Netns>> {
    if ips.is_empty() {
        return Ok(None);
    }
    let discovery = discovery.clone();
    let candidates =
        tokio::task::spawn_blocking(move || node_namespaces(&discovery)).await.map_err(io::Error::other)?;
    let mut matches = Vec::new();
    for ns in candidates {
        let wanted = ips.to_vec();
        match executor.run(&ns, move || holds_any(&wanted)).await {
            Ok(true) => matches.push(ns),
            Ok(false) => {}
            Err(e) => debug!(netns = ?ns, error = %e, "cni agent: cannot inspect namespace"),
        }
    }
    match matches.len() {
        0 | 1 => Ok(matches.pop()),
        n => Err(io::Error::other(format!(
            "{n} network namespaces hold {ips:?} ({matches:?}); refusing to guess which is the pod's"
        ))),
    }
}
