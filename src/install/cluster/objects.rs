//! Naming and fetching the objects install handles: which kind, where, whose.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

use super::Cluster;
use super::error::{ClusterError, from_kube};
use crate::install::{InstalledKind, MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// One object of the install: its kind, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectId {
    pub kind: &'static InstalledKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectId {
    /// Identifies a manifest object; a namespaced one without `metadata.namespace` goes into
    /// `default_namespace`, as `kubectl apply -n` would put it.
    pub fn of(object: &Value, default_namespace: &str) -> Result<ObjectId, ClusterError> {
        let kind = InstalledKind::of(object).ok_or_else(|| {
            ClusterError::Manifest(format!(
                "{} {}: not a kind ambient installs",
                object.get("apiVersion").and_then(Value::as_str).unwrap_or("<no apiVersion>"),
                object.get("kind").and_then(Value::as_str).unwrap_or("<no kind>"),
            ))
        })?;
        let metadata = object.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ClusterError::Manifest(format!("a {} without metadata.name", kind.kind)))?;
        let namespace = kind.namespaced.then(|| {
            metadata
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(default_namespace)
                .to_string()
        });
        Ok(ObjectId { kind, namespace, name: name.to_string() })
    }

    /// The id of a listed object of `kind`.
    pub(crate) fn listed(kind: &'static InstalledKind, meta: &ObjectMeta) -> ObjectId {
        ObjectId {
            kind,
            namespace: if kind.namespaced { meta.namespace.clone() } else { None },
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    pub fn is_crd(&self) -> bool {
        self.kind.kind == "CustomResourceDefinition"
    }

    pub fn is_namespace(&self) -> bool {
        self.kind.kind == "Namespace" && self.kind.api_version == "v1"
    }

    /// A Deployment or DaemonSet: something that rolls out.
    pub fn is_workload(&self) -> bool {
        self.kind.api_version == "apps/v1" && matches!(self.kind.kind, "Deployment" | "DaemonSet")
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.kind, self.name),
            None => write!(f, "{} {}", self.kind.kind, self.name),
        }
    }
}

/// The API resource of an installed kind (no discovery: the kinds are known).
pub(crate) fn api_resource(kind: &InstalledKind) -> ApiResource {
    let (group, version) = kind.api_version.split_once('/').unwrap_or(("", kind.api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind.kind), kind.plural)
}

/// Whether an object carries the install label.
pub(crate) fn is_ours(meta: &ObjectMeta) -> bool {
    meta.labels.as_ref().and_then(|l| l.get(MANAGED_BY_LABEL)).is_some_and(|v| v == MANAGED_BY_VALUE)
}

/// Who manages an object that is not ours: its `app.kubernetes.io/managed-by` label, else the
/// field managers that wrote it (status writers left out), else "unknown".
pub(crate) fn manager_of(meta: &ObjectMeta) -> String {
    if let Some(label) = meta.labels.as_ref().and_then(|l| l.get(MANAGED_BY_LABEL)) {
        return label.clone();
    }
    let mut managers: Vec<&str> = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| e.subresource.as_deref().is_none_or(str::is_empty))
        .filter_map(|e| e.manager.as_deref())
        .collect();
    managers.sort_unstable();
    managers.dedup();
    if managers.is_empty() { "unknown".to_string() } else { managers.join(", ") }
}

impl Cluster {
    /// The API of `id`'s kind, in its namespace.
    pub(crate) fn api(&self, id: &ObjectId) -> Api<DynamicObject> {
        let resource = api_resource(id.kind);
        match &id.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// The API of a kind across all namespaces.
    pub(crate) fn api_all(&self, kind: &InstalledKind) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &api_resource(kind))
    }

    /// Reads an object; `None` when it does not exist.
    pub(crate) async fn get(&self, id: &ObjectId) -> Result<Option<DynamicObject>, ClusterError> {
        match self.api(id).get_opt(&id.name).await {
            Ok(found) => Ok(found),
            Err(e) => Err(self.error(e, "reading", id)),
        }
    }

    /// A kube error of `action` on `what`, as a [`ClusterError`].
    pub(crate) fn error(&self, err: kube::Error, action: &str, what: impl fmt::Display) -> ClusterError {
        from_kube(err, &self.url, action, &what.to_string())
    }
}
