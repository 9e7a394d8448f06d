//! [`MeshIndex`]: folds config changes into inputs, recomputes exactly the derived values that
//! depend on what changed, and reports the ones that actually differ.
//!
//! Each batch runs in two phases. Ingestion replaces the inputs of every changed object and
//! marks as dirty the derived values that may depend on it (its own, plus dependents: a
//! namespace's pods and services, a service's selected pods, a policy's selected pods). Settling
//! then recomputes every dirty value from the inputs and compares it with the stored one. So the
//! events of a batch are its net effect: an object added and removed in one batch, or a change
//! that derives the same values, emits nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::MeshConfig;
use super::derive;
use super::inputs::{
    Inputs, NamespaceInput, PodInput, ServiceInput, authorization_policy, in_namespace, peer_authentication,
};
use super::lookup::Lookups;
use super::types::{
    MeshEvent, MeshPolicy, MeshService, PolicyKey, PolicyKind, PolicyScope, PolicyTarget, ServiceKey, Workload,
    WorkloadKey,
};
use crate::config::{Change, ChangeSet, Snapshot};
use crate::model::Resource;

/// The derived mesh state, kept incrementally. See the module docs.
#[derive(Debug, PartialEq)]
pub struct MeshIndex {
    config: MeshConfig,
    /// Store revision of the last snapshot or change set folded in.
    revision: u64,
    inputs: Inputs,
    workloads: BTreeMap<WorkloadKey, Arc<Workload>>,
    services: BTreeMap<ServiceKey, Arc<MeshService>>,
    lookups: Lookups,
}

/// What one batch may have changed.
struct Dirty {
    /// Whether ingestion marks dependents. A reset marks everything up front instead, which
    /// avoids scanning pods once per service and policy.
    track_dependents: bool,
    workloads: BTreeSet<WorkloadKey>,
    services: BTreeSet<ServiceKey>,
    /// Each touched policy with its value before the batch (policies derive from nothing else,
    /// so their inputs are their derived values).
    policies: BTreeMap<PolicyKey, Option<Arc<MeshPolicy>>>,
}

impl Dirty {
    fn tracking() -> Self {
        Dirty {
            track_dependents: true,
            workloads: BTreeSet::new(),
            services: BTreeSet::new(),
            policies: BTreeMap::new(),
        }
    }
}

/// Puts `value` under `key` (or removes the key for `None`) and returns what was there.
fn replace<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: Option<V>) -> Option<V> {
    match value {
        Some(value) => map.insert(key, value),
        None => map.remove(&key),
    }
}

/// A stored value's previous and new version.
type Replaced<V> = (Option<Arc<V>>, Option<Arc<V>>);

/// Stores a recomputed value if it differs from the stored one; returns (old, new) if it did.
fn store_if_changed<K: Ord + Clone, V: PartialEq>(
    map: &mut BTreeMap<K, Arc<V>>,
    key: &K,
    value: Option<V>,
) -> Option<Replaced<V>> {
    if map.get(key).map(|old| &**old) == value.as_ref() {
        return None;
    }
    let new = value.map(Arc::new);
    let old = replace(map, key.clone(), new.clone());
    Some((old, new))
}

impl MeshIndex {
    /// An empty index. Take `config` from [`MeshConfig::new`] (or its default), which checks
    /// that identities can be formed from it.
    pub fn new(config: MeshConfig) -> Self {
        MeshIndex {
            config,
            revision: 0,
            inputs: Inputs::default(),
            workloads: BTreeMap::new(),
            services: BTreeMap::new(),
            lookups: Lookups::default(),
        }
    }

    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// Store revision of the last snapshot or change set applied (0 before any).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Replaces the whole state with `snapshot`'s. The events take the previous state to the new
    /// one, so on a fresh index they announce everything, and after a resync only what differs.
    pub fn reset(&mut self, snapshot: &Snapshot) -> Vec<MeshEvent> {
        let previous_policies = std::mem::take(&mut self.inputs.policies);
        let mut dirty = Dirty {
            track_dependents: false,
            workloads: self.workloads.keys().cloned().collect(),
            services: self.services.keys().cloned().collect(),
            policies: previous_policies.into_iter().map(|(key, policy)| (key, Some(policy))).collect(),
        };
        self.inputs = Inputs::default();
        // Ingesting a pod or service marks its own key, so new keys join the old ones.
        for resource in snapshot.iter() {
            self.ingest(resource, true, &mut dirty);
        }
        self.revision = snapshot.revision;
        self.settle(dirty)
    }

    /// Folds in one change set and returns what it changed.
    pub fn apply(&mut self, changes: &ChangeSet) -> Vec<MeshEvent> {
        let mut dirty = Dirty::tracking();
        for change in &changes.changes {
            match change {
                Change::Applied(resource) => self.ingest(resource, true, &mut dirty),
                Change::Deleted(resource) => self.ingest(resource, false, &mut dirty),
            }
        }
        self.revision = changes.revision;
        self.settle(dirty)
    }

