//! Removing exactly what install created: every object labelled
//! `app.kubernetes.io/managed-by=ambient`, found by listing each installed kind, deleted in
//! reverse apply order. Without `purge`, CRDs stay (deleting them deletes every mesh policy in
//! the cluster) and so does the namespace (it may hold users' mesh-wide policies), which only
//! loses the fields ambient set, its label among them.

use std::time::Duration;

use kube::api::{DeleteParams, ListParams, Patch, PropagationPolicy};
use serde_json::json;
use tokio::time::Instant;

use super::Cluster;
use super::apply::apply_params;
use super::error::ClusterError;
use super::objects::ObjectId;
use super::ui::Ui;
use crate::install::{INSTALLED_KINDS, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// How uninstall runs.
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    /// Also delete the CRDs and the namespace.
    pub purge: bool,
    /// List what would be removed; change nothing.
    pub dry_run: bool,
    /// How long to wait for the deleted objects to be gone.
    pub timeout: Duration,
    /// How often to list while waiting.
    pub poll_interval: Duration,
}

impl Default for UninstallOptions {
    fn default() -> Self {
        UninstallOptions {
            purge: false,
            dry_run: false,
            timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// What uninstall found and did.
#[derive(Debug, Clone, Default)]
pub struct UninstallReport {
    /// Every object with the install label, in apply order.
    pub found: Vec<ObjectId>,
    /// Deleted (in a dry run: would be).
    pub deleted: Vec<ObjectId>,
    /// Kept, with ambient's fields (its label among them) released: the namespace without purge.
    pub released: Vec<ObjectId>,
    /// Kept as they are: CRDs without purge.
    pub kept: Vec<ObjectId>,
    /// Deleted but still finishing (a deletionTimestamp is set, e.g. a terminating namespace).
    pub terminating: Vec<ObjectId>,
    pub dry_run: bool,
}

/// What uninstall does with one found object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Delete,
    Release,
    Keep,
}

pub(super) fn step(id: &ObjectId, purge: bool) -> Step {
    match (purge, id.is_crd(), id.is_namespace()) {
        (true, _, _) | (false, false, false) => Step::Delete,
        (false, true, _) => Step::Keep,
        (false, _, true) => Step::Release,
    }
}

fn selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
}

/// Every object with the install label, in apply order, and whether it is being deleted.
pub(crate) async fn list_labelled(cluster: &Cluster) -> Result<Vec<(ObjectId, bool)>, ClusterError> {
    let params = ListParams::default().labels(&selector());
    let mut found = Vec::new();
    for kind in INSTALLED_KINDS {
        let what = format!("{} with {}", kind.plural, selector());
        let list = cluster.api_all(kind).list(&params).await.map_err(|e| cluster.error(e, "listing", &what))?;
        for item in list.items {
            found.push((ObjectId::listed(kind, &item.metadata), item.metadata.deletion_timestamp.is_some()));
        }
    }
    Ok(found)
}

/// Removes what install created.
pub async fn uninstall(cluster: &Cluster, opts: &UninstallOptions, ui: &Ui) -> Result<UninstallReport, ClusterError> {
    let found = list_labelled(cluster).await?;
    let mut report = UninstallReport { dry_run: opts.dry_run, ..UninstallReport::default() };
    if found.is_empty() {
        ui.line(format!("Nothing to uninstall: no object in the cluster at {} has {}.", cluster.url(), selector()));
        return Ok(report);
    }
    report.found = found.iter().map(|(id, _)| id.clone()).collect();
    ui.line(table(&report.found, opts.purge));
    if opts.dry_run {
        ui.line("Dry run: nothing was changed.");
        for id in &report.found {
            match step(id, opts.purge) {
                Step::Delete => report.deleted.push(id.clone()),
                Step::Release => report.released.push(id.clone()),
                Step::Keep => report.kept.push(id.clone()),
            }
        }
        return Ok(report);
    }
    if !ui.confirm("Proceed?").await? {
        return Err(ClusterError::Cancelled("uninstall"));
    }
    for id in report.found.clone().iter().rev() {
        match step(id, opts.purge) {
            Step::Keep => report.kept.push(id.clone()),
            Step::Release => {
                release(cluster, id).await?;
                ui.line(format!("{id}: kept, ambient's labels removed"));
                report.released.push(id.clone());
            }
            Step::Delete => {
                delete(cluster, id).await?;
                ui.line(format!("{id}: deleted"));
                report.deleted.push(id.clone());
            }
        }
    }
    report.terminating = wait_gone(cluster, &report.kept, opts).await?;
    let mut summary = format!(
        "Uninstalled ambient: {} deleted, {} released, {} kept.",
        report.deleted.len(),
        report.released.len(),
        report.kept.len()
    );
    if !report.terminating.is_empty() {
        let names: Vec<String> = report.terminating.iter().map(ToString::to_string).collect();
        summary.push_str(&format!(" Still terminating: {}.", names.join(", ")));
    }
    if report.kept.is_empty() {
        summary.push_str(&format!(" Nothing with {} is left.", selector()));
    } else {
        summary.push_str(&format!(
            " Nothing with {} is left but the CRDs, which were kept; `ambient uninstall --purge` deletes them with every mesh policy.",
            selector()
        ));
    }
    ui.line(summary);
    Ok(report)
}

fn table(found: &[ObjectId], purge: bool) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(["ACTION", "KIND", "NAME"]);
    for id in found.iter().rev() {
        let action = match step(id, purge) {
            Step::Delete => "delete",
            Step::Release => "keep, remove ambient's labels (--purge deletes it)",
            Step::Keep => "keep (--purge deletes it)",
        };
        let name = match &id.namespace {
            Some(ns) => format!("{ns}/{}", id.name),
            None => id.name.clone(),
        };
        table.add_row([action.to_string(), id.kind.kind.to_string(), name]);
    }
    table.to_string()
}

