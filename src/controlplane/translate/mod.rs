//! Translation of the mesh index into the xDS resources node proxies consume, with Istio's
//! semantics (so Istio's own ztunnel reads them as it reads istiod's):
//! - `address`: pods become `Workload`s (HBONE when enrolled, plain TCP otherwise), Services
//!   become `Service`s with their VIPs, ports and waypoint;
//! - `authorization`: AuthorizationPolicies become L4 `Authorization`s;
//! - `peer_authentication`: PeerAuthentications become the policies that make STRICT mTLS
//!   reject plaintext.
//!
//! [`Translator::full`] gives the whole state; [`Translator::changes`] the resources a batch of
//! mesh events touched. Both read the index as it is now, so a batch handled late still yields
//! the current values; the xDS cache drops upserts that change nothing.

mod address;
mod authorization;
mod peer_authentication;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use crate::mesh::{MeshEvent, MeshIndex, PolicyKind, PolicySpec, Workload, WorkloadKey};
use crate::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};
use crate::xds::{Resource, ResourceUpdate};

pub use self::authorization::{L7_ONLY_ATTRIBUTES, translate_authorization};
pub use self::peer_authentication::STATIC_STRICT_POLICY;

/// What translation needs to know beyond the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslateConfig {
    /// Names this cluster in workload uids (`<cluster>//Pod/<ns>/<name>`); Istio's default is
    /// `Kubernetes`.
    pub cluster_id: String,
    /// The network every workload and VIP is on; empty for a single flat network.
    pub network: String,
    /// DNS suffix of service hostnames (`<svc>.<ns>.svc.<domain_suffix>`).
    pub domain_suffix: String,
    /// Policies here apply to the whole mesh.
    pub root_namespace: String,
}

impl Default for TranslateConfig {
    fn default() -> Self {
        TranslateConfig {
            cluster_id: "Kubernetes".to_string(),
            network: String::new(),
            domain_suffix: "cluster.local".to_string(),
            root_namespace: crate::mesh::DEFAULT_ROOT_NAMESPACE.to_string(),
        }
    }
}

/// Turns mesh state into xDS resources.
#[derive(Clone, Debug)]
pub struct Translator {
    config: TranslateConfig,
}

impl Translator {
    pub fn new(config: TranslateConfig) -> Self {
        Translator { config }
    }

    pub fn config(&self) -> &TranslateConfig {
        &self.config
    }

    /// The whole state: every resource the index yields, as a replacing update.
    pub fn full(&self, index: &MeshIndex) -> ResourceUpdate {
        let mut upserts: Vec<Resource> = Vec::new();
        upserts.extend(index.workloads().map(|w| self.workload(index, w)));
        upserts.extend(index.services().map(|s| address::service(&self.config, s)));
        upserts.extend(index.policies().filter_map(|p| self.policy(index, p)));
        upserts.push(peer_authentication::static_strict(&self.config.root_namespace));
        ResourceUpdate { full: true, upserts, removals: Vec::new() }
    }

    /// The resources that `events` touched, with their current values (or removals).
    pub fn changes(&self, index: &MeshIndex, events: &[MeshEvent]) -> ResourceUpdate {
        let mut workloads: BTreeSet<WorkloadKey> = BTreeSet::new();
        let mut update = ResourceUpdate::default();
        for event in events {
            match event {
                MeshEvent::WorkloadUpserted(w) => {
                    workloads.insert(w.key.clone());
                }
                MeshEvent::WorkloadRemoved(key) => {
                    workloads.insert(key.clone());
                }
                MeshEvent::ServiceUpserted(s) => match index.service(&s.key) {
                    Some(service) => update.upserts.push(address::service(&self.config, service)),
                    None => update.removals.push((ADDRESS_TYPE, address::service_name(&self.config, &s.key))),
                },
                MeshEvent::ServiceRemoved(key) => {
                    if index.service(key).is_none() {
                        update.removals.push((ADDRESS_TYPE, address::service_name(&self.config, key)));
                    }
                }
                MeshEvent::PolicyUpserted(p) => self.policy_changed(index, &p.key, &mut update, &mut workloads),
                MeshEvent::PolicyRemoved(key) => self.policy_changed(index, key, &mut update, &mut workloads),
            }
        }
        for key in workloads {
            match index.workload(&key) {
                Some(workload) => update.upserts.push(self.workload(index, workload)),
                None => update.removals.push((ADDRESS_TYPE, address::workload_uid(&self.config, &key))),
            }
        }
        update
    }

    /// A policy changed: its own resources, and every workload whose policy list it may change
    /// (the workloads it can apply to: its namespace, or all of them from the root namespace).
    fn policy_changed(
        &self,
        index: &MeshIndex,
        key: &crate::mesh::PolicyKey,
        update: &mut ResourceUpdate,
        workloads: &mut BTreeSet<WorkloadKey>,
    ) {
        let current = index.policy(key).and_then(|p| self.policy(index, p));
        let name = match key.kind {
            PolicyKind::AuthorizationPolicy => authorization::resource_name(&key.namespace, &key.name),
            PolicyKind::PeerAuthentication => peer_authentication::resource_name(&key.namespace, &key.name),
        };
        match current {
            Some(resource) => update.upserts.push(resource),
            None => update.removals.push((AUTHORIZATION_TYPE, name)),
        }
        let affected: Box<dyn Iterator<Item = &std::sync::Arc<Workload>>> =
            if key.namespace == self.config.root_namespace {
                Box::new(index.workloads())
            } else {
                Box::new(index.workloads_in_namespace(&key.namespace))
            };
        workloads.extend(affected.map(|w| w.key.clone()));
    }

    fn workload(&self, index: &MeshIndex, workload: &Workload) -> Resource {
        let policies = self.workload_policies(index, workload);
        address::workload(&self.config, workload, policies)
    }

    /// The `authorization_policies` of a workload: the selector-scoped Authorizations that select
    /// it, and what its PeerAuthentications make of it. Namespace and mesh-wide policies are not
    /// listed: ztunnel applies them by scope.
    fn workload_policies(&self, index: &MeshIndex, workload: &Workload) -> Vec<String> {
        let policies = workload.policies.iter().filter_map(|key| index.policy(key));
        let (authorizations, peer_authentications): (Vec<_>, Vec<_>) =
            policies.partition(|p| matches!(p.spec, PolicySpec::Authorization(_)));
        let mut names: Vec<String> = authorizations
            .into_iter()
            .filter(|p| authorization::is_selector_scoped(p) && translate_authorization(p, &self.config).is_some())
            .map(|p| authorization::resource_name(&p.key.namespace, &p.key.name))
            .collect();
        names.extend(peer_authentication::workload_references(&self.config.root_namespace, &peer_authentications));
        names.sort();
        names.dedup();
        names
    }

    /// The Authorization resource a policy becomes, if any.
    fn policy(&self, index: &MeshIndex, policy: &crate::mesh::MeshPolicy) -> Option<Resource> {
        let message = match &policy.spec {
            PolicySpec::Authorization(_) => translate_authorization(policy, &self.config)?,
            PolicySpec::PeerAuthentication(_) => peer_authentication::convert(policy, &self.config, index)?,
        };
        let name = format!("{}/{}", message.namespace, message.name);
        Some(Resource::new(AUTHORIZATION_TYPE, name, &message))
    }
}
