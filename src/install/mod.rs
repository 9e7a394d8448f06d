//! Putting ambient on a Kubernetes cluster: values (profiles, `-f`, `--set`), the embedded
//! manifests rendered with them, and applying / removing the result (`cluster`).
//!
//! Layout: `values` (profiles and overrides into one checked [`values::Values`]), `render`
//! (the templates in `manifests/` into [`Manifest`]), `crds` (the CRDs, generated from the
//! model's types), `cluster` (preflight, server-side apply, rollouts, uninstall).

pub mod check;
pub mod crds;
pub mod render;
pub mod values;

#[cfg(test)]
mod tests;

use serde_json::Value;

/// The label every object `install` creates carries; `uninstall` removes by it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "ambient";
/// The field manager of `install`'s server-side apply.
pub const FIELD_MANAGER: &str = "ambient";

/// One kind `install` may create: what `uninstall` lists (by label) and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstalledKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

const fn kind(api_version: &'static str, kind: &'static str, plural: &'static str, namespaced: bool) -> InstalledKind {
    InstalledKind { api_version, kind, plural, namespaced }
}

/// Every kind any profile renders, in apply order (what others depend on first). `uninstall`
/// deletes in the reverse order. A test checks that every rendered object's kind is here.
pub const INSTALLED_KINDS: &[InstalledKind] = &[
    kind("v1", "Namespace", "namespaces", false),
    kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", false),
    kind("v1", "ResourceQuota", "resourcequotas", true),
    kind("v1", "ServiceAccount", "serviceaccounts", true),
    kind("v1", "ConfigMap", "configmaps", true),
    kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", false),
    kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", false),
    kind("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", true),
    kind("v1", "Service", "services", true),
    kind("apps/v1", "Deployment", "deployments", true),
    kind("apps/v1", "DaemonSet", "daemonsets", true),
    kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", true),
];

/// The rendered install: every object, in apply order ([`INSTALLED_KINDS`] order), each labelled
/// [`MANAGED_BY_LABEL`]` = `[`MANAGED_BY_VALUE`].
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The namespace the components run in (also the mesh's root namespace).
    pub namespace: String,
    /// The objects, as API JSON.
    pub objects: Vec<Value>,
}

impl InstalledKind {
    /// The entry for an object's `apiVersion` and `kind`.
    pub fn of(object: &Value) -> Option<&'static InstalledKind> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        INSTALLED_KINDS.iter().find(|k| k.api_version == api_version && k.kind == kind)
    }

    /// The entry for a kind name (each kind appears once in [`INSTALLED_KINDS`]).
    pub fn named(kind: &str) -> Option<&'static InstalledKind> {
        INSTALLED_KINDS.iter().find(|k| k.kind == kind)
    }
}

pub mod cluster;
