//! The CRDs the mesh consumes, generated from the model's own types (`kube::CustomResource`),
//! written to `manifests/crds/` (checked in, and tested to match what this generates).
//!
//! The generated schemas know only the fields ambient reads. Istio's objects carry more, and
//! an API server prunes unknown fields of a structural schema, so every object node also keeps
//! unknown fields (`x-kubernetes-preserve-unknown-fields`): a user's object is stored whole,
//! the fields ambient reads are still type-checked by the API server.

use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::model::gateway::{Gateway, HttpRoute};
use crate::model::networking::{ServiceEntry, WorkloadEntry};
use crate::model::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};

/// Which set of CRDs a file belongs to (`crds.istio`, `crds.gatewayAPI`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdSet {
    Istio,
    GatewayApi,
}

impl CrdSet {
    /// The folder under `manifests/crds/`.
    pub fn folder(self) -> &'static str {
        match self {
            CrdSet::Istio => "istio",
            CrdSet::GatewayApi => "gateway-api",
        }
    }
}

/// One generated CRD: its set, its file name (`<plural>.<group>.yaml`) and the object.
pub struct GeneratedCrd {
    pub set: CrdSet,
    pub file_name: String,
    pub crd: Value,
}

/// Every CRD, with the versions the API serves: ambient reads the first (the storage version);
/// the others are served with the same schema, as Istio and Gateway API still serve them.
pub fn generate() -> Vec<GeneratedCrd> {
    let istio_security = ["v1", "v1beta1"];
    let istio_networking = ["v1", "v1beta1", "v1alpha3"];
    let gateway = ["v1", "v1beta1"];
    let crds = [
        (CrdSet::Istio, AuthorizationPolicy::crd(), &istio_security[..]),
        (CrdSet::Istio, PeerAuthentication::crd(), &istio_security[..]),
        (CrdSet::Istio, RequestAuthentication::crd(), &istio_security[..]),
        (CrdSet::Istio, ServiceEntry::crd(), &istio_networking[..]),
        (CrdSet::Istio, WorkloadEntry::crd(), &istio_networking[..]),
        (CrdSet::GatewayApi, Gateway::crd(), &gateway[..]),
        (CrdSet::GatewayApi, HttpRoute::crd(), &gateway[..]),
    ];
    let mut generated: Vec<GeneratedCrd> = crds
        .into_iter()
        .map(|(set, crd, versions)| {
            let mut crd = serde_json::to_value(crd).unwrap_or(Value::Null);
            finish(&mut crd, versions);
            let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            GeneratedCrd { set, file_name: format!("{name}.yaml"), crd }
        })
        .collect();
    generated.push(GeneratedCrd {
        set: CrdSet::GatewayApi,
        file_name: "gatewayclasses.gateway.networking.k8s.io.yaml".to_string(),
        crd: gateway_class(),
    });
    generated.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    generated
}

/// Served versions, kept unknown fields, a status subresource and Istio's categories.
fn finish(crd: &mut Value, served: &[&str]) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let group = spec.get("group").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(template) = spec.get("versions").and_then(|v| v.get(0)).cloned() else { return };
    let mut template = template;
    if let Some(schema) = template.pointer_mut("/schema/openAPIV3Schema") {
        keep_unknown_fields(schema);
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            properties
                .insert("status".to_string(), json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        }
    }
    template["subresources"] = json!({"status": {}});
    let versions: Vec<Value> = served
        .iter()
        .enumerate()
        .map(|(i, version)| {
            let mut v = template.clone();
            v["name"] = json!(version);
            v["storage"] = json!(i == 0);
            v["served"] = json!(true);
            v
        })
        .collect();
    spec.insert("versions".to_string(), Value::Array(versions));
    if let (Some(category), Some(names)) =
        (istio_category(&group), spec.get_mut("names").and_then(Value::as_object_mut))
    {
        names.insert("categories".to_string(), json!(["istio-io", category]));
    }
}

fn istio_category(group: &str) -> Option<&'static str> {
    match group {
        "security.istio.io" => Some("security-istio-io"),
        "networking.istio.io" => Some("networking-istio-io"),
        _ => None,
    }
}

/// Marks every object node with its own properties as keeping unknown fields (the marker is
/// not inherited by nested properties, so each level needs it).
fn keep_unknown_fields(node: &mut Value) {
    let Some(object) = node.as_object_mut() else { return };
    let typed =
        ["type", "anyOf", "allOf", "oneOf", "x-kubernetes-int-or-string"].iter().any(|k| object.contains_key(*k));
    // An object with its own fields, or a node of any JSON (a `serde_json::Value` field, which
    // a structural schema allows only with this marker).
    if (object.contains_key("properties") && !object.contains_key("additionalProperties")) || !typed {
        object.insert("x-kubernetes-preserve-unknown-fields".to_string(), Value::Bool(true));
    }
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        properties.values_mut().for_each(keep_unknown_fields);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = object.get_mut(key) {
            keep_unknown_fields(child);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = object.get_mut(key) {
            children.iter_mut().for_each(keep_unknown_fields);
        }
    }
}

/// GatewayClass: the model has no type for it (a waypoint names its class, nothing reads the
/// class itself), so its schema is written here: the controller's name, the rest kept.
fn gateway_class() -> Value {
    let schema = json!({
        "type": "object",
        "description": "A class of Gateways and the controller that implements it.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["controllerName"],
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "controllerName": {"type": "string", "minLength": 1, "maxLength": 253},
                    "description": {"type": "string", "maxLength": 64},
                    "parametersRef": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    });
    let version = |name: &str, storage: bool| {
        json!({
            "name": name,
            "served": true,
            "storage": storage,
            "schema": {"openAPIV3Schema": schema.clone()},
            "subresources": {"status": {}}
        })
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gatewayclasses.gateway.networking.k8s.io"},
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": {"kind": "GatewayClass", "listKind": "GatewayClassList", "plural": "gatewayclasses", "singular": "gatewayclass", "shortNames": ["gc"]},
            "scope": "Cluster",
            "versions": [version("v1", true), version("v1beta1", false)]
        }
    })
}

/// The YAML of one CRD file, as checked in under `manifests/crds/`.
pub fn to_yaml(crd: &Value) -> String {
    let body = serde_saphyr::to_string(crd).unwrap_or_default();
    format!(
        "# Generated from ambient's model types by `UPDATE_CRDS=1 cargo nextest run --lib install::tests::crds`.\n# Do not edit by hand.\n{body}"
    )
}
