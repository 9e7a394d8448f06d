//! Typed resources the mesh consumes, their identities, and value validation.
//!
//! Kubernetes core types come from k8s-openapi; Istio and Gateway API types are written here with
//! kube's `CustomResource` derive, with Istio's field names. [`Resource`] is the closed set of
//! everything the config store can hold, and [`Kind`] names each type of it.

pub mod core;
pub mod gateway;
pub mod identity;
pub mod networking;
pub mod security;
pub mod validate;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

pub use self::core::{EndpointSlice, Namespace, Pod, Service, ServiceAccount};
pub use self::gateway::{Gateway, HttpRoute};
pub use self::identity::{Identity, IdentityError};
pub use self::networking::{ServiceEntry, WorkloadEntry};
pub use self::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
pub use self::validate::{FieldError, Validate, Validator};

/// Generates [`Kind`], [`Resource`] and their per-type dispatch from one table, so adding a
/// resource type is one line.
macro_rules! resources {
    ($( $variant:ident($ty:ty) = { group: $group:literal, kind: $kind:literal, versions: [$($ver:literal),+], namespaced: $ns:literal, spec: $spec:ident } ),+ $(,)?) => {
        /// The type of a resource, as `apiVersion` group + `kind` name it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Kind { $($variant),+ }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),+];

            /// API group ("" for core).
            pub fn group(self) -> &'static str { match self { $(Kind::$variant => $group),+ } }
            /// The `kind:` string, e.g. `HTTPRoute`.
            pub fn name(self) -> &'static str { match self { $(Kind::$variant => $kind),+ } }
            /// Accepted versions, preferred (served) first.
            pub fn versions(self) -> &'static [&'static str] { match self { $(Kind::$variant => &[$($ver),+]),+ } }
            pub fn namespaced(self) -> bool { match self { $(Kind::$variant => $ns),+ } }
        }

        /// One object of any kind the mesh consumes.
        // Resources live behind `Arc` in the store and are moved rarely, so the variants are not
        // boxed: matching on them stays simple for every consumer.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq)]
        pub enum Resource { $($variant($ty)),+ }

        impl Resource {
            pub fn kind(&self) -> Kind { match self { $(Resource::$variant(_) => Kind::$variant),+ } }
            pub fn meta(&self) -> &ObjectMeta { match self { $(Resource::$variant(o) => &o.metadata),+ } }
            pub fn meta_mut(&mut self) -> &mut ObjectMeta { match self { $(Resource::$variant(o) => &mut o.metadata),+ } }

            /// Decodes an object of `kind` from any serde deserializer.
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(kind: Kind, de: D) -> Result<Resource, D::Error> {
                use serde::Deserialize;
                Ok(match kind { $(Kind::$variant => Resource::$variant(resources!(@decode $spec, $ty, de))),+ })
            }

            /// Serializes the object to JSON (as the API server would return it).
            pub fn to_json(&self) -> serde_json::Value {
                let v = match self { $(Resource::$variant(o) => serde_json::to_value(o)),+ };
                v.expect("resources always serialize")
            }

            fn validate_body(&self, v: &mut Validator) {
                match self { $(Resource::$variant(o) => resources!(@validate $spec, o, v)),+ }
            }
        }

        $(impl From<$ty> for Resource { fn from(o: $ty) -> Self { Resource::$variant(o) } })+
    };
    // Custom resources: `metadata` and `spec` may be absent (Kubernetes allows `spec`-less
    // objects) or null (`spec:` with no value, which the API server prunes as absent), so they
    // are read through a shim with defaults instead of the derived impl.
    (@decode spec, $ty:ty, $de:ident) => {{
        #[derive(serde::Deserialize)]
        struct Shim<S> {
            #[serde(default)]
            metadata: Option<ObjectMeta>,
            #[serde(default)]
            spec: Option<S>,
        }
        let shim = Shim::deserialize($de)?;
        let mut object = <$ty>::default();
        object.metadata = shim.metadata.unwrap_or_default();
        object.spec = shim.spec.unwrap_or_default();
        object
    }};
    (@decode root, $ty:ty, $de:ident) => { <$ty>::deserialize($de)? };
    (@validate spec, $o:ident, $v:ident) => { $v.at("spec", |v| $o.spec.validate(v)) };
    (@validate root, $o:ident, $v:ident) => { $o.validate($v) };
}

