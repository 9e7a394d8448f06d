//! The mesh index: what the components need to know about the cluster, derived from the config
//! store and kept current from its change stream.
//!
//! [`MeshIndex`] is a plain synchronous structure: [`MeshIndex::reset`] loads a
//! [`Snapshot`](crate::config::Snapshot), [`MeshIndex::apply`] folds in one
//! [`ChangeSet`](crate::config::ChangeSet), and both return the [`MeshEvent`]s that say exactly
//! which derived values changed. [`Mesh`] wraps it for sharing between tasks and follows a store
//! subscription.
//!
//! The derived values follow Istio ambient semantics:
//! - a pod becomes a [`Workload`] (enrolment, SPIFFE identity, IPs, node, waypoint, service
//!   memberships with per-pod target ports, the policies that select it);
//! - a Kubernetes Service becomes a [`MeshService`] (VIPs, ports, selector, waypoint);
//! - AuthorizationPolicy and PeerAuthentication become [`MeshPolicy`]s, bound to workloads by
//!   namespace and selector, or indexed by their `targetRefs` for waypoints.
//!
//! Layout: `types` (the derived values and events), `labels` (label and selector semantics),
//! `inputs` (what the index keeps of each source object), `derive` (inputs to derived values),
//! `index` (the incremental bookkeeping), `lookup` (reverse lookups), `driver` (the async side).

mod derive;
mod driver;
mod index;
mod inputs;
pub mod labels;
mod lookup;
mod types;

#[cfg(test)]
mod tests;

pub use self::driver::{Mesh, MeshBatch};
pub use self::index::MeshIndex;
pub use self::types::{
    Labels, MeshEvent, MeshPolicy, MeshService, PolicyKey, PolicyKind, PolicyScope, PolicySpec, PolicyTarget,
    PortMapping, Protocol, ServiceKey, ServicePort, TargetKind, TargetPort, WaypointRef, Workload, WorkloadKey,
};

use crate::model::{Identity, IdentityError};

/// Trust domain used when none is configured (Istio's default).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Namespace whose policies apply mesh-wide when none is configured (Istio's default).
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// What the index needs to know about the mesh itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    /// The trust domain of every workload identity (`spiffe://<trust_domain>/ns/...`).
    pub trust_domain: String,
    /// Policies in this namespace apply to every namespace.
    pub root_namespace: String,
}

/// Why a [`MeshConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshConfigError {
    #[error("invalid mesh config: {0}")]
    Identity(#[from] IdentityError),
}

impl MeshConfig {
    /// Builds a config, checking that identities can be formed from it: the trust domain must be
    /// a valid SPIFFE trust domain and the root namespace a valid path segment.
    pub fn new(trust_domain: impl Into<String>, root_namespace: impl Into<String>) -> Result<Self, MeshConfigError> {
        let config = MeshConfig { trust_domain: trust_domain.into(), root_namespace: root_namespace.into() };
        // Identity::new validates every segment; the service account here is only a placeholder.
        Identity::new(&config.trust_domain, &config.root_namespace, "default")?;
        Ok(config)
    }
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
        }
    }
}
