//! Processes by identity: a PID alone can be reused once its process exits, so a process the
//! local runtime started is recorded with its start time (from `/proc/<pid>/stat`) and is only
//! ever signalled while both still match.

use std::io;
use std::os::unix::fs::MetadataExt;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process as it was when recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot at which the process started.
    pub start_time: u64,
}

impl ProcessRecord {
    /// Records the running process `pid`.
    pub fn of(pid: u32) -> io::Result<Self> {
        Ok(ProcessRecord { pid, start_time: start_time(pid)? })
    }

    /// Whether the recorded process still runs (not a zombie, and not a new process that got
    /// the same PID).
    pub fn is_alive(&self) -> bool {
        start_time(self.pid).is_ok_and(|t| t == self.start_time) && !is_zombie(self.pid)
    }

    /// Sends `signal` if the recorded process still runs; returns whether it was sent.
    pub fn signal(&self, signal: Signal) -> bool {
        if !self.is_alive() {
            return false;
        }
        let Ok(pid) = i32::try_from(self.pid) else { return false };
        signal::kill(Pid::from_raw(pid), signal).is_ok()
    }
}

/// The `stat` fields after the command name (which may hold spaces and parentheses).
fn stat_fields(pid: u32) -> io::Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| io::Error::other("bad stat"))?;
    Ok(after_name.split_whitespace().map(str::to_string).collect())
}

fn start_time(pid: u32) -> io::Result<u64> {
    // After the name: state is field 3, so starttime (field 22) is index 19.
    let fields = stat_fields(pid)?;
    fields.get(19).and_then(|f| f.parse().ok()).ok_or_else(|| io::Error::other(format!("no start time for {pid}")))
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).is_ok_and(|f| f.first().is_some_and(|s| s == "Z"))
}

/// Every process whose network namespace is the one with inode `netns_inode`: what runs in a
/// namespace this project created (pod processes, `local exec` commands), to be ended with it.
pub fn processes_in_netns(netns_inode: u64) -> Vec<ProcessRecord> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let in_netns = std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == netns_inode);
        if in_netns && let Ok(record) = ProcessRecord::of(pid) {
            found.push(record);
        }
    }
    found
}

/// Makes the kernel send SIGTERM to the child when the thread that started it exits: children
/// that must not outlive the runtime supervising them.
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; prctl is one system call and allocates
    // nothing.
    unsafe {
        command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(io::Error::from));
    }
}

/// Starts the child in a session of its own: it keeps running when the terminal that started
/// it goes away, and the terminal's Ctrl-C does not reach it.
pub fn new_session(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; setsid is one system call and allocates
    // nothing.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
}

/// Raises this process's open-file limit to the hard limit, as Istio's ztunnel does: a node
/// proxy holds two sockets per proxied connection, far beyond the usual soft limit of 1024.
/// Returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    Ok(hard.max(soft))
}
