//! The plugin's socket: one JSON request line and one JSON response line per connection
//! ([`crate::cni::protocol`]).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};

use super::Context;
use super::pods::ActivePod;
use super::reconcile::{belongs, pod_info};
use crate::cni::protocol::{AgentResponse, PluginPod, PluginRequest};
use crate::mesh::{Workload, WorkloadKey};
use crate::sys::netns::Netns;

/// A request line longer than this is not the plugin's.
const MAX_REQUEST: u64 = 64 * 1024;
/// A plugin that connects and says nothing is dropped after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The listening socket; its file is removed on drop (only if it is still ours).
pub(crate) struct PluginListener {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

impl PluginListener {
    /// Binds `path` (creating its folder, replacing a stale socket, never another kind of file),
    /// readable and writable by root only: whoever talks here can take pods out of the mesh.
    pub fn bind(path: &Path) -> io::Result<Self> {
        let context = |e: io::Error, what: &str| crate::sys::context(e, format!("{what} {}", path.display()));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| context(e, "create the folder of"))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|e| context(e, "remove stale socket"))?
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(context(e, "inspect")),
        }
        let listener = UnixListener::bind(path).map_err(|e| context(e, "bind"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| context(e, "chmod"))?;
        let inode = std::fs::symlink_metadata(path).map_err(|e| context(e, "inspect"))?.ino();
        Ok(PluginListener { listener, path: path.to_owned(), inode })
    }
}

impl Drop for PluginListener {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|meta| meta.ino() == self.inode)
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            warn!(path = %self.path.display(), error = %e, "cni agent: could not remove the plugin socket");
        }
    }
}

pub(crate) async fn serve(listener: PluginListener, ctx: Arc<Context>) {
    loop {
        match listener.listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle_connection(stream, ctx.clone()));
            }
            Err(e) => {
                warn!(path = %listener.path.display(), error = %e, "cni agent: accept on the plugin socket");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle_connection(stream: UnixStream, ctx: Arc<Context>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = tokio::time::timeout(READ_TIMEOUT, BufReader::new(read).take(MAX_REQUEST).read_line(&mut line)).await;
    let response = match read {
        Err(_) => AgentResponse::Error { message: format!("no request within {READ_TIMEOUT:?}") },
        Ok(Err(e)) => AgentResponse::Error { message: format!("reading the request: {e}") },
        Ok(Ok(_)) => match serde_json::from_str::<PluginRequest>(line.trim()) {
            Ok(request) => answer(&ctx, request).await,
            Err(e) => AgentResponse::Error { message: format!("malformed request {:?}: {e}", truncate(&line)) },
        },
    };
    let mut text = serde_json::to_string(&response).expect("responses always serialize");
    text.push('\n');
    if let Err(e) = write.write_all(text.as_bytes()).await {
        debug!(error = %e, "cni agent: plugin went away before the response");
    }
}

fn truncate(text: &str) -> &str {
    let end = text.char_indices().nth(200).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

pub(crate) async fn answer(ctx: &Context, request: PluginRequest) -> AgentResponse {
    match request {
        PluginRequest::Enrolled { namespace, name } => {
            let key = WorkloadKey { namespace, name };
            match wait_for_workload(ctx, &key).await {
                Some(workload) => AgentResponse::Enrolled { enrolled: belongs(&workload, &ctx.node_name) },
                // Saying "no" could start a pod that belongs in the mesh outside it: the plugin
                // fails ADD and the runtime retries once the store has caught up.
                None => AgentResponse::Error {
                    message: format!(
                        "pod {}/{} is not in the agent's config store after {:?}; retry later",
                        key.namespace, key.name, ctx.enrolled_wait
                    ),
                },
            }
        }
        PluginRequest::Added { pod } => added(ctx, pod).await,
        PluginRequest::Deleted { pod } => {
            let key = WorkloadKey { namespace: pod.namespace.clone(), name: pod.name.clone() };
            if ctx.pods.deactivate(&key, true).is_some() {
                info!(pod = %format!("{}/{}", key.namespace, key.name), "cni agent: pod deleted; removed from ztunnel");
            }
            AgentResponse::Ok
        }
    }
}

async fn added(ctx: &Context, pod: PluginPod) -> AgentResponse {
    let key = WorkloadKey { namespace: pod.namespace.clone(), name: pod.name.clone() };
    let Some(workload) = wait_for_workload(ctx, &key).await else {
        return AgentResponse::Error {
            message: format!("pod {}/{} is not in the agent's config store", key.namespace, key.name),
        };
    };
    let netns = match Netns::open(&pod.netns) {
        Ok(netns) => netns,
        Err(e) => return AgentResponse::Error { message: format!("pod {}/{}: {e}", key.namespace, key.name) },
    };
    let mut info = pod_info(&workload);
    if workload.uid.is_none()
        && let Some(uid) = pod.uid.filter(|uid| !uid.is_empty())
    {
        info.uid = uid;
    }
    let uid = info.uid.clone();
    let ips = if pod.ips.is_empty() { workload.ips.clone() } else { pod.ips.clone() };
    ctx.pods.activate(key.clone(), ActivePod { info, netns, ips }, true);
    // Answer only once ztunnel serves the pod: its traffic is already redirected to ztunnel's
    // in-pod ports, so a pod must not start before they listen. The plugin then fails ADD (and
    // takes its rules out); the runtime retries.
    if !ctx.pods.wait_acked(&uid, ctx.ztunnel_wait).await {
        ctx.pods.deactivate(&key, false);
        return AgentResponse::Error {
            message: format!(
                "ztunnel on this node has not taken pod {}/{} within {:?}: is it running and connected to the agent?",
                key.namespace, key.name, ctx.ztunnel_wait
            ),
        };
    }
    info!(pod = %format!("{}/{}", pod.namespace, pod.name), netns = %pod.netns.display(), "cni agent: pod added by the plugin and taken by ztunnel");
    AgentResponse::Ok
}

/// The pod's workload, waiting up to `enrolled_wait` for the store to list it.
async fn wait_for_workload(ctx: &Context, key: &WorkloadKey) -> Option<Arc<Workload>> {
    let (found, mut batches) = ctx.mesh.subscribe(|index| index.workload(key).cloned());
    if found.is_some() {
        return found;
    }
    let deadline = tokio::time::Instant::now() + ctx.enrolled_wait;
    loop {
        match tokio::time::timeout_at(deadline, batches.recv()).await {
            Err(_) => return None,
            Ok(Ok(batch)) => {
                let listed = batch
                    .events
                    .iter()
                    .any(|event| matches!(event, crate::mesh::MeshEvent::WorkloadUpserted(w) if &w.key == key));
                if listed {
                    return ctx.mesh.read(|index| index.workload(key).cloned());
                }
            }
            // Lagged: look again directly; Closed: the index is gone.
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                if let Some(found) = ctx.mesh.read(|index| index.workload(key).cloned()) {
                    return Some(found);
                }
                batches = batches.resubscribe();
            }
            Ok(Err(_)) => return None,
        }
    }
}
