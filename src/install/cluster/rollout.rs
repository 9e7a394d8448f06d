//! Waiting for Deployments and DaemonSets to roll out, with a progress bar each, and failing
//! fast when one of their pods is stuck for a reason waiting will not fix.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::ProgressBar;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use tokio::time::Instant;

use super::error::{ClusterError, one_line};
use super::objects::ObjectId;
use super::ui::Ui;
use super::{Cluster, InstallOptions};

/// Container waiting reasons that do not go away by waiting.
pub const FATAL_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// How far a workload's rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Available pods (Deployment `availableReplicas`, DaemonSet `numberAvailable`).
    pub ready: i64,
    /// Wanted pods (Deployment `spec.replicas`, DaemonSet `desiredNumberScheduled`).
    pub desired: i64,
    /// The controller has seen the latest spec and every wanted pod is updated and available.
    pub done: bool,
}

/// A workload after its rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadStatus {
    pub id: ObjectId,
    pub ready: i64,
    pub desired: i64,
}

/// Reads the rollout progress of a Deployment or DaemonSet from its live object.
pub(crate) fn progress(kind: &str, generation: Option<i64>, data: &Value) -> Progress {
    let int = |pointer: &str| data.pointer(pointer).and_then(Value::as_i64);
    let status = |field: &str| int(&format!("/status/{field}")).unwrap_or(0);
    let observed = int("/status/observedGeneration");
    let seen_latest = observed.is_some() && observed >= generation;
    let (ready, desired, updated) = if kind == "DaemonSet" {
        (status("numberAvailable"), status("desiredNumberScheduled"), status("updatedNumberScheduled"))
    } else {
        // A Deployment without spec.replicas runs one.
        (status("availableReplicas"), int("/spec/replicas").unwrap_or(1), status("updatedReplicas"))
    };
    Progress { ready, desired, done: seen_latest && updated == desired && ready == desired }
}

/// Why a pod will not become ready, if it is Failed or a container waits for a fatal reason:
/// `container ztunnel: CrashLoopBackOff: <message>; last terminated: Error, exit code 1`.
pub(crate) fn pod_failure(pod: &Value) -> Option<String> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(one_line).filter(|s| !s.is_empty());
    let status = pod.get("status")?;
    if status.get("phase").and_then(Value::as_str) == Some("Failed") {
        let reason = text(status, "reason").unwrap_or_else(|| "Failed".into());
        return Some(match text(status, "message") {
            Some(message) => format!("pod Failed: {reason}: {message}"),
            None => format!("pod Failed: {reason}"),
        });
    }
    let containers = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|key| status.get(*key).and_then(Value::as_array))
        .flatten();
    for container in containers {
        let Some(waiting) = container.pointer("/state/waiting") else { continue };
        let Some(reason) = text(waiting, "reason").filter(|r| FATAL_REASONS.contains(&r.as_str())) else { continue };
        let mut details: Vec<String> = text(waiting, "message").into_iter().collect();
        if let Some(last) = container.pointer("/lastState/terminated") {
            let mut what =
                format!("last terminated: {}", text(last, "reason").unwrap_or_else(|| "unknown reason".into()));
            if let Some(code) = last.get("exitCode").and_then(Value::as_i64) {
                what.push_str(&format!(", exit code {code}"));
            }
            if let Some(message) = text(last, "message") {
                what.push_str(&format!(": {message}"));
            }
            details.push(what);
        }
        let name = text(container, "name").unwrap_or_else(|| "?".into());
        return Some(if details.is_empty() {
            format!("container {name}: {reason}")
        } else {
            format!("container {name}: {reason}: {}", details.join("; "))
        });
    }
    None
}