/// Deletes one object, its dependents in the background; already gone is fine.
async fn delete(cluster: &Cluster, id: &ObjectId) -> Result<(), ClusterError> {
    let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    match cluster.api(id).delete(&id.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(cluster.error(e, "deleting", id)),
    }
}

/// Gives up every field ambient manages on `id`: applying nothing but its name with ambient's
/// field manager makes the server remove what ambient alone had set (its labels).
async fn release(cluster: &Cluster, id: &ObjectId) -> Result<(), ClusterError> {
    let bare = json!({ "apiVersion": id.kind.api_version, "kind": id.kind.kind, "metadata": { "name": id.name } });
    match cluster.api(id).patch(&id.name, &apply_params(false), &Patch::Apply(&bare)).await {
        Ok(_) => Ok(()),
        Err(e) => Err(cluster.error(e, "releasing ambient's fields of", id)),
    }
}

/// Lists until nothing labelled is left but what was kept; objects already being deleted count
/// as gone, and are returned.
async fn wait_gone(
    cluster: &Cluster,
    kept: &[ObjectId],
    opts: &UninstallOptions,
) -> Result<Vec<ObjectId>, ClusterError> {
    let deadline = Instant::now() + opts.timeout;
    loop {
        let found = list_labelled(cluster).await?;
        let (terminating, left): (Vec<_>, Vec<_>) =
            found.into_iter().filter(|(id, _)| !kept.contains(id)).partition(|(_, deleting)| *deleting);
        if left.is_empty() {
            return Ok(terminating.into_iter().map(|(id, _)| id).collect());
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = left.iter().map(|(id, _)| id.to_string()).collect();
            return Err(ClusterError::UninstallIncomplete { timeout: opts.timeout, left: names.join(", ") });
        }
        tokio::time::sleep(opts.poll_interval.min(Duration::from_secs(5))).await;
    }
}