    /// Replaces the inputs of `resource` (removes them unless `present`) and marks what depends
    /// on them. Kinds the index does not derive anything from are ignored.
    fn ingest(&mut self, resource: &Resource, present: bool, dirty: &mut Dirty) {
        let (namespace, name) = (resource.namespace(), resource.name());
        match resource {
            Resource::Namespace(object) => {
                let new = present.then(|| NamespaceInput::from_namespace(object));
                let old = replace(&mut self.inputs.namespaces, name.to_string(), new.clone());
                if dirty.track_dependents && old != new {
                    let pods = in_namespace(&self.inputs.pods, name).map(|p| p.key.clone());
                    dirty.workloads.extend(pods);
                    let services = in_namespace(&self.inputs.services, name);
                    dirty.services.extend(services.map(|s| s.service.key.clone()));
                }
            }
            Resource::Pod(object) => {
                let key = WorkloadKey::new(namespace, name);
                let new = present.then(|| PodInput::from_pod(key.clone(), object)).flatten();
                replace(&mut self.inputs.pods, key.clone(), new);
                dirty.workloads.insert(key);
            }
            Resource::Service(object) => {
                let key = ServiceKey::new(namespace, name);
                let new = present.then(|| ServiceInput::from_service(key.clone(), object));
                let old = replace(&mut self.inputs.services, key.clone(), new);
                let new = self.inputs.services.get(&key);
                let membership_unchanged = match (&old, new) {
                    (Some(old), Some(new)) => old.same_membership(new),
                    (None, None) => true,
                    _ => false,
                };
                if dirty.track_dependents && !membership_unchanged {
                    // Pods the old version selected may lose it; pods the new one selects gain it.
                    for version in old.iter().chain(new) {
                        let selected = in_namespace(&self.inputs.pods, namespace)
                            .filter(|pod| version.service.selects(namespace, &pod.labels));
                        dirty.workloads.extend(selected.map(|pod| pod.key.clone()));
                    }
                }
                dirty.services.insert(key);
            }
            Resource::AuthorizationPolicy(object) => {
                let key = PolicyKey::new(PolicyKind::AuthorizationPolicy, namespace, name);
                let root = &self.config.root_namespace;
                let new = present.then(|| authorization_policy(key.clone(), object, root));
                self.ingest_policy(key, new, dirty);
            }
            Resource::PeerAuthentication(object) => {
                let key = PolicyKey::new(PolicyKind::PeerAuthentication, namespace, name);
                let root = &self.config.root_namespace;
                let new = present.then(|| peer_authentication(key.clone(), object, root));
                self.ingest_policy(key, new, dirty);
            }
            // Not (yet) part of the derived view: ServiceEntry and WorkloadEntry, Gateway and
            // HTTPRoute (read by waypoints directly), EndpointSlice (membership is computed from
            // selectors), ServiceAccount, RequestAuthentication.
            Resource::ServiceAccount(_)
            | Resource::EndpointSlice(_)
            | Resource::RequestAuthentication(_)
            | Resource::ServiceEntry(_)
            | Resource::WorkloadEntry(_)
            | Resource::Gateway(_)
            | Resource::HttpRoute(_) => {}
        }
    }

    fn ingest_policy(&mut self, key: PolicyKey, new: Option<MeshPolicy>, dirty: &mut Dirty) {
        let new = new.map(Arc::new);
        let old = replace(&mut self.inputs.policies, key.clone(), new.clone());
        let scope_changed = old.as_ref().map(|p| &p.scope) != new.as_ref().map(|p| &p.scope);
        if dirty.track_dependents && scope_changed {
            // Workloads list the policies that select them, so only a change of scope (or the
            // policy appearing or going) changes any workload; a change of rules does not.
            for policy in old.iter().chain(&new) {
                self.mark_selected_pods(policy, &mut dirty.workloads);
            }
        }
        dirty.policies.entry(key).or_insert(old);
    }

    /// Marks the pods `policy` applies to.
    fn mark_selected_pods(&self, policy: &MeshPolicy, workloads: &mut BTreeSet<WorkloadKey>) {
        let candidates: Box<dyn Iterator<Item = &PodInput>> = match &policy.scope {
            PolicyScope::Targets(_) => return,
            PolicyScope::Mesh | PolicyScope::MeshSelector(_) => Box::new(self.inputs.pods.values()),
            PolicyScope::Namespace | PolicyScope::NamespaceSelector(_) => {
                Box::new(in_namespace(&self.inputs.pods, &policy.key.namespace))
            }
        };
        let selected = candidates.filter(|pod| policy.applies_to(&pod.key.namespace, &pod.labels));
        workloads.extend(selected.map(|pod| pod.key.clone()));
    }

