//! `ambient local down`: removes everything a local mesh created, also after a crash or a killed
//! runtime, from the state file and, when that is missing or partial, by the mesh's namespace
//! name prefix.
//!
//! What a mesh leaves on the machine is: the runtime and its child processes (recorded in the
//! state file with their start times), processes inside its network namespaces, the namespaces
//! themselves (bind mounts under `/var/run/netns`, named `amb-<id>-...`; the pod network's
//! bridge, veths and service rules live inside them and go with them), and the state folder.
//! Nothing is ever added to the machine's own namespace, so nothing there is touched other than
//! the recorded processes, and those only while their PID and start time still match.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::LocalError;
use super::state::{MeshState, StateDir};
use crate::sys::netns::Netns;
use crate::sys::process::{ProcessRecord, processes_in_netns};

#[cfg(test)]
mod tests;

/// Where `ip netns add` bind-mounts named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// How long the runtime gets to clean up after itself on SIGTERM.
const RUNTIME_GRACE: Duration = Duration::from_secs(10);
/// How long other processes get between SIGTERM and SIGKILL.
const PROCESS_GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(50);

/// What [`teardown`] found and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// Whether there was anything of a mesh here: a state folder, or namespaces with its prefix.
    pub found: bool,
    /// The runtime was running and was stopped.
    pub runtime_stopped: bool,
    /// Processes (besides the runtime) that were signalled.
    pub processes: usize,
    /// Network namespaces deleted, by name.
    pub namespaces: Vec<String>,
    /// The state folder existed and is gone (removed by us or by the runtime's own cleanup).
    pub state_dir_removed: bool,
    /// Things worth telling that did not stop the teardown (an unreadable state file).
    pub warnings: Vec<String>,
}

/// What is left of a mesh: empty after a successful [`teardown`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Our network namespaces still under `/var/run/netns`.
    pub namespaces: Vec<String>,
    /// Recorded processes still running, and processes in our namespaces.
    pub processes: Vec<ProcessRecord>,
    /// The state folder, if it still exists.
    pub state_dir: Option<PathBuf>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.processes.is_empty() && self.state_dir.is_none()
    }
}

impl fmt::Display for Leftovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "nothing left");
        }
        let mut parts = Vec::new();
        if !self.namespaces.is_empty() {
            parts.push(format!("network namespaces {}", self.namespaces.join(", ")));
        }
        if !self.processes.is_empty() {
            let pids: Vec<String> = self.processes.iter().map(|p| p.pid.to_string()).collect();
            parts.push(format!("processes {}", pids.join(", ")));
        }
        if let Some(dir) = &self.state_dir {
            parts.push(format!("state folder {}", dir.display()));
        }
        write!(f, "left behind: {}", parts.join("; "))
    }
}

