//! `verify-install`: every object the manifest renders is in the cluster, carries the install
//! label, and every Deployment and DaemonSet is rolled out. Each gap is listed.

use super::error::ClusterError;
use super::objects::{is_ours, manager_of};
use super::rollout::{failing_pod, progress};
use super::ui::Ui;
use super::{Cluster, identify};
use crate::install::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, Manifest};

/// What verify-install found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// How many objects were checked.
    pub checked: usize,
    /// One line per gap: the object and what is wrong with it.
    pub gaps: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.gaps.is_empty()
    }
}

/// Checks the cluster against `manifest`, listing each gap (a gap is not an error: the caller
/// decides the exit status from [`VerifyReport::is_ok`]).
pub async fn verify(cluster: &Cluster, manifest: &Manifest, ui: &Ui) -> Result<VerifyReport, ClusterError> {
    let objects = identify(manifest)?;
    let mut report = VerifyReport { checked: objects.len(), gaps: Vec::new() };
    for (id, _) in &objects {
        let Some(live) = cluster.get(id).await? else {
            report.gaps.push(format!("{id}: missing"));
            continue;
        };
        if !is_ours(&live.metadata) {
            if id.is_crd() {
                // Install keeps CRDs another installer put there; they serve ambient as well.
                ui.line(format!("{id}: ok (present, managed by {})", manager_of(&live.metadata)));
                continue;
            }
            report.gaps.push(format!(
                "{id}: not labelled {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} (managed by {})",
                manager_of(&live.metadata)
            ));
            continue;
        }
        if id.is_workload() {
            let now = progress(id.kind.kind, live.metadata.generation, &live.data);
            if !now.done {
                let mut gap = format!("{id}: not rolled out ({}/{} ready)", now.ready, now.desired);
                if let Some((pod, why)) = failing_pod(cluster, id, &live).await? {
                    gap.push_str(&format!(": pod {pod}: {why}"));
                }
                report.gaps.push(gap);
                continue;
            }
            ui.line(format!("{id}: ok ({}/{} ready)", now.ready, now.desired));
            continue;
        }
        ui.line(format!("{id}: ok"));
    }
    for gap in &report.gaps {
        ui.line(gap);
    }
    ui.line(if report.is_ok() {
        format!("Verified: all {} objects are installed and rolled out.", report.checked)
    } else {
        format!("{} of {} objects have problems.", report.gaps.len(), report.checked)
    });
    Ok(report)
}
