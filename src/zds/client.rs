//! The ztunnel end of ZDS: connect to the node agent, say hello, apply its requests to a
//! [`PodHandler`] and ack each one. Reconnects forever with backoff; pods survive reconnects
//! (the agent resends its snapshot and ztunnel reconciles at `snapshot_sent`).

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prost::Message;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::PodInfo;
use super::proto::{self, workload_request::Payload, workload_response};
use crate::sys::netns::Netns;
use crate::sys::seqpacket::SeqpacketStream;

/// What ztunnel does with the agent's requests. Calls come one at a time, in order.
pub trait PodHandler: Send + Sync + 'static {
    /// Serve this pod (idempotent by uid: a re-add after reconnect replaces nothing that works).
    fn add(&self, pod: PodInfo, netns: Netns) -> BoxFuture<'_, Result<(), String>>;
    /// During a snapshot: keep serving `uid`; Err if unknown.
    fn keep(&self, uid: &str) -> BoxFuture<'_, Result<(), String>>;
    /// Stop serving `uid`: close its listeners, drain its connections.
    fn del(&self, uid: &str) -> BoxFuture<'_, ()>;
    /// Snapshot complete: drop every pod whose uid is not in `seen`.
    fn snapshot_done(&self, seen: &HashSet<String>) -> BoxFuture<'_, ()>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZdsClientConfig {
    /// The agent's SOCK_SEQPACKET socket.
    pub socket: PathBuf,
    /// First reconnect delay; doubled per failed attempt up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// The client's state, for readiness and debugging.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZdsStatus {
    /// Connected to the agent and hello sent.
    pub connected: bool,
    /// The current connection's snapshot is complete (reset on every reconnect).
    pub snapshot_received: bool,
    /// The last connection failure or rejected request, kept across reconnects.
    pub last_error: Option<String>,
}

/// A request decoded and checked, with the descriptor it needs.
#[derive(Debug)]
pub(crate) enum Request {
    Add { pod: PodInfo, netns: Netns },
    Keep { uid: String },
    Del { uid: String },
    SnapshotSent,
}

/// Decodes one datagram. The error text goes back to the agent in the ack. Descriptors not kept
/// are closed when `fds` drops.
pub(crate) fn parse_request(data: &[u8], mut fds: Vec<OwnedFd>) -> Result<Request, String> {
    let request = proto::WorkloadRequest::decode(data).map_err(|e| format!("malformed WorkloadRequest: {e}"))?;
    let payload = request.payload.ok_or("WorkloadRequest without payload")?;
    let no_fds = |what: &str, fds: &[OwnedFd]| match fds.len() {
        0 => Ok(()),
        n => Err(format!("{what}: unexpected descriptors ({n}), only add carries one")),
    };
    let uid_of = |what: &str, uid: String| if uid.is_empty() { Err(format!("{what} with empty uid")) } else { Ok(uid) };
    match payload {
        Payload::Add(add) => {
            let uid = uid_of("add", add.uid)?;
            if fds.len() != 1 {
                return Err(format!("add {uid}: expected 1 network namespace descriptor, got {}", fds.len()));
            }
            let info = add.workload_info.ok_or_else(|| format!("add {uid}: missing workload_info"))?;
            let netns = Netns::from_fd(fds.remove(0)).map_err(|e| format!("add {uid}: {e}"))?;
            let pod =
                PodInfo { uid, name: info.name, namespace: info.namespace, service_account: info.service_account };
            Ok(Request::Add { pod, netns })
        }
        Payload::Keep(keep) => {
            let uid = uid_of("keep", keep.uid)?;
            no_fds(&format!("keep {uid}"), &fds)?;
            Ok(Request::Keep { uid })
        }
        Payload::Del(del) => {
            let uid = uid_of("del", del.uid)?;
            no_fds(&format!("del {uid}"), &fds)?;
            Ok(Request::Del { uid })
        }
        Payload::SnapshotSent(_) => {
            no_fds("snapshot_sent", &fds)?;
            Ok(Request::SnapshotSent)
        }
    }
}

pub(crate) fn encode_ack(result: &Result<(), String>) -> Vec<u8> {
    let error = result.as_ref().err().cloned().unwrap_or_default();
    proto::WorkloadResponse { payload: Some(workload_response::Payload::Ack(proto::Ack { error })) }.encode_to_vec()
}

