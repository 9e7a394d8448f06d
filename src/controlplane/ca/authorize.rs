//! Who may get a certificate for which identity.
//!
//! - Anyone authenticated may get one for its own service account's identity.
//! - A trusted node proxy (ztunnel's service account) may get one for identity X on behalf of a
//!   pod, only if a pod with identity X runs on the proxy's own node, per the mesh index.
//! - The identity must be in our trust domain. Anything else is refused.

use std::fmt;
use std::str::FromStr;

use crate::mesh::{MeshIndex, WorkloadKey};
use crate::model::Identity;
use crate::xds::auth::Caller;

/// A service account, `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceAccountRef { namespace: namespace.into(), name: name.into() }
    }

    fn is(&self, caller: &Caller) -> bool {
        self.namespace == caller.namespace && self.name == caller.service_account
    }
}

impl fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a `namespace/name` service account reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a service account reference of the form <namespace>/<service-account>")]
pub struct ServiceAccountRefError(String);

impl FromStr for ServiceAccountRef {
    type Err = ServiceAccountRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = s.split_once('/').ok_or_else(|| ServiceAccountRefError(s.to_string()))?;
        // Validated with the SPIFFE path rules identities use.
        Identity::new("cluster.local", namespace, name).map_err(|_| ServiceAccountRefError(s.to_string()))?;
        Ok(ServiceAccountRef::new(namespace, name))
    }
}

/// The node proxies trusted by default: ztunnel in `istio-system` and in the root namespace.
pub fn default_node_proxies(root_namespace: &str) -> Vec<ServiceAccountRef> {
    let mut accounts = vec![ServiceAccountRef::new("istio-system", "ztunnel")];
    if root_namespace != "istio-system" {
        accounts.push(ServiceAccountRef::new(root_namespace, "ztunnel"));
    }
    accounts
}

/// Why a certificate was granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// The caller's own identity.
    Own,
    /// A node proxy for a pod on its node.
    OnBehalf { node: String },
}

impl Grant {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Grant::Own => "own",
            Grant::OnBehalf { .. } => "node_proxy",
        }
    }
}

/// Why a certificate was refused. The message is returned to the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("identity {requested} is not in trust domain {trust_domain}")]
    TrustDomain { requested: Identity, trust_domain: String },
    #[error("{caller} may only get a certificate for its own identity, not {requested}")]
    NotOwnIdentity { caller: String, requested: Identity },
    #[error("node proxy {caller} has no known node (its token names no node, and no known pod)")]
    UnknownNode { caller: String },
    #[error("node proxy {caller} asked for {requested}, but no pod with that identity runs on node {node}")]
    NotOnNode { caller: String, requested: Identity, node: String },
}

impl Refusal {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TrustDomain { .. } => "trust_domain",
            Refusal::NotOwnIdentity { .. } => "not_own_identity",
            Refusal::UnknownNode { .. } => "unknown_node",
            Refusal::NotOnNode { .. } => "not_on_node",
        }
    }
}

/// The node a caller runs on: the one its token names, else the node of the pod its token is
/// bound to (looked up in the caller's namespace).
pub fn caller_node(caller: &Caller, index: &MeshIndex) -> Option<String> {
    if let Some(node) = &caller.node {
        return Some(node.clone());
    }
    let pod = caller.pod.as_ref()?;
    index.workload(&WorkloadKey::new(&caller.namespace, pod))?.node.clone()
}

/// Decides whether `caller` may get a certificate for `requested`.
pub fn authorize(
    caller: &Caller,
    requested: &Identity,
    trust_domain: &str,
    node_proxies: &[ServiceAccountRef],
    index: &MeshIndex,
) -> Result<Grant, Refusal> {
    if requested.trust_domain != trust_domain {
        return Err(Refusal::TrustDomain { requested: requested.clone(), trust_domain: trust_domain.to_string() });
    }
    if requested.namespace == caller.namespace && requested.service_account == caller.service_account {
        return Ok(Grant::Own);
    }
    if !node_proxies.iter().any(|p| p.is(caller)) {
        return Err(Refusal::NotOwnIdentity { caller: caller.to_string(), requested: requested.clone() });
    }
    let node = caller_node(caller, index).ok_or_else(|| Refusal::UnknownNode { caller: caller.to_string() })?;
    if index.workloads_on_node(&node).any(|w| &w.identity == requested) {
        Ok(Grant::OnBehalf { node })
    } else {
        Err(Refusal::NotOnNode { caller: caller.to_string(), requested: requested.clone(), node })
    }
}
