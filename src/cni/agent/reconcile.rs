//! Mesh index -> pods in the mesh: enrols the pods of this node that should be (finding their
//! namespace by IP), un-enrols those whose namespace or pod label changed (removing their
//! rules), and forgets pods that are gone. Pods added by the plugin arrive through
//! `plugin_server`; both paths meet in [`Pods`](super::pods::Pods).

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::Context;
use super::pods::ActivePod;
use crate::cni::iptables;
use crate::config::Store;
use crate::mesh::{MeshEvent, Workload, WorkloadKey};
use crate::sys::netns::Netns;
use crate::zds::PodInfo;

/// Whether `workload` belongs in the mesh on `node` (its IPs aside).
pub(crate) fn belongs(workload: &Workload, node: &str) -> bool {
    workload.enrolled && workload.node.as_deref() == Some(node)
}

/// What ztunnel is told about a pod: its uid when the store has one, else `<ns>/<name>`.
pub(crate) fn pod_info(workload: &Workload) -> PodInfo {
    PodInfo {
        uid: workload.uid.clone().unwrap_or_else(|| format!("{}/{}", workload.key.namespace, workload.key.name)),
        name: workload.key.name.clone(),
        namespace: workload.key.namespace.clone(),
        service_account: workload.identity.service_account.clone(),
    }
}

/// Follows the index. `synced` turns true once the store has synced and every pod it listed
/// then has had its first pass: a ZDS snapshot sent earlier would tell a reconnecting ztunnel
/// to drop pods the agent has not found again yet.
pub(crate) async fn run(ctx: Arc<Context>, store: Store, synced: watch::Sender<bool>) {
    store.synced().await;
    let target = store.snapshot().revision;
    let (_, mut batches) = ctx.mesh.subscribe(|_| ());
    while ctx.mesh.read(|index| index.revision()) < target {
        if let Err(RecvError::Closed) = batches.recv().await {
            return;
        }
    }
    let mut retry = tokio::time::interval(ctx.retry_interval);
    loop {
        let (_, mut batches) = ctx.mesh.subscribe(|_| ());
        full_pass(&ctx).await;
        if !*synced.borrow() {
            info!(pods = ctx.pods.active_keys().len(), "cni agent: pods of the node found; serving ztunnel");
            synced.send_replace(true);
        }
        loop {
            tokio::select! {
                batch = batches.recv() => match batch {
                    Ok(batch) => {
                        for event in &batch.events {
                            match event {
                                MeshEvent::WorkloadUpserted(w) => reconcile(&ctx, &w.key).await,
                                MeshEvent::WorkloadRemoved(key) => reconcile(&ctx, key).await,
                                _ => {}
                            }
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        warn!(missed, "cni agent: fell behind the mesh index; re-reading every pod");
                        break;
                    }
                    Err(RecvError::Closed) => return,
                },
                // Pods whose namespace was not found yet (no IP on an interface yet, a runtime
                // still setting it up) are looked for again.
                _ = retry.tick() => full_pass(&ctx).await,
            }
        }
    }
}

/// Every pod of this node the index lists and every pod in the mesh.
async fn full_pass(ctx: &Context) {
    let mut keys: Vec<WorkloadKey> =
        ctx.mesh.read(|index| index.workloads_on_node(&ctx.node_name).map(|w| w.key.clone()).collect());
    keys.extend(ctx.pods.active_keys());
    keys.sort();
    keys.dedup();
    for key in keys {
        reconcile(ctx, &key).await;
    }
}

/// Brings one pod to the state the index asks for.
async fn reconcile(ctx: &Context, key: &WorkloadKey) {
    let workload = ctx.mesh.read(|index| index.workload(key).cloned());
    let Some(workload) = workload else {
        ctx.pods.forget_deleted(key);
        if ctx.pods.deactivate(key, false).is_some() {
            info!(pod = %format!("{}/{}", key.namespace, key.name), "cni agent: pod gone; removed from ztunnel");
        }
        return;
    };
    let wanted = belongs(&workload, &ctx.node_name);
    match (wanted, ctx.pods.active(key)) {
        (true, Some(_)) | (false, None) => {}
        (true, None) => {
            if ctx.pods.was_deleted(key) || !workload.is_addressable() {
                return;
            }
            if let Err(e) = enrol_running(ctx, &workload).await {
                warn!(pod = %format!("{}/{}", key.namespace, key.name), error = %e, "cni agent: cannot enrol running pod");
            }
        }
        (false, Some(pod)) => {
            let name = format!("{}/{}", key.namespace, key.name);
            // Rules first: a pod ztunnel no longer serves must not have its traffic captured.
            match remove_rules(pod.netns.clone()).await {
                Ok(()) => info!(pod = %name, "cni agent: pod left the mesh; rules removed"),
                Err(e) => {
                    warn!(pod = %name, error = %e, "cni agent: pod left the mesh but its rules could not be removed")
                }
            }
            ctx.pods.deactivate(key, false);
        }
    }
}

/// A running pod that should be in the mesh: find its namespace, redirect, hand to ztunnel.
async fn enrol_running(ctx: &Context, workload: &Workload) -> Result<(), String> {
    let netns = super::discover::find_netns_by_ip(&ctx.executor, &ctx.discovery, &workload.ips)
        .await
        .map_err(|e| format!("looking for its network namespace: {e}"))?;
    let Some(netns) = netns else {
        debug!(pod = %format!("{}/{}", workload.key.namespace, workload.key.name), ips = ?workload.ips,
            "cni agent: no namespace holds the pod's IP yet");
        return Ok(());
    };
    let config = ctx.redirect.clone();
    let target = netns.clone();
    tokio::task::spawn_blocking(move || iptables::install(&target, &config))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let name = format!("{}/{}", workload.key.namespace, workload.key.name);
    if ctx.pods.activate(
        workload.key.clone(),
        ActivePod { info: pod_info(workload), netns: netns.clone(), ips: workload.ips.clone() },
        false,
    ) {
        info!(pod = %name, netns = ?netns, "cni agent: running pod enrolled");
    } else {
        // The plugin deleted it while its namespace was being looked for; undo the rules.
        remove_rules(netns).await?;
    }
    Ok(())
}

async fn remove_rules(netns: Netns) -> Result<(), String> {
    tokio::task::spawn_blocking(move || iptables::remove(&netns))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
