//! What the index keeps of each source object: only the facts derivation reads, extracted once
//! per change, so recomputing a derived value never re-reads a whole Kubernetes object.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff;

use super::labels::{self, SIDECAR_STATUS_ANNOTATION, WaypointLabel};
use super::types::{
    Labels, MeshPolicy, MeshService, PolicyKey, PolicyKind, PolicyScope, PolicySpec, PolicyTarget, Protocol,
    ServiceKey, ServicePort, TargetKind, TargetPort, WorkloadKey,
};
use crate::model::security::{PolicyTargetReference, WorkloadSelector};
use crate::model::{AuthorizationPolicy, Namespace, PeerAuthentication, Pod, Service};

/// Kubernetes' service account for pods that name none.
const DEFAULT_SERVICE_ACCOUNT: &str = "default";
const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
const ISTIO_NETWORKING_GROUP: &str = "networking.istio.io";

/// The facts of a Namespace that its pods and services inherit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamespaceInput {
    pub enrolled: bool,
    pub waypoint: WaypointLabel,
}

/// What a namespace with no Namespace object (yet) contributes: nothing.
static ABSENT_NAMESPACE: NamespaceInput = NamespaceInput { enrolled: false, waypoint: WaypointLabel::Inherit };

impl NamespaceInput {
    pub fn from_namespace(namespace: &Namespace) -> Self {
        let labels = namespace.metadata.labels.as_ref();
        let name = namespace.metadata.name.as_deref().unwrap_or_default();
        NamespaceInput {
            enrolled: labels.is_some_and(labels::labels_enrol),
            waypoint: labels.map_or(WaypointLabel::Inherit, |l| WaypointLabel::from_labels(l, name)),
        }
    }
}

/// A named container port, for resolving named service target ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamedPort {
    pub name: String,
    pub number: u16,
    pub protocol: Protocol,
}

/// The facts of a non-terminal Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodInput {
    pub key: WorkloadKey,
    pub uid: Option<String>,
    pub service_account: String,
    pub ips: Vec<IpAddr>,
    pub node: Option<String>,
    pub labels: Labels,
    /// False for host-network pods (their traffic is the node's) and pods that already have a
    /// sidecar proxy: neither can be enrolled whatever the labels say.
    pub enrollable: bool,
    pub named_ports: Vec<NamedPort>,
    pub ready: bool,
}

impl PodInput {
    /// `None` for a terminal pod (Succeeded or Failed): it no longer serves traffic, so it is
    /// not a workload.
    pub fn from_pod(key: WorkloadKey, pod: &Pod) -> Option<Self> {
        let status = pod.status.as_ref();
        if matches!(status.and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")) {
            return None;
        }
        let spec = pod.spec.as_ref();
        let service_account = spec
            // `serviceAccount` is the deprecated spelling; the API server mirrors the two.
            .and_then(|s| s.service_account_name.as_deref().or(s.service_account.as_deref()))
            .filter(|sa| !sa.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT);
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let has_sidecar = pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(SIDECAR_STATUS_ANNOTATION));
        Some(PodInput {
            key,
            uid: pod.metadata.uid.clone(),
            service_account: service_account.to_string(),
            ips: status.map(pod_ips).unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            enrollable: !host_network && !has_sidecar,
            named_ports: spec.map(named_ports).unwrap_or_default(),
            ready: status.is_none_or(pod_ready),
        })
    }

    /// The container port a named service target port means on this pod. Like Kubernetes'
    /// endpoints controller, the name and the protocol must both match, and the first container
    /// port that does wins.
    pub fn resolve_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.named_ports.iter().find(|p| p.name == name && p.protocol == protocol).map(|p| p.number)
    }
}

/// Readiness as Kubernetes reports it; a status without conditions counts as ready, so that hand
/// written pods (files configs, which nothing updates) are usable.
fn pod_ready(status: &PodStatus) -> bool {
    let mut conditions = status.conditions.iter().flatten();
    match conditions.find(|c| c.type_ == "Ready") {
        Some(ready) => ready.status == "True",
        None => status.conditions.as_ref().is_none_or(Vec::is_empty),
    }
}