/// Stops and removes the mesh kept in `dir`: SIGTERM to the runtime (it cleans up itself) with
/// up to 10 s to exit, then SIGTERM (SIGKILL after 3 s) to every recorded process and every
/// process in a namespace named with the mesh's prefix, `ip netns delete` for those namespaces,
/// and the state folder removed. Safe to run again: the second run finds nothing.
///
/// Every step is attempted even when an earlier one fails; the failures are returned together.
pub fn teardown(dir: &StateDir) -> Result<TeardownReport, LocalError> {
    let mut report = TeardownReport::default();
    let mut failures = Vec::new();
    let dir_existed = dir.root().exists();

    // A state file that does not parse (a crash mid-write of an older format, say) must not
    // stop `down`: the prefix still finds the namespaces.
    let state = dir.load().unwrap_or_else(|e| {
        report.warnings.push(format!("{e}; removing by name prefix instead"));
        None
    });

    if let Some(runtime) = state.as_ref().and_then(|s| s.runtime)
        && runtime.is_alive()
    {
        runtime.signal(Signal::SIGTERM);
        if !wait_gone(&[runtime], RUNTIME_GRACE) {
            runtime.signal(Signal::SIGKILL);
            wait_gone(&[runtime], PROCESS_GRACE);
        }
        report.runtime_stopped = true;
    }

    // The runtime may have restarted a process after our first read; a second read (if its
    // cleanup left the file) sees those too.
    let later = dir.load().ok().flatten();
    let prefixes = prefixes(dir, state.as_ref());
    let namespaces = match our_namespaces(&prefixes) {
        Ok(names) => names,
        Err(e) => {
            failures.push(e.to_string());
            Vec::new()
        }
    };

    let mut targets: HashSet<ProcessRecord> = HashSet::new();
    for state in state.iter().chain(later.iter()) {
        targets.extend(recorded_processes(state));
    }
    let host = host_netns_inodes();
    for name in &namespaces {
        match Netns::open(&Path::new(NETNS_DIR).join(name)) {
            // Guard against a bind mount of the machine's own namespace under one of our names:
            // its processes are not ours.
            Ok(netns) if host.contains(&netns.inode()) => {
                failures.push(format!("{NETNS_DIR}/{name} is the machine's own network namespace; not touching it"))
            }
            Ok(netns) => targets.extend(processes_in_netns(netns.inode())),
            // A dangling bind mount (its namespace already gone) is still deleted below.
            Err(_) => {}
        }
    }
    let me = std::process::id();
    let mut targets: Vec<ProcessRecord> = targets.into_iter().filter(|p| p.pid != me && p.is_alive()).collect();
    targets.sort_by_key(|p| p.pid);
    report.processes = stop(&targets);

    for name in &namespaces {
        match delete_netns(name) {
            Ok(()) => report.namespaces.push(name.clone()),
            Err(e) => failures.push(e),
        }
    }

    if dir.root().exists()
        && let Err(e) = remove_state_dir(dir)
    {
        failures.push(e);
    }
    report.state_dir_removed = dir_existed && !dir.root().exists();
    report.found = dir_existed || !namespaces.is_empty() || report.runtime_stopped || report.processes > 0;

    if failures.is_empty() {
        Ok(report)
    } else {
        Err(LocalError::Failed(format!(
            "tearing down the local mesh at {}: {}",
            dir.root().display(),
            failures.join("; ")
        )))
    }
}

/// What of the mesh in `dir` is still there, from its state file (if any) and its prefix.
pub fn leftovers(dir: &StateDir) -> Leftovers {
    let state = dir.load().ok().flatten();
    leftovers_of(dir, state.as_ref())
}

/// Like [`leftovers`], with a state read earlier: after `down` the state file is gone, so a test
/// that wants to check the recorded processes keeps a copy from before.
pub fn leftovers_of(dir: &StateDir, state: Option<&MeshState>) -> Leftovers {
    let prefixes = prefixes(dir, state);
    let namespaces = our_namespaces(&prefixes).unwrap_or_default();
    let mut processes: HashSet<ProcessRecord> = HashSet::new();
    if let Some(state) = state {
        processes
            .extend(state.runtime.iter().copied().chain(recorded_processes(state)).filter(ProcessRecord::is_alive));
    }
    let host = host_netns_inodes();
    for name in &namespaces {
        if let Ok(netns) = Netns::open(&Path::new(NETNS_DIR).join(name))
            && !host.contains(&netns.inode())
        {
            processes.extend(processes_in_netns(netns.inode()));
        }
    }
    let mut processes: Vec<ProcessRecord> = processes.into_iter().collect();
    processes.sort_by_key(|p| p.pid);
    Leftovers { namespaces, processes, state_dir: dir.root().exists().then(|| dir.root().to_path_buf()) }
}

/// The component and container processes the state records (not the runtime).
fn recorded_processes(state: &MeshState) -> impl Iterator<Item = ProcessRecord> + '_ {
    let components = state.components.iter().filter_map(|c| c.process);
    let containers = state.pods.iter().flat_map(|p| p.containers.iter().filter_map(|c| c.process));
    components.chain(containers)
}