resources! {
    Namespace(Namespace) = { group: "", kind: "Namespace", versions: ["v1"], namespaced: false, spec: root },
    Pod(Pod) = { group: "", kind: "Pod", versions: ["v1"], namespaced: true, spec: root },
    Service(Service) = { group: "", kind: "Service", versions: ["v1"], namespaced: true, spec: root },
    ServiceAccount(ServiceAccount) = { group: "", kind: "ServiceAccount", versions: ["v1"], namespaced: true, spec: root },
    EndpointSlice(EndpointSlice) = { group: "discovery.k8s.io", kind: "EndpointSlice", versions: ["v1"], namespaced: true, spec: root },
    AuthorizationPolicy(AuthorizationPolicy) = { group: "security.istio.io", kind: "AuthorizationPolicy", versions: ["v1", "v1beta1"], namespaced: true, spec: spec },
    PeerAuthentication(PeerAuthentication) = { group: "security.istio.io", kind: "PeerAuthentication", versions: ["v1", "v1beta1"], namespaced: true, spec: spec },
    RequestAuthentication(RequestAuthentication) = { group: "security.istio.io", kind: "RequestAuthentication", versions: ["v1", "v1beta1"], namespaced: true, spec: spec },
    ServiceEntry(ServiceEntry) = { group: "networking.istio.io", kind: "ServiceEntry", versions: ["v1", "v1beta1", "v1alpha3"], namespaced: true, spec: spec },
    WorkloadEntry(WorkloadEntry) = { group: "networking.istio.io", kind: "WorkloadEntry", versions: ["v1", "v1beta1", "v1alpha3"], namespaced: true, spec: spec },
    Gateway(Gateway) = { group: "gateway.networking.k8s.io", kind: "Gateway", versions: ["v1", "v1beta1"], namespaced: true, spec: spec },
    HttpRoute(HttpRoute) = { group: "gateway.networking.k8s.io", kind: "HTTPRoute", versions: ["v1", "v1beta1"], namespaced: true, spec: spec },
}

/// An `apiVersion`/`kind` pair that is not one of [`Kind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    #[error("unsupported kind {kind:?} (apiVersion {api_version:?})")]
    UnknownKind { api_version: String, kind: String },
    #[error("{kind} does not support apiVersion {api_version:?} (supported: {supported})")]
    UnsupportedVersion { api_version: String, kind: &'static str, supported: String },
}

impl Kind {
    /// `apiVersion` for the preferred version, e.g. `security.istio.io/v1` or `v1`.
    pub fn api_version(self) -> String {
        match self.group() {
            "" => self.versions()[0].to_string(),
            g => format!("{g}/{}", self.versions()[0]),
        }
    }

    /// Resolves a document's `apiVersion` and `kind`.
    pub fn from_api(api_version: &str, kind: &str) -> Result<Kind, KindError> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let found = Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == kind && k.group() == group)
            .ok_or_else(|| KindError::UnknownKind { api_version: api_version.into(), kind: kind.into() })?;
        if !found.versions().contains(&version) {
            let supported = found.versions().iter().map(|v| match group {
                "" => v.to_string(),
                g => format!("{g}/{v}"),
            });
            return Err(KindError::UnsupportedVersion {
                api_version: api_version.into(),
                kind: found.name(),
                supported: supported.collect::<Vec<_>>().join(", "),
            });
        }
        Ok(found)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Identifies one object: kind, namespace ("" for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectRef { kind, namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// DNS-1123 subdomain: what Kubernetes requires of most object names.
pub fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// DNS-1123 label: what Kubernetes requires of namespace and service names.
pub fn valid_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && valid_dns_subdomain(s)
}

impl Resource {
    pub fn object_ref(&self) -> ObjectRef {
        let meta = self.meta();
        ObjectRef {
            kind: self.kind(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }

    /// Checks metadata and every value serde could not check; returns all problems found.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut v = Validator::new();
        let meta = self.meta();
        let kind = self.kind();
        v.at("metadata", |v| {
            match meta.name.as_deref() {
                None | Some("") => v.error_at("name", "metadata.name is required"),
                Some(n) if kind == Kind::Namespace || kind == Kind::Service => {
                    if !valid_dns_label(n) {
                        v.error_at("name", format!("{n:?} is not a valid DNS-1123 label"));
                    }
                }
                Some(n) if !valid_dns_subdomain(n) => {
                    v.error_at("name", format!("{n:?} is not a valid DNS-1123 subdomain"))
                }
                Some(_) => {}
            }
            if let Some(ns) = meta.namespace.as_deref() {
                if !kind.namespaced() {
                    v.error_at("namespace", format!("{kind} is cluster-scoped and takes no namespace"));
                } else if !valid_dns_label(ns) {
                    v.error_at("namespace", format!("{ns:?} is not a valid namespace name"));
                }
            }
        });
        self.validate_body(&mut v);
        v.finish()
    }

    /// Labels of the object (empty when none).
    pub fn labels(&self) -> &std::collections::BTreeMap<String, String> {
        static EMPTY: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        self.meta().labels.as_ref().unwrap_or(&EMPTY)
    }
}
