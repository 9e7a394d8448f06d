//! Linux-specific code: network namespaces, socket options and unix-socket descriptor passing.
//! Every `unsafe` block of the crate lives here, kept small and commented.

pub mod netns;
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