/// The folder's own prefix, and the state file's if it differs (a folder reached through another
/// path), as long as it has the shape of ours: a malformed prefix such as `""` must never match
/// every namespace on the machine.
fn prefixes(dir: &StateDir, state: Option<&MeshState>) -> Vec<String> {
    let mut prefixes = vec![dir.netns_prefix()];
    if let Some(state) = state
        && is_mesh_prefix(&state.netns_prefix)
        && !prefixes.contains(&state.netns_prefix)
    {
        prefixes.push(state.netns_prefix.clone());
    }
    prefixes
}

/// `amb-` + 8 lowercase hex digits + `-`.
fn is_mesh_prefix(prefix: &str) -> bool {
    prefix
        .strip_prefix("amb-")
        .and_then(|rest| rest.strip_suffix('-'))
        .is_some_and(|id| id.len() == 8 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Names under `/var/run/netns` starting with one of `prefixes`, sorted.
fn our_namespaces(prefixes: &[String]) -> Result<Vec<String>, LocalError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LocalError::Io { what: format!("listing {NETNS_DIR}"), source: e }),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| prefixes.iter().any(|prefix| name.starts_with(prefix.as_str())))
        .collect();
    names.sort();
    Ok(names)
}

/// The inodes of the machine's own network namespace (PID 1's) and of ours, which teardown never
/// enumerates processes in.
fn host_netns_inodes() -> Vec<u64> {
    ["/proc/1/ns/net", "/proc/self/ns/net"]
        .iter()
        .filter_map(|path| Netns::open(Path::new(path)).ok())
        .map(|netns| netns.inode())
        .collect()
}

/// SIGTERM to each process, SIGKILL to those still running after [`PROCESS_GRACE`]; returns how
/// many were signalled.
fn stop(processes: &[ProcessRecord]) -> usize {
    let signalled: Vec<ProcessRecord> = processes.iter().copied().filter(|p| p.signal(Signal::SIGTERM)).collect();
    if !wait_gone(&signalled, PROCESS_GRACE) {
        for process in &signalled {
            process.signal(Signal::SIGKILL);
        }
        wait_gone(&signalled, PROCESS_GRACE);
    }
    signalled.len()
}

/// Waits until none of `processes` runs; returns whether that happened within `timeout`.
fn wait_gone(processes: &[ProcessRecord], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !processes.iter().any(ProcessRecord::is_alive) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

fn delete_netns(name: &str) -> Result<(), String> {
    let output = std::process::Command::new("ip")
        .args(["netns", "delete", name])
        .output()
        .map_err(|e| format!("running `ip netns delete {name}`: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    // Someone else (the runtime's own cleanup) may have just deleted it.
    if !Path::new(NETNS_DIR).join(name).exists() {
        return Ok(());
    }
    Err(format!(
        "`ip netns delete {name}` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// What a state folder may hold at its top level (see [`StateDir`]).
const STATE_DIR_ENTRIES: &[&str] =
    &["state.json", ".state.json.tmp", "cluster", "controlplane", "tokens", "nodes", "cni", "pods", "logs"];

/// Removes the state folder, but only if it is one: `--state-dir` is user input, and a typo such
/// as `--state-dir ~` must not delete a home folder. A folder with a state file, or holding only
/// entries of the layout (what a crashed `up` leaves), is removed.
fn remove_state_dir(dir: &StateDir) -> Result<(), String> {
    let root = dir.root();
    let has_state = dir.state_file().exists();
    let foreign: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| format!("listing {}: {e}", root.display()))?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !STATE_DIR_ENTRIES.contains(&name.as_str()))
        .collect();
    if root.parent().is_none() || (!has_state && !foreign.is_empty()) {
        return Err(format!(
            "{} does not look like a local mesh's state folder (it has no state.json and holds {}); not removing it",
            root.display(),
            foreign.join(", ")
        ));
    }
    match std::fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", root.display())),
    }
}
