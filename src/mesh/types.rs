//! The derived values the index serves, their keys, and the events that announce their changes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::jiff;

use crate::model::Identity;
use crate::model::security::{AuthorizationPolicySpec, PeerAuthenticationSpec};

/// Kubernetes labels (or a label selector's `matchLabels`).
pub type Labels = BTreeMap<String, String>;

/// Names a workload: the pod's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub namespace: String,
    pub name: String,
}

/// Names a service: the Kubernetes Service's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl WorkloadKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadKey { namespace: namespace.into(), name: name.into() }
    }
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The policy kinds the index binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    AuthorizationPolicy,
    PeerAuthentication,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::AuthorizationPolicy => "AuthorizationPolicy",
            PolicyKind::PeerAuthentication => "PeerAuthentication",
        })
    }
}

/// Names a policy. The namespace comes first so that the policies of one namespace sort together.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    pub namespace: String,
    pub name: String,
    pub kind: PolicyKind,
}

impl PolicyKey {
    pub fn new(kind: PolicyKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PolicyKey { namespace: namespace.into(), name: name.into(), kind }
    }
}

impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The waypoint (a Gateway) that traffic to a workload or service goes through.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaypointRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WaypointRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Transport protocol of a port. Only TCP is carried by the mesh; the others are kept so that
/// consumers can tell a UDP port from a TCP port with the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Reads a Kubernetes `protocol` field; absent means TCP. `None` for a value Kubernetes does
    /// not define.
    pub fn from_kubernetes(value: Option<&str>) -> Option<Protocol> {
        match value {
            None | Some("TCP") => Some(Protocol::Tcp),
            Some("UDP") => Some(Protocol::Udp),
            Some("SCTP") => Some(Protocol::Sctp),
            Some(_) => None,
        }
    }
}

/// Where a service port sends traffic on a member pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetPort {
    Number(u16),
    /// A container port name, resolved per pod.
    Name(String),
}

/// One port of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
    pub target_port: TargetPort,
}

/// A Kubernetes Service as the mesh sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshService {
    pub key: ServiceKey,
    /// Cluster IPs; empty for a headless service or one whose IP is not allocated yet.
    pub vips: Vec<IpAddr>,
    /// `clusterIP: None`: clients resolve member pods directly.
    pub headless: bool,
    pub ports: Vec<ServicePort>,
    /// Empty: the service selects no pods (its endpoints are managed elsewhere).
    pub selector: Labels,
    pub waypoint: Option<WaypointRef>,
}

impl MeshService {
    /// Whether the service selects a pod in `namespace` with `labels`. A service without a
    /// selector selects nothing (its endpoints are managed by someone else).
    pub fn selects(&self, namespace: &str, labels: &Labels) -> bool {
        self.key.namespace == namespace
            && !self.selector.is_empty()
            && super::labels::selector_matches(&self.selector, labels)
    }
}

/// A service port resolved for one member pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortMapping {
    pub port: u16,
    pub protocol: Protocol,
    pub target_port: u16,
}

/// A pod as the mesh sees it. Pods that are not enrolled are still workloads (other workloads
/// talk to them), with `enrolled: false`; terminal pods are not workloads at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub key: WorkloadKey,
    pub uid: Option<String>,
    pub identity: Identity,
    /// Empty until the pod has been given an address: see [`Workload::is_addressable`].
    pub ips: Vec<IpAddr>,
    pub node: Option<String>,
    pub labels: Labels,
    /// Traffic of this pod is captured and carried by the mesh.
    pub enrolled: bool,
    /// The pod may receive traffic: its `Ready` condition is true, or it reports no conditions
    /// at all (a pod written by hand in a files config).
    pub ready: bool,
    pub waypoint: Option<WaypointRef>,
    /// Services selecting this pod, with each service port this pod can serve. A port whose
    /// named target does not resolve on this pod is absent from its list.
    pub services: BTreeMap<ServiceKey, Vec<PortMapping>>,
    /// AuthorizationPolicies and PeerAuthentications that select this workload.
    pub policies: BTreeSet<PolicyKey>,
}

impl Workload {
    /// Whether the pod has an IP yet; a workload without one cannot be reached.
    pub fn is_addressable(&self) -> bool {
        !self.ips.is_empty()
    }
}

/// The kinds of object a policy can name in `targetRef(s)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    Service,
    ServiceEntry,
    Gateway,
    /// Every waypoint of the class; only honoured for policies in the root namespace.
    GatewayClass,
}

/// An object a policy is attached to by `targetRef(s)`. `namespace` is empty for a GatewayClass.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyTarget {
    pub kind: TargetKind,
    pub namespace: String,
    pub name: String,
}

impl PolicyTarget {
    pub fn new(kind: TargetKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PolicyTarget { kind, namespace: namespace.into(), name: name.into() }
    }
}

/// Which workloads a policy applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyScope {
    /// In the root namespace with no selector: every workload.
    Mesh,
    /// In the root namespace with a selector: matching pods in every namespace.
    MeshSelector(Labels),
    /// No selector: every workload in the policy's namespace.
    Namespace,
    /// Matching pods in the policy's namespace.
    NamespaceSelector(Labels),
    /// Attached to these objects, not to workloads (enforced by their waypoint).
    Targets(Vec<PolicyTarget>),
}

/// The policy itself, for consumers that translate its rules.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySpec {
    Authorization(AuthorizationPolicySpec),
    PeerAuthentication(PeerAuthenticationSpec),
}

/// An AuthorizationPolicy or PeerAuthentication with its scope worked out.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshPolicy {
    pub key: PolicyKey,
    pub scope: PolicyScope,
    pub spec: PolicySpec,
    /// `istio.io/dry-run: "true"`: evaluated and logged, never enforced.
    pub dry_run: bool,
    /// `metadata.creationTimestamp`: where several policies compete (PeerAuthentication), the
    /// oldest wins, as in Istio.
    pub created: Option<jiff::Timestamp>,
}

impl MeshPolicy {
    /// Whether the policy applies to a pod in `namespace` with `labels`.
    pub fn applies_to(&self, namespace: &str, labels: &Labels) -> bool {
        let matches = |selector: &Labels| super::labels::selector_matches(selector, labels);
        match &self.scope {
            PolicyScope::Mesh => true,
            PolicyScope::MeshSelector(selector) => matches(selector),
            PolicyScope::Namespace => self.key.namespace == namespace,
            PolicyScope::NamespaceSelector(selector) => self.key.namespace == namespace && matches(selector),
            PolicyScope::Targets(_) => false,
        }
    }
}

/// One change of a derived value. Upserts carry the whole new value.
#[derive(Clone, Debug, PartialEq)]
pub enum MeshEvent {
    WorkloadUpserted(Arc<Workload>),
    WorkloadRemoved(WorkloadKey),
    ServiceUpserted(Arc<MeshService>),
    ServiceRemoved(ServiceKey),
    PolicyUpserted(Arc<MeshPolicy>),
    PolicyRemoved(PolicyKey),
}
