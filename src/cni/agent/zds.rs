//! The ztunnel side: accept ztunnel's connection, send the full snapshot (an Add, with the pod's
//! namespace, for every pod in the mesh, each acked, then SnapshotSent), then forward every
//! change. A new connection replaces the previous one; a reconnecting ztunnel gets the full
//! snapshot again.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

use super::Context;
use super::pods::ZdsUpdate;
use crate::zds::{ZdsConnection, ZdsError, ZdsListener};

/// Aborts the connection task when dropped, so aborting `serve` also ends the connection
/// (ztunnel then sees the agent go away).
struct ConnectionTask(tokio::task::JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) async fn serve(listener: Arc<ZdsListener>, ctx: Arc<Context>) {
    let mut _current: Option<ConnectionTask> = None;
    loop {
        match listener.accept().await {
            Ok(connection) => {
                // One ztunnel per node: a new connection is a restarted ztunnel, and replaces
                // (drops, so aborts) the previous one.
                info!(socket = %listener.path().display(), "cni agent: ztunnel connected");
                _current = Some(ConnectionTask(tokio::spawn(serve_connection(connection, ctx.clone()))));
            }
            Err(e) => {
                warn!(error = %e, "cni agent: ztunnel connection failed before its hello");
                // Accept errors such as EMFILE would otherwise spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection(mut connection: ZdsConnection, ctx: Arc<Context>) {
    match stream(&mut connection, &ctx).await {
        Ok(()) => info!("cni agent: ztunnel connection replaced"),
        Err(ZdsError::Closed { .. }) => info!("cni agent: ztunnel disconnected"),
        Err(e) => warn!(error = %e, "cni agent: ztunnel connection ended"),
    }
}

async fn stream(connection: &mut ZdsConnection, ctx: &Context) -> Result<(), ZdsError> {
    // Hold the snapshot until the agent knows its pods (see `reconcile::run`).
    let mut synced = ctx.synced.clone();
    if synced.wait_for(|synced| *synced).await.is_err() {
        return Ok(());
    }
    let (snapshot, mut updates) = ctx.pods.subscribe();
    let count = snapshot.len();
    for pod in snapshot {
        send_add(connection, ctx, &pod.info, &pod.netns).await?;
    }
    connection.snapshot_sent().await?;
    info!(pods = count, "cni agent: snapshot sent to ztunnel");
    loop {
        match updates.recv().await {
            Ok(ZdsUpdate::Add { info, netns }) => send_add(connection, ctx, &info, &netns).await?,
            Ok(ZdsUpdate::Del { uid }) => match connection.del(&uid).await {
                Err(ZdsError::Rejected(reason)) => warn!(uid, reason, "cni agent: ztunnel rejected del"),
                other => other?,
            },
            Err(RecvError::Lagged(missed)) => {
                // Dropping the connection makes ztunnel reconnect and take a fresh snapshot.
                return Err(ZdsError::Rejected(format!(
                    "agent fell {missed} changes behind; reconnect for a snapshot"
                )));
            }
            Err(RecvError::Closed) => return Ok(()),
        }
    }
}

/// Sends an Add and records ztunnel's acknowledgement; a rejection concerns that pod only and is
/// logged, the connection goes on.
async fn send_add(
    connection: &mut ZdsConnection,
    ctx: &Context,
    info: &crate::zds::PodInfo,
    netns: &crate::sys::netns::Netns,
) -> Result<(), ZdsError> {
    match connection.add(info, netns.as_fd()).await {
        Ok(()) => {
            ctx.pods.acked(&info.uid);
            Ok(())
        }
        Err(ZdsError::Rejected(reason)) => {
            warn!(uid = %info.uid, pod = %format!("{}/{}", info.namespace, info.name), reason, "cni agent: ztunnel rejected add");
            Ok(())
        }
        other => other,
    }
}