    /// Recomputes every dirty value, stores those that differ, and returns their events:
    /// policy and service upserts first, then workload changes, then service and policy
    /// removals. A consumer applying events in order thus never holds a workload that refers to
    /// a service or policy it has not seen, and removes those only after their last referrer.
    fn settle(&mut self, dirty: Dirty) -> Vec<MeshEvent> {
        let mut upserts = Vec::new();
        let mut workload_events = Vec::new();
        let mut service_removals = Vec::new();
        let mut policy_removals = Vec::new();

        for (key, before) in dirty.policies {
            let now = self.inputs.policies.get(&key).cloned();
            if before == now {
                continue;
            }
            self.lookups.policy_changed(before.as_deref(), now.as_deref());
            match now {
                Some(policy) => upserts.push(MeshEvent::PolicyUpserted(policy)),
                None => policy_removals.push(MeshEvent::PolicyRemoved(key)),
            }
        }

        for key in dirty.services {
            let value = (self.inputs.services.get(&key)).map(|i| derive::service(i, &self.inputs));
            let Some((old, new)) = store_if_changed(&mut self.services, &key, value) else {
                continue;
            };
            self.lookups.service_changed(old.as_deref(), new.as_deref());
            match new {
                Some(service) => upserts.push(MeshEvent::ServiceUpserted(service)),
                None => service_removals.push(MeshEvent::ServiceRemoved(key)),
            }
        }

        for key in dirty.workloads {
            let value = (self.inputs.pods.get(&key)).map(|pod| derive::workload(pod, &self.inputs, &self.config));
            let Some((old, new)) = store_if_changed(&mut self.workloads, &key, value) else {
                continue;
            };
            self.lookups.workload_changed(old.as_deref(), new.as_deref());
            workload_events.push(match new {
                Some(workload) => MeshEvent::WorkloadUpserted(workload),
                None => MeshEvent::WorkloadRemoved(key),
            });
        }

        let mut events = upserts;
        events.extend(workload_events);
        events.extend(service_removals);
        events.extend(policy_removals);
        events
    }

    pub fn workload(&self, key: &WorkloadKey) -> Option<&Arc<Workload>> {
        self.workloads.get(key)
    }

    /// Every workload, ordered by key.
    pub fn workloads(&self) -> impl Iterator<Item = &Arc<Workload>> {
        self.workloads.values()
    }

    pub fn workloads_in_namespace<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Arc<Workload>> + 'a {
        in_namespace(&self.workloads, namespace)
    }

    /// Workloads scheduled on `node` (what that node's ztunnel and CNI agent serve).
    pub fn workloads_on_node<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a Arc<Workload>> + 'a {
        let keys = self.lookups.workloads_by_node.get(node);
        keys.filter_map(|key| self.workloads.get(key))
    }

    /// Workloads with `ip`: usually one, several for host-network pods sharing a node's IP.
    pub fn workloads_by_ip(&self, ip: IpAddr) -> impl Iterator<Item = &Arc<Workload>> {
        let keys = self.lookups.workloads_by_ip.get(&ip);
        keys.filter_map(|key| self.workloads.get(key))
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&Arc<MeshService>> {
        self.services.get(key)
    }

    /// Every service, ordered by key.
    pub fn services(&self) -> impl Iterator<Item = &Arc<MeshService>> {
        self.services.values()
    }

    /// Services with virtual IP `vip` (one, unless the config is inconsistent).
    pub fn services_by_vip(&self, vip: IpAddr) -> impl Iterator<Item = &Arc<MeshService>> {
        let keys = self.lookups.services_by_vip.get(&vip);
        keys.filter_map(|key| self.services.get(key))
    }

    /// The workloads `key` selects; each one's port mapping is in its `services` entry.
    pub fn service_members<'a>(&'a self, key: &ServiceKey) -> impl Iterator<Item = &'a Arc<Workload>> + 'a {
        let keys = self.lookups.service_members.get(key);
        keys.filter_map(|key| self.workloads.get(key))
    }

    pub fn policy(&self, key: &PolicyKey) -> Option<&Arc<MeshPolicy>> {
        self.inputs.policies.get(key)
    }

    /// Every policy, ordered by key.
    pub fn policies(&self) -> impl Iterator<Item = &Arc<MeshPolicy>> {
        self.inputs.policies.values()
    }

    /// Policies attached to `target` by `targetRef(s)`: what a waypoint for it enforces.
    pub fn policies_for_target<'a>(&'a self, target: &PolicyTarget) -> impl Iterator<Item = &'a Arc<MeshPolicy>> + 'a {
        let keys = self.lookups.policies_by_target.get(target);
        keys.filter_map(|key| self.inputs.policies.get(key))
    }
}
