//! Putting a rendered [`Manifest`] on a cluster, taking it off again, and checking it is there.
//!
//! - [`install`]: preflight (reachable, supported version, nothing else installed here), plan
//!   (create / update / keep per object), confirmation, server-side apply with field manager
//!   [`FIELD_MANAGER`](crate::install::FIELD_MANAGER) and no force (a field another manager owns
//!   stops the install with the conflict), CRDs waited for until Established, then rollouts.
//! - [`uninstall`]: everything labelled [`MANAGED_BY_LABEL`](crate::install::MANAGED_BY_LABEL)`=ambient`
//!   deleted in reverse apply order; CRDs and the namespace only with `purge`.
//! - [`verify`]: every rendered object present, labelled, and rolled out.

mod apply;
mod error;
mod objects;
mod plan;
mod preflight;
mod rollout;
mod ui;
mod uninstall;
mod verify;

#[cfg(test)]
mod tests;

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

pub use self::apply::Applied;
pub use self::error::{ClusterError, FieldConflict};
pub use self::objects::ObjectId;
pub use self::plan::{Action, Plan, PlanItem};
pub use self::preflight::{MIN_MINOR, ServerVersion};
pub use self::rollout::{FATAL_REASONS, Progress, WorkloadStatus};
pub use self::ui::{Confirm, Transcript, Ui};
pub use self::uninstall::{UninstallOptions, UninstallReport, uninstall};
pub use self::verify::{VerifyReport, verify};
use super::Manifest;
use crate::config::kube::KubeConfig;

/// A connection to one cluster's API server.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    /// The server's URL, for messages (never credentials).
    url: String,
}

impl Cluster {
    /// Loads the kubeconfig (or in-cluster config) and builds a client. Nothing is sent yet: an
    /// unreachable server shows up on the first request.
    pub async fn connect(cfg: &KubeConfig) -> Result<Cluster, ClusterError> {
        if let Some(problem) = missing_kubeconfig(cfg) {
            return Err(ClusterError::Config(problem));
        }
        let config = crate::config::kube::load_config(cfg).await.map_err(|e| ClusterError::Config(e.to_string()))?;
        let url = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let client = kube::Client::try_from(config)
            .map_err(|e| ClusterError::Config(format!("building a client for {url}: {}", error::chain(&e))))?;
        Ok(Cluster { client, url })
    }

    /// Wraps a client built elsewhere; `url` is only used in messages.
    pub fn from_client(client: kube::Client, url: impl Into<String>) -> Cluster {
        Cluster { client, url: url.into() }
    }

    /// The API server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Why no configuration can be found, said plainly, before kube's loader says it at length:
/// the file given does not exist, or neither `$KUBECONFIG` nor `~/.kube/config` exists and this
/// is not a pod (no in-cluster configuration).
fn missing_kubeconfig(cfg: &KubeConfig) -> Option<String> {
    if let Some(path) = &cfg.kubeconfig {
        return (!path.exists()).then(|| format!("no kubeconfig at {} (given with --kubeconfig)", path.display()));
    }
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if in_cluster && cfg.context.is_none() {
        return None;
    }
    let hint = "pass --kubeconfig <file>, or set KUBECONFIG";
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => std::env::split_paths(&list).all(|p| !p.exists()).then(|| {
            format!("no kubeconfig found: KUBECONFIG={} names no file that exists; {hint}", list.to_string_lossy())
        }),
        None => {
            let path = std::path::PathBuf::from(std::env::var_os("HOME")?).join(".kube").join("config");
            (!path.exists()).then(|| {
                format!(
                    "no kubeconfig found: {} does not exist, KUBECONFIG is not set, and this is not running in a cluster; {hint}",
                    path.display()
                )
            })
        }
    }
}

/// How install runs.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Send every apply with `dryRun=All`, wait for nothing, change nothing.
    pub dry_run: bool,
    /// How long all rollouts together may take.
    pub wait_timeout: Duration,
    /// How long applied CRDs may take to become Established.
    pub crd_timeout: Duration,
    /// How often rollouts and CRDs are polled.
    pub poll_interval: Duration,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            dry_run: false,
            wait_timeout: Duration::from_secs(300),
            crd_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// What install found and did.
#[derive(Debug, Clone)]
pub struct InstallReport {
    pub version: ServerVersion,
    pub plan: Plan,
    pub dry_run: bool,
    pub applied: Applied,
    /// Each Deployment and DaemonSet after its rollout (empty in a dry run).
    pub workloads: Vec<WorkloadStatus>,
    pub elapsed: Duration,
}

/// Identifies every manifest object, in manifest order.
fn identify(manifest: &Manifest) -> Result<Vec<(ObjectId, Value)>, ClusterError> {
    manifest.objects.iter().map(|object| Ok((ObjectId::of(object, &manifest.namespace)?, object.clone()))).collect()
}

/// Installs `manifest`: preflight, plan, confirmation (unless a dry run), apply, rollouts.
pub async fn install(
    cluster: &Cluster,
    manifest: &Manifest,
    opts: &InstallOptions,
    ui: &Ui,
) -> Result<InstallReport, ClusterError> {
    let started = Instant::now();
    let objects = identify(manifest)?;
    let version = preflight::check(cluster, &manifest.namespace).await?;
    ui.line(format!("Kubernetes {} at {}: supported", version.git_version, cluster.url));
    let plan = plan::plan(cluster, objects).await?;
    ui.line(plan.table());
    if !opts.dry_run && !ui.confirm("Proceed?").await? {
        return Err(ClusterError::Cancelled("install"));
    }
    let applied = apply::apply_all(cluster, &plan, opts, ui).await?;
    let workloads = if opts.dry_run {
        Vec::new()
    } else {
        let ids: Vec<ObjectId> = applied.applied.iter().filter(|id| id.is_workload()).cloned().collect();
        rollout::wait(cluster, &ids, opts, ui).await?
    };
    let report = InstallReport { version, plan, dry_run: opts.dry_run, applied, workloads, elapsed: started.elapsed() };
    ui.line(summary(&report));
    Ok(report)
}

/// The closing lines: each workload's ready count, what changed, time taken.
fn summary(report: &InstallReport) -> String {
    let mut lines: Vec<String> =
        report.workloads.iter().map(|w| format!("  {}: {}/{} ready", w.id, w.ready, w.desired)).collect();
    let plan = &report.plan;
    let created = plan.count(|a| *a == Action::Create);
    let kept = plan.count(|a| matches!(a, Action::Keep { .. }));
    let updated = plan.items.len() - created - kept;
    let elapsed = format!("{:.1}s", report.elapsed.as_secs_f64());
    if report.dry_run {
        let unchecked = report.applied.not_validated.len();
        let mut text = format!(
            "Dry run: nothing was changed. The API server accepted {} object{} ({created} to create, {updated} to update, {kept} kept)",
            report.applied.applied.len(),
            plural(report.applied.applied.len()),
        );
        if unchecked > 0 {
            text.push_str(&format!("; {unchecked} could not be checked before their namespace exists"));
        }
        lines.push(format!("{text}."));
    } else {
        lines.push(format!(
            "Installed ambient in {elapsed}: {created} created, {updated} updated, {kept} kept, {} workload{} rolled out.",
            report.workloads.len(),
            plural(report.workloads.len())
        ));
    }
    lines.join("\n")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
