//! The node agent end of ZDS: accept ztunnel's connection, check its hello, send requests and
//! wait for each ack. Used by tests now and by the CNI agent.

use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use tracing::warn;

use super::PodInfo;
use super::proto::{self, workload_request::Payload, workload_response};
use crate::sys::seqpacket::{SeqpacketListener, SeqpacketStream};

/// How long a new connection may take to send its hello before `accept` gives up on it.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ZdsError {
    #[error("zds: {action} on {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("zds: ztunnel closed the connection on {path} while the agent waited for {waiting_for}")]
    Closed { path: PathBuf, waiting_for: &'static str },
    #[error("zds: malformed {what} from ztunnel on {path}: {detail}")]
    Protocol { path: PathBuf, what: &'static str, detail: String },
    #[error("zds: ztunnel on {path} speaks protocol version {version}, the agent speaks V1")]
    UnsupportedVersion { path: PathBuf, version: i32 },
    #[error("zds: no hello from ztunnel on {path} within {timeout:?}")]
    HelloTimeout { path: PathBuf, timeout: Duration },
    #[error("zds: request rejected by ztunnel: {0}")]
    Rejected(String),
}

/// The agent's listening socket.
#[derive(Debug)]
pub struct ZdsListener {
    listener: SeqpacketListener,
    /// Inode of the socket file we created, so Drop never unlinks a successor's socket.
    inode: u64,
}

impl ZdsListener {
    /// Binds `path`, first removing a stale socket file left there (never any other kind of file).
    /// Needs a tokio runtime. The socket file is removed again on drop.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
                .map_err(|e| crate::sys::context(e, format!("remove stale zds socket {}", path.display())))?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("zds socket path {} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::sys::context(e, format!("inspect zds socket path {}", path.display()))),
        }
        let listener = SeqpacketListener::bind(path)?;
        let inode = std::fs::symlink_metadata(path)
            .map_err(|e| crate::sys::context(e, format!("inspect bound zds socket {}", path.display())))?
            .ino();
        Ok(ZdsListener { listener, inode })
    }

    pub fn path(&self) -> &Path {
        self.listener.path()
    }

    /// Accepts the next ztunnel connection and checks its hello (V1), waiting at most
    /// [`HELLO_TIMEOUT`] for it.
    pub async fn accept(&self) -> Result<ZdsConnection, ZdsError> {
        let path = self.path().to_owned();
        let stream = self.listener.accept().await.map_err(|source| ZdsError::Io {
            action: "accept",
            path: path.clone(),
            source,
        })?;
        let hello = tokio::time::timeout(HELLO_TIMEOUT, stream.recv())
            .await
            .map_err(|_| ZdsError::HelloTimeout { path: path.clone(), timeout: HELLO_TIMEOUT })?
            .map_err(|source| ZdsError::Io { action: "receive hello", path: path.clone(), source })?
            .ok_or_else(|| ZdsError::Closed { path: path.clone(), waiting_for: "the hello" })?;
        // A hello never carries descriptors; any sent are closed with `hello.1`.
        let hello = proto::ZdsHello::decode(hello.0.as_slice()).map_err(|e| ZdsError::Protocol {
            path: path.clone(),
            what: "hello",
            detail: e.to_string(),
        })?;
        if hello.version != proto::Version::V1 as i32 {
            return Err(ZdsError::UnsupportedVersion { path, version: hello.version });
        }
        Ok(ZdsConnection { stream, path })
    }
}

impl Drop for ZdsListener {
    fn drop(&mut self) {
        let path = self.listener.path();
        // Only our own socket file: another listener may have replaced it since.
        if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.ino() == self.inode)
            && let Err(e) = std::fs::remove_file(path)
        {
            warn!(path = %path.display(), error = %e, "zds: could not remove socket file");
        }
    }
}

/// One ztunnel connection, hello done. Each request waits for its ack.
#[derive(Debug)]
pub struct ZdsConnection {
    stream: SeqpacketStream,
    path: PathBuf,
}

impl ZdsConnection {
    /// Hands ztunnel a pod and its network namespace descriptor.
    pub async fn add(&mut self, pod: &PodInfo, netns: BorrowedFd<'_>) -> Result<(), ZdsError> {
        let payload = Payload::Add(proto::AddWorkload {
            uid: pod.uid.clone(),
            workload_info: Some(proto::WorkloadInfo {
                name: pod.name.clone(),
                namespace: pod.namespace.clone(),
                service_account: pod.service_account.clone(),
            }),
        });
        self.request(payload, &[netns]).await
    }

    /// During the snapshot: a pod ztunnel should keep serving.
    pub async fn keep(&mut self, uid: &str) -> Result<(), ZdsError> {
        self.request(Payload::Keep(proto::KeepWorkload { uid: uid.to_owned() }), &[]).await
    }

    /// A pod that is gone.
    pub async fn del(&mut self, uid: &str) -> Result<(), ZdsError> {
        self.request(Payload::Del(proto::DelWorkload { uid: uid.to_owned() }), &[]).await
    }

    /// The snapshot is complete.
    pub async fn snapshot_sent(&mut self) -> Result<(), ZdsError> {
        self.request(Payload::SnapshotSent(proto::SnapshotSent {}), &[]).await
    }

    /// Sends an arbitrary datagram and waits for its ack; for tests of malformed requests.
    pub async fn send_raw(&mut self, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), ZdsError> {
        self.stream.send(data, fds).await.map_err(|source| ZdsError::Io {
            action: "send request",
            path: self.path.clone(),
            source,
        })?;
        self.wait_ack().await
    }

    async fn request(&mut self, payload: Payload, fds: &[BorrowedFd<'_>]) -> Result<(), ZdsError> {
        let data = proto::WorkloadRequest { payload: Some(payload) }.encode_to_vec();
        self.send_raw(&data, fds).await
    }

    async fn wait_ack(&mut self) -> Result<(), ZdsError> {
        let path = &self.path;
        let (data, _fds) = self
            .stream
            .recv()
            .await
            .map_err(|source| ZdsError::Io { action: "receive ack", path: path.clone(), source })?
            .ok_or_else(|| ZdsError::Closed { path: path.clone(), waiting_for: "an ack" })?;
        let response = proto::WorkloadResponse::decode(data.as_slice()).map_err(|e| ZdsError::Protocol {
            path: path.clone(),
            what: "WorkloadResponse",
            detail: e.to_string(),
        })?;
        match response.payload {
            Some(workload_response::Payload::Ack(ack)) if ack.error.is_empty() => Ok(()),
            Some(workload_response::Payload::Ack(ack)) => Err(ZdsError::Rejected(ack.error)),
            None => {
                Err(ZdsError::Protocol { path: path.clone(), what: "WorkloadResponse", detail: "no payload".into() })
            }
        }
    }
}