/// The label selector of a workload's pods, from `spec.selector.matchLabels`.
pub(crate) fn pod_selector(data: &Value) -> Option<String> {
    let labels = data.pointer("/spec/selector/matchLabels")?.as_object()?;
    let sorted: BTreeMap<&String, &str> = labels.iter().filter_map(|(k, v)| Some((k, v.as_str()?))).collect();
    if sorted.is_empty() {
        return None;
    }
    Some(sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
}

/// The first pod of a workload that cannot become ready: (pod name, why).
pub(crate) async fn failing_pod(
    cluster: &Cluster,
    id: &ObjectId,
    live: &DynamicObject,
) -> Result<Option<(String, String)>, ClusterError> {
    let (Some(namespace), Some(selector)) = (&id.namespace, pod_selector(&live.data)) else { return Ok(None) };
    let pods: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        namespace,
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
    );
    let what = format!("pods of {id} ({selector})");
    let list =
        pods.list(&ListParams::default().labels(&selector)).await.map_err(|e| cluster.error(e, "listing", &what))?;
    let mut failing: Vec<(String, String)> = list
        .items
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| {
            let failure = pod_failure(&pod.data)?;
            Some((pod.metadata.name.clone().unwrap_or_default(), failure))
        })
        .collect();
    failing.sort();
    Ok(failing.into_iter().next())
}

/// One look at a workload: its progress, or why it will not roll out.
async fn look(cluster: &Cluster, id: &ObjectId) -> Result<Progress, ClusterError> {
    let live = cluster.get(id).await?.ok_or_else(|| ClusterError::RolloutFailed {
        workload: id.to_string(),
        pod: "-".into(),
        detail: "the workload was deleted while waiting for it".into(),
    })?;
    let now = progress(id.kind.kind, live.metadata.generation, &live.data);
    if !now.done
        && let Some((pod, detail)) = failing_pod(cluster, id, &live).await?
    {
        return Err(ClusterError::RolloutFailed { workload: id.to_string(), pod, detail });
    }
    Ok(now)
}

/// Waits for every workload to roll out, within `opts.wait_timeout`, with a progress bar each.
pub(crate) async fn wait(
    cluster: &Cluster,
    workloads: &[ObjectId],
    opts: &InstallOptions,
    ui: &Ui,
) -> Result<Vec<WorkloadStatus>, ClusterError> {
    let bars: Vec<ProgressBar> = workloads.iter().map(|id| ui.bar(id.to_string(), 0)).collect();
    let result = poll_until_rolled_out(cluster, workloads, opts, &bars).await;
    for bar in bars.iter().filter(|bar| !bar.is_finished()) {
        bar.abandon();
    }
    result
}

async fn poll_until_rolled_out(
    cluster: &Cluster,
    workloads: &[ObjectId],
    opts: &InstallOptions,
    bars: &[ProgressBar],
) -> Result<Vec<WorkloadStatus>, ClusterError> {
    let deadline = Instant::now() + opts.wait_timeout;
    let mut last: Vec<Option<Progress>> = vec![None; workloads.len()];
    let is_done = |p: &Option<Progress>| p.is_some_and(|p| p.done);
    loop {
        for (i, id) in workloads.iter().enumerate() {
            if is_done(&last[i]) {
                continue;
            }
            let now = look(cluster, id).await?;
            bars[i].set_length(now.desired.max(0) as u64);
            bars[i].set_position(now.ready.max(0) as u64);
            if now.done {
                bars[i].finish_with_message("rolled out");
            }
            last[i] = Some(now);
        }
        if last.iter().all(is_done) {
            let statuses = workloads
                .iter()
                .zip(&last)
                .filter_map(|(id, p)| p.map(|p| WorkloadStatus { id: id.clone(), ready: p.ready, desired: p.desired }));
            return Ok(statuses.collect());
        }
        if Instant::now() >= deadline {
            let pending: Vec<String> = workloads
                .iter()
                .zip(&last)
                .filter(|(_, p)| !is_done(p))
                .map(|(id, p)| {
                    let (ready, desired) = p.map_or((0, 0), |p| (p.ready, p.desired));
                    format!("{id} ({ready}/{desired} ready)")
                })
                .collect();
            return Err(ClusterError::RolloutTimeout { timeout: opts.wait_timeout, pending: pending.join(", ") });
        }
        tokio::time::sleep(opts.poll_interval.min(Duration::from_secs(5))).await;
    }
}
