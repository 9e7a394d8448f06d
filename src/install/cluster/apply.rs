//! Server-side apply of the plan, in manifest order, with field manager `ambient`; CRDs are
//! waited for (Established) before anything after them, so custom resources can follow.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::Value;
use tokio::time::Instant;

use super::error::{ClusterError, conflicts};
use super::objects::ObjectId;
use super::plan::{Action, Plan};
use super::ui::Ui;
use super::{Cluster, InstallOptions};
use crate::install::FIELD_MANAGER;

/// What applying did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Applied (or, in a dry run, accepted by the server's dry run), in order.
    pub applied: Vec<ObjectId>,
    /// Dry run only: objects the server could not check because their namespace does not exist
    /// yet (a dry-run create of the namespace does not create it).
    pub not_validated: Vec<ObjectId>,
}

/// Server-side apply parameters: field manager `ambient`, no force. A field another manager
/// owns is a 409 conflict for the user to resolve, never silently taken over.
pub(crate) fn apply_params(dry_run: bool) -> PatchParams {
    let params = PatchParams::apply(FIELD_MANAGER);
    if dry_run { params.dry_run() } else { params }
}

/// Applies one object.
pub(crate) async fn apply_one(
    cluster: &Cluster,
    id: &ObjectId,
    object: &Value,
    dry_run: bool,
) -> Result<(), ClusterError> {
    match cluster.api(id).patch(&id.name, &apply_params(dry_run), &Patch::Apply(object)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Err(ClusterError::Conflict { what: id.to_string(), conflicts: conflicts(&status) })
        }
        Err(e) => Err(cluster.error(e, "applying", id)),
    }
}

/// Applies every object of the plan that is not kept.
pub(crate) async fn apply_all(
    cluster: &Cluster,
    plan: &Plan,
    opts: &InstallOptions,
    ui: &Ui,
) -> Result<Applied, ClusterError> {
    let mut out = Applied::default();
    let mut unestablished: Vec<String> = Vec::new();
    for item in &plan.items {
        if matches!(item.action, Action::Keep { .. }) {
            continue;
        }
        if !item.id.is_crd() && !unestablished.is_empty() {
            wait_established(cluster, &std::mem::take(&mut unestablished), opts, ui).await?;
        }
        if opts.dry_run
            && let Some(ns) = &item.id.namespace
            && plan.creates_namespace(ns)
        {
            ui.line(format!(
                "{}: not validated: namespace {ns} does not exist yet, so the API server cannot dry-run objects in it",
                item.id
            ));
            out.not_validated.push(item.id.clone());
            continue;
        }
        apply_one(cluster, &item.id, &item.object, opts.dry_run).await?;
        let verb = match (&item.action, opts.dry_run) {
            (_, true) => "validated (server dry run)",
            (Action::Create, false) => "created",
            _ => "configured",
        };
        ui.line(format!("{}: {verb}", item.id));
        if item.id.is_crd() && !opts.dry_run {
            unestablished.push(item.id.name.clone());
        }
        out.applied.push(item.id.clone());
    }
    if !unestablished.is_empty() {
        wait_established(cluster, &unestablished, opts, ui).await?;
    }
    Ok(out)
}

/// Whether a CRD's status has condition `Established` = `True`.
pub(crate) fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten().any(|c| {
        c.get("type").and_then(Value::as_str) == Some("Established")
            && c.get("status").and_then(Value::as_str) == Some("True")
    })
}

/// Waits until every named CRD is Established, within `opts.crd_timeout`.
async fn wait_established(
    cluster: &Cluster,
    names: &[String],
    opts: &InstallOptions,
    ui: &Ui,
) -> Result<(), ClusterError> {
    let crd_kind = crate::install::InstalledKind::named("CustomResourceDefinition")
        .ok_or_else(|| ClusterError::Manifest("CustomResourceDefinition is not an installed kind".into()))?;
    let deadline = Instant::now() + opts.crd_timeout;
    for name in names {
        let id = ObjectId { kind: crd_kind, namespace: None, name: name.clone() };
        loop {
            let found = cluster.get(&id).await?;
            if found.as_ref().is_some_and(|crd| is_established(&crd.data)) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::CrdNotEstablished { name: name.clone(), timeout: opts.crd_timeout });
            }
            tokio::time::sleep(opts.poll_interval.min(Duration::from_secs(1))).await;
        }
    }
    ui.line(format!("{} CustomResourceDefinition{} established", names.len(), if names.len() == 1 { "" } else { "s" }));
    Ok(())
}
