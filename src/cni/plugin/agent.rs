//! The plugin's side of the node agent protocol ([`crate::cni::protocol`]): one request line,
//! one response line, per connection. Blocking I/O: the plugin is a short-lived process.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cni::protocol::{AgentResponse, PluginRequest};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Nobody listens (agent not started yet, restarting, or dead): the runtime should retry.
    #[error("node agent not reachable at {}: {source}", socket.display())]
    Unreachable { socket: PathBuf, source: io::Error },
    #[error("node agent at {} did not answer within {timeout:?}", socket.display())]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("talking to the node agent at {}: {source}", socket.display())]
    Io { socket: PathBuf, source: io::Error },
    #[error("node agent at {} answered {answer:?}, which is not a response of the protocol: {reason}", socket.display())]
    Protocol { socket: PathBuf, answer: String, reason: String },
    /// The agent understood the request and refused it.
    #[error("node agent at {} refused the request: {message}", socket.display())]
    Refused { socket: PathBuf, message: String },
}

impl AgentError {
    /// Whether the runtime may simply try again later (CNI error code 11).
    pub fn is_transient(&self) -> bool {
        matches!(self, AgentError::Unreachable { .. } | AgentError::Timeout { .. })
    }
}

pub struct AgentClient {
    socket: PathBuf,
    timeout: Duration,
}

impl AgentClient {
    pub fn new(socket: PathBuf, timeout: Duration) -> AgentClient {
        AgentClient { socket, timeout }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `request` and returns the agent's answer; an `Error` answer is [`AgentError::Refused`].
    pub fn request(&self, request: &PluginRequest) -> Result<AgentResponse, AgentError> {
        let socket = || self.socket.clone();
        let stream =
            UnixStream::connect(&self.socket).map_err(|source| AgentError::Unreachable { socket: socket(), source })?;
        let io_error = |source: io::Error| {
            if matches!(source.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                AgentError::Timeout { socket: socket(), timeout: self.timeout }
            } else {
                AgentError::Io { socket: socket(), source }
            }
        };
        stream.set_read_timeout(Some(self.timeout)).map_err(io_error)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io_error)?;
        let mut line = serde_json::to_string(request).expect("protocol requests serialize");
        line.push('\n');
        (&stream).write_all(line.as_bytes()).map_err(io_error)?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer).map_err(io_error)?;
        if answer.is_empty() {
            return Err(AgentError::Protocol {
                socket: socket(),
                answer,
                reason: "connection closed without a response".to_owned(),
            });
        }
        match serde_json::from_str::<AgentResponse>(answer.trim_end()) {
            Ok(AgentResponse::Error { message }) => Err(AgentError::Refused { socket: socket(), message }),
            Ok(response) => Ok(response),
            Err(e) => Err(AgentError::Protocol { socket: socket(), answer, reason: e.to_string() }),
        }
    }

    /// `Enrolled{namespace, name}`.
    pub fn enrolled(&self, namespace: &str, name: &str) -> Result<bool, AgentError> {
        let request = PluginRequest::Enrolled { namespace: namespace.to_owned(), name: name.to_owned() };
        match self.request(&request)? {
            AgentResponse::Enrolled { enrolled } => Ok(enrolled),
            other => Err(self.unexpected(&other, "Enrolled")),
        }
    }

    /// A request answered by `Ok` (`Added`, `Deleted`).
    pub fn expect_ok(&self, request: &PluginRequest) -> Result<(), AgentError> {
        match self.request(request)? {
            AgentResponse::Ok => Ok(()),
            other => Err(self.unexpected(&other, "Ok")),
        }
    }

    fn unexpected(&self, response: &AgentResponse, wanted: &str) -> AgentError {
        AgentError::Protocol {
            socket: self.socket.clone(),
            answer: format!("{response:?}"),
            reason: format!("expected {wanted}"),
        }
    }
}