/// `status.podIPs`, else `status.podIP`. Unparseable addresses are skipped: validation reports
/// them, and a pod is better tracked without them than not at all.
fn pod_ips(status: &PodStatus) -> Vec<IpAddr> {
    let listed: Vec<&str> = status.pod_ips.iter().flatten().map(|p| p.ip.as_str()).collect();
    let texts = if listed.is_empty() { status.pod_ip.as_deref().into_iter().collect() } else { listed };
    let mut ips: Vec<IpAddr> = Vec::with_capacity(texts.len());
    for ip in texts.into_iter().filter_map(|t| t.parse().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// Named ports of the pod's app containers (init containers are not endpoints).
fn named_ports(spec: &PodSpec) -> Vec<NamedPort> {
    let ports = spec.containers.iter().flat_map(|c| c.ports.iter().flatten());
    ports
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone().filter(|n| !n.is_empty())?,
                number: u16::try_from(p.container_port).ok()?,
                protocol: Protocol::from_kubernetes(p.protocol.as_deref())?,
            })
        })
        .collect()
}

/// The facts of a Service: everything but its waypoint, which depends on its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceInput {
    /// The derived service with `waypoint: None`.
    pub service: MeshService,
    pub waypoint: WaypointLabel,
}

impl ServiceInput {
    pub fn from_service(key: ServiceKey, svc: &Service) -> Self {
        let spec = svc.spec.as_ref();
        let labels = svc.metadata.labels.as_ref();
        let waypoint = labels.map_or(WaypointLabel::Inherit, |l| WaypointLabel::from_labels(l, &key.namespace));
        let cluster_ips: Vec<&str> = match spec {
            Some(s) if s.cluster_ips.as_ref().is_some_and(|ips| !ips.is_empty()) => {
                s.cluster_ips.iter().flatten().map(String::as_str).collect()
            }
            Some(s) => s.cluster_ip.as_deref().into_iter().collect(),
            None => Vec::new(),
        };
        let ports = spec.and_then(|s| s.ports.as_ref());
        ServiceInput {
            service: MeshService {
                key,
                headless: cluster_ips.contains(&"None"),
                vips: cluster_ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
                ports: ports.map(|ports| ports.iter().filter_map(service_port).collect()).unwrap_or_default(),
                selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
                waypoint: None,
            },
            waypoint,
        }
    }

    /// Whether the two versions select the same pods with the same ports, so that no
    /// membership can differ between them.
    pub fn same_membership(&self, other: &ServiceInput) -> bool {
        self.service.selector == other.service.selector && self.service.ports == other.service.ports
    }
}

/// One service port; `None` for a port the mesh cannot use (out of range, unknown protocol).
fn service_port(p: &k8s_openapi::api::core::v1::ServicePort) -> Option<ServicePort> {
    let port = u16::try_from(p.port).ok()?;
    let target_port = match &p.target_port {
        // Kubernetes defaults an unset (or zero) targetPort to the service port.
        None | Some(IntOrString::Int(0)) => TargetPort::Number(port),
        Some(IntOrString::Int(n)) => TargetPort::Number(u16::try_from(*n).ok()?),
        Some(IntOrString::String(name)) => TargetPort::Name(name.clone()),
    };
    Some(ServicePort {
        name: p.name.clone(),
        port,
        protocol: Protocol::from_kubernetes(p.protocol.as_deref())?,
        target_port,
    })
}

/// Scope of a selector-based policy in `namespace`.
fn workload_scope(selector: Option<&WorkloadSelector>, namespace: &str, root_namespace: &str) -> PolicyScope {
    // Istio treats an empty `matchLabels` like no selector at all.
    let selector = selector.map(|s| &s.match_labels).filter(|labels| !labels.is_empty());
    match (namespace == root_namespace, selector) {
        (true, None) => PolicyScope::Mesh,
        (true, Some(labels)) => PolicyScope::MeshSelector(labels.clone()),
        (false, None) => PolicyScope::Namespace,
        (false, Some(labels)) => PolicyScope::NamespaceSelector(labels.clone()),
    }
}

