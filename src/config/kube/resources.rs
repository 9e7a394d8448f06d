//! Which API each kind is served at, and API objects into typed [`Resource`]s.

use ::kube::api::{ApiResource, DynamicObject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::SOURCE;
use crate::config::diagnostic::{Code, Diagnostic};
use crate::model::{Kind, ObjectRef, Resource};

/// The resource name of `kind` in API paths (`/api/v1/<plural>`, `/apis/<group>/<v>/<plural>`).
pub fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Namespace => "namespaces",
        Kind::Pod => "pods",
        Kind::Service => "services",
        Kind::ServiceAccount => "serviceaccounts",
        Kind::EndpointSlice => "endpointslices",
        Kind::AuthorizationPolicy => "authorizationpolicies",
        Kind::PeerAuthentication => "peerauthentications",
        Kind::RequestAuthentication => "requestauthentications",
        Kind::ServiceEntry => "serviceentries",
        Kind::WorkloadEntry => "workloadentries",
        Kind::Gateway => "gateways",
        Kind::HttpRoute => "httproutes",
    }
}

/// The API of `kind` at its preferred version.
pub fn api_resource(kind: Kind) -> ApiResource {
    ApiResource {
        group: kind.group().to_string(),
        // The `resources!` table requires at least one version per kind.
        version: kind.versions()[0].to_string(),
        api_version: kind.api_version(),
        kind: kind.name().to_string(),
        plural: plural(kind).to_string(),
    }
}

/// Who an API object is: cluster-scoped kinds have no namespace.
pub(super) fn object_key(kind: Kind, meta: &ObjectMeta) -> ObjectRef {
    let namespace = if kind.namespaced() { meta.namespace.clone().unwrap_or_default() } else { String::new() };
    ObjectRef::new(kind, namespace, meta.name.clone().unwrap_or_default())
}

/// One API object, converted: who it is, and the typed object or why it is not usable.
#[derive(Debug)]
pub struct Converted {
    pub key: ObjectRef,
    pub result: Result<Resource, Vec<Diagnostic>>,
}

/// Converts an API object of `kind` into the typed model and validates it. Problems come back
/// as diagnostics (file `kube`, object `Kind ns/name`, the field when known).
pub fn convert(kind: Kind, object: DynamicObject) -> Converted {
    let key = object_key(kind, &object.metadata);
    let label = key.to_string();
    let result = decode(kind, object).map_err(|problems| {
        problems
            .into_iter()
            .map(|(code, field, message)| {
                let mut d = Diagnostic::new(code, SOURCE, message);
                d.object = Some(label.clone());
                d.field = field;
                d
            })
            .collect()
    });
    Converted { key, result }
}

type Problem = (Code, Option<String>, String);

fn decode(kind: Kind, mut object: DynamicObject) -> Result<Resource, Vec<Problem>> {
    // Server-side-apply bookkeeping: large, and nothing in the mesh reads it.
    object.metadata.managed_fields = None;
    if object.metadata.namespace.as_deref() == Some("") {
        object.metadata.namespace = None;
    }
    let value = serde_json::to_value(&object).map_err(|e| vec![(Code::SchemaViolation, None, e.to_string())])?;

    // Decode untracked first (the common case); only a failure pays for locating the field.
    let resource = match Resource::deserialize(kind, &value) {
        Ok(resource) => resource,
        Err(_) => decode_tracked(kind, &value)?,
    };
    check(kind, resource)
}

/// Decodes again, tracking the path, to say which field is wrong.
fn decode_tracked(kind: Kind, value: &serde_json::Value) -> Result<Resource, Vec<Problem>> {
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(value, &mut track);
    Resource::deserialize(kind, tracked).map_err(|err| {
        let path = track.path().to_string();
        let field = (path != "." && !path.is_empty()).then_some(path);
        vec![(Code::SchemaViolation, field, err.to_string())]
    })
}

/// Checks what decoding could not: the namespace, and every value.
fn check(kind: Kind, resource: Resource) -> Result<Resource, Vec<Problem>> {
    if kind.namespaced() && resource.meta().namespace.is_none() {
        let message = format!("{kind} is namespaced but the object has no metadata.namespace");
        return Err(vec![(Code::SchemaViolation, Some("metadata.namespace".into()), message)]);
    }
    let problems = resource.validate();
    if !problems.is_empty() {
        return Err(problems.into_iter().map(|p| (Code::InvalidValue, Some(p.field), p.message)).collect());
    }
    Ok(resource)
}