pub(crate) fn encode_hello() -> Vec<u8> {
    proto::ZdsHello { version: proto::Version::V1 as i32 }.encode_to_vec()
}

/// Exponential reconnect delay.
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Backoff { initial, max, next: initial }
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

/// Runs forever: connect, hello, serve requests; on any failure wait and reconnect. The handler
/// keeps its pods across reconnects.
pub async fn run_client(config: ZdsClientConfig, handler: Arc<dyn PodHandler>, status: watch::Sender<ZdsStatus>) {
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    let socket = config.socket.display().to_string();
    loop {
        match SeqpacketStream::connect(&config.socket).await {
            Ok(stream) => {
                let mut session = Session { stream: &stream, handler: &*handler, status: &status, socket: &socket };
                let ended = session.serve(&mut backoff).await;
                warn!(socket, reason = ended, "zds: connection to the node agent ended");
                status.send_modify(|s| {
                    s.connected = false;
                    s.snapshot_received = false;
                    s.last_error = Some(ended);
                });
            }
            Err(e) => {
                let error = format!("connect to the node agent: {e}");
                debug!(socket, error, "zds: connect failed");
                status.send_if_modified(|s| {
                    let changed = s.connected || s.last_error.as_deref() != Some(&error);
                    s.connected = false;
                    s.snapshot_received = false;
                    s.last_error = Some(error);
                    changed
                });
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

struct Session<'a> {
    stream: &'a SeqpacketStream,
    handler: &'a dyn PodHandler,
    status: &'a watch::Sender<ZdsStatus>,
    socket: &'a str,
}

impl Session<'_> {
    /// Serves one connection until it fails; returns why it ended.
    async fn serve(&mut self, backoff: &mut Backoff) -> String {
        if let Err(e) = self.stream.send(&encode_hello(), &[]).await {
            return format!("send hello: {e}");
        }
        info!(socket = self.socket, "zds: connected to the node agent");
        self.status.send_modify(|s| {
            s.connected = true;
            s.snapshot_received = false;
        });
        // Pods added or kept on this connection, for reconciliation at snapshot_sent.
        let mut seen = HashSet::new();
        loop {
            let result = match self.stream.recv().await {
                Ok(None) => return "closed by the node agent".to_owned(),
                Ok(Some((data, fds))) => match parse_request(&data, fds) {
                    Ok(request) => self.apply(request, &mut seen).await,
                    Err(e) => Err(e),
                },
                // An oversized datagram: answer it, the connection itself is fine.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
                Err(e) => return format!("receive: {e}"),
            };
            match &result {
                // The agent is talking to us: the next disconnect starts a fresh backoff.
                Ok(()) => backoff.reset(),
                Err(e) => {
                    warn!(socket = self.socket, error = e, "zds: request rejected");
                    self.status.send_modify(|s| s.last_error = Some(e.clone()));
                }
            }
            if let Err(e) = self.stream.send(&encode_ack(&result), &[]).await {
                return format!("send ack: {e}");
            }
        }
    }

    async fn apply(&mut self, request: Request, seen: &mut HashSet<String>) -> Result<(), String> {
        match request {
            Request::Add { pod, netns } => {
                let uid = pod.uid.clone();
                debug!(uid, pod = %format_args!("{}/{}", pod.namespace, pod.name), netns = netns.inode(), "zds: add");
                self.handler.add(pod, netns).await.map_err(|e| format!("add {uid}: {e}"))?;
                seen.insert(uid);
            }
            Request::Keep { uid } => {
                debug!(uid, "zds: keep");
                self.handler.keep(&uid).await.map_err(|e| format!("keep {uid}: {e}"))?;
                seen.insert(uid);
            }
            Request::Del { uid } => {
                debug!(uid, "zds: del");
                self.handler.del(&uid).await;
                seen.remove(&uid);
            }
            Request::SnapshotSent => {
                info!(pods = seen.len(), "zds: snapshot received");
                self.handler.snapshot_done(seen).await;
                self.status.send_modify(|s| s.snapshot_received = true);
            }
        }
        Ok(())
    }
}
