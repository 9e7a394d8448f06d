//! Reverse lookups over the derived values (by IP, node, service, target), kept in step with
//! them: every stored change of a derived value passes its old and new version through here.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::types::{MeshPolicy, MeshService, PolicyKey, PolicyScope, PolicyTarget, ServiceKey, Workload, WorkloadKey};

/// Sets of keys, by a lookup key. Empty sets are removed, so the map only holds live entries
/// (and two indexes with the same content compare equal).
#[derive(Debug, PartialEq)]
pub(crate) struct MultiMap<K, V>(BTreeMap<K, BTreeSet<V>>);

impl<K, V> Default for MultiMap<K, V> {
    fn default() -> Self {
        MultiMap(BTreeMap::new())
    }
}

impl<K: Ord, V: Ord + Clone> MultiMap<K, V> {
    fn insert(&mut self, key: K, value: &V) {
        self.0.entry(key).or_default().insert(value.clone());
    }

    fn remove(&mut self, key: &K, value: &V) {
        if let Some(values) = self.0.get_mut(key) {
            values.remove(value);
            if values.is_empty() {
                self.0.remove(key);
            }
        }
    }

    /// The values under `key`. The iterator borrows only the map, not `key`.
    pub fn get<'a, Q>(&'a self, key: &Q) -> impl Iterator<Item = &'a V> + use<'a, K, V, Q>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.get(key).into_iter().flatten()
    }
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Lookups {
    /// Several workloads can share an IP: host-network pods share their node's, and a pod being
    /// replaced may briefly overlap with its successor.
    pub workloads_by_ip: MultiMap<IpAddr, WorkloadKey>,
    pub workloads_by_node: MultiMap<String, WorkloadKey>,
    pub service_members: MultiMap<ServiceKey, WorkloadKey>,
    pub services_by_vip: MultiMap<IpAddr, ServiceKey>,
    pub policies_by_target: MultiMap<PolicyTarget, PolicyKey>,
}

impl Lookups {
    pub fn workload_changed(&mut self, old: Option<&Workload>, new: Option<&Workload>) {
        if let Some(old) = old {
            for ip in &old.ips {
                self.workloads_by_ip.remove(ip, &old.key);
            }
            if let Some(node) = &old.node {
                self.workloads_by_node.remove(node, &old.key);
            }
            for service in old.services.keys() {
                self.service_members.remove(service, &old.key);
            }
        }
        if let Some(new) = new {
            for ip in &new.ips {
                self.workloads_by_ip.insert(*ip, &new.key);
            }
            if let Some(node) = &new.node {
                self.workloads_by_node.insert(node.clone(), &new.key);
            }
            for service in new.services.keys() {
                self.service_members.insert(service.clone(), &new.key);
            }
        }
    }

    pub fn service_changed(&mut self, old: Option<&MeshService>, new: Option<&MeshService>) {
        if let Some(old) = old {
            for vip in &old.vips {
                self.services_by_vip.remove(vip, &old.key);
            }
        }
        if let Some(new) = new {
            for vip in &new.vips {
                self.services_by_vip.insert(*vip, &new.key);
            }
        }
    }

    pub fn policy_changed(&mut self, old: Option<&MeshPolicy>, new: Option<&MeshPolicy>) {
        if let Some(old) = old {
            for target in targets(old) {
                self.policies_by_target.remove(target, &old.key);
            }
        }
        if let Some(new) = new {
            for target in targets(new) {
                self.policies_by_target.insert(target.clone(), &new.key);
            }
        }
    }
}

fn targets(policy: &MeshPolicy) -> &[PolicyTarget] {
    match &policy.scope {
        PolicyScope::Targets(targets) => targets,
        _ => &[],
    }
}