/// A `targetRef(s)` entry the mesh can attach to; `None` for kinds it has nothing to attach to.
fn policy_target(target: &PolicyTargetReference, namespace: &str, in_root_namespace: bool) -> Option<PolicyTarget> {
    let kind = match (target.group.as_str(), target.kind.as_str()) {
        ("" | "core", "Service") => TargetKind::Service,
        (ISTIO_NETWORKING_GROUP, "ServiceEntry") => TargetKind::ServiceEntry,
        (GATEWAY_API_GROUP, "Gateway") => TargetKind::Gateway,
        // Attaching to every waypoint of a class is a mesh-wide decision, so Istio only honours
        // it from the root namespace.
        (GATEWAY_API_GROUP, "GatewayClass") if in_root_namespace => TargetKind::GatewayClass,
        _ => return None,
    };
    let namespace = match kind {
        TargetKind::GatewayClass => String::new(),
        _ => target.namespace.clone().filter(|ns| !ns.is_empty()).unwrap_or_else(|| namespace.to_string()),
    };
    Some(PolicyTarget { kind, namespace, name: target.name.clone() })
}

/// Builds the index's view of an AuthorizationPolicy. A policy with `targetRef(s)` binds to its
/// targets only, even if it (invalidly) has a selector too: binding it to workloads as well
/// would enforce it twice.
pub(crate) fn authorization_policy(key: PolicyKey, policy: &AuthorizationPolicy, root_namespace: &str) -> MeshPolicy {
    let spec = &policy.spec;
    let in_root = key.namespace == root_namespace;
    let scope = if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        let refs = spec.target_ref.iter().chain(&spec.target_refs);
        let mut targets: Vec<PolicyTarget> = refs.filter_map(|t| policy_target(t, &key.namespace, in_root)).collect();
        targets.sort();
        targets.dedup();
        PolicyScope::Targets(targets)
    } else {
        workload_scope(spec.selector.as_ref(), &key.namespace, root_namespace)
    };
    let (dry_run, created) = policy_metadata(&policy.metadata);
    MeshPolicy { key, scope, spec: PolicySpec::Authorization(spec.clone()), dry_run, created }
}

/// Istio's annotation that makes a policy dry-run only.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

fn policy_metadata(metadata: &ObjectMeta) -> (bool, Option<jiff::Timestamp>) {
    let annotations = metadata.annotations.as_ref();
    let dry_run = annotations.and_then(|a| a.get(DRY_RUN_ANNOTATION)).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    (dry_run, metadata.creation_timestamp.as_ref().map(|t| t.0))
}

pub(crate) fn peer_authentication(key: PolicyKey, policy: &PeerAuthentication, root_namespace: &str) -> MeshPolicy {
    let scope = workload_scope(policy.spec.selector.as_ref(), &key.namespace, root_namespace);
    let (dry_run, created) = policy_metadata(&policy.metadata);
    MeshPolicy { key, scope, spec: PolicySpec::PeerAuthentication(policy.spec.clone()), dry_run, created }
}

/// Keys ordered namespace first, so one namespace's entries are a contiguous range.
pub(crate) trait NamespacedKey: Ord + Sized {
    fn namespace(&self) -> &str;
    /// The smallest key in `namespace`.
    fn first_in(namespace: &str) -> Self;
}

impl NamespacedKey for WorkloadKey {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn first_in(namespace: &str) -> Self {
        WorkloadKey::new(namespace, "")
    }
}

impl NamespacedKey for ServiceKey {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn first_in(namespace: &str) -> Self {
        ServiceKey::new(namespace, "")
    }
}

impl NamespacedKey for PolicyKey {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn first_in(namespace: &str) -> Self {
        // AuthorizationPolicy is the smallest kind.
        PolicyKey::new(PolicyKind::AuthorizationPolicy, namespace, "")
    }
}

/// The entries of `map` in `namespace`.
pub(crate) fn in_namespace<'a, K: NamespacedKey, V>(
    map: &'a BTreeMap<K, V>,
    namespace: &'a str,
) -> impl Iterator<Item = &'a V> + 'a {
    map.range(K::first_in(namespace)..).take_while(move |(k, _)| k.namespace() == namespace).map(|(_, v)| v)
}

/// Everything the index knows of its source objects.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Inputs {
    pub namespaces: BTreeMap<String, NamespaceInput>,
    pub pods: BTreeMap<WorkloadKey, PodInput>,
    pub services: BTreeMap<ServiceKey, ServiceInput>,
    pub policies: BTreeMap<PolicyKey, Arc<MeshPolicy>>,
}

impl Inputs {
    pub fn namespace(&self, name: &str) -> &NamespaceInput {
        self.namespaces.get(name).unwrap_or(&ABSENT_NAMESPACE)
    }
}
