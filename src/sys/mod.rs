//! Linux-specific code: network namespaces, socket options and unix-socket descriptor passing.
//! Every `unsafe` block of the crate lives here, kept small and commented.

pub mod memory;
pub mod netns;
pub mod process;
pub mod seqpacket;
pub mod socket;

#[cfg(test)]
mod tests;

use std::fmt::Display;
use std::io;

/// Prefixes an I/O error with what was being done, keeping its kind (callers match on kinds).
pub(crate) fn context(error: io::Error, what: impl Display) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// Helpers for unit tests across the crate.
#[cfg(test)]
pub(crate) mod testing {
    use std::process::Command;

    use nix::sched::{CloneFlags, unshare};

    use super::netns::Netns;

    /// A new, empty network namespace with `lo` up, made with unshare(2) on a throwaway thread
    /// (needs root). The namespace lives as long as the handle; nothing is named or left behind.
    pub(crate) fn fresh_netns() -> Netns {
        std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): tests need root");
            // The child process starts in this thread's namespace.
            let status = Command::new("ip").args(["link", "set", "lo", "up"]).status().expect("run `ip` (iproute2)");
            assert!(status.success(), "ip link set lo up: {status}");
            Netns::current().expect("open the new namespace")
        })
        .join()
        .expect("namespace thread")
    }
}
