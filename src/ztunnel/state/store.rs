//! The indexes behind [`ProxyState`](super::ProxyState): plain data, guarded by one std
//! `RwLock` there, never held across an `.await`.
//!
//! xDS delivers resources in any order (a service before its workloads, a workload removed and
//! re-added under the same uid), so nothing here depends on order: a service's endpoints are
//! derived from the workloads whose `services` map names it, kept per service key whether or
//! not the service itself is known yet, and every index entry is removed through the object
//! it was built from.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::model::{AddressResource, Service, Workload};
use crate::ztunnel::authz::PolicyStore;

/// What an `Address` resource name currently holds.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AddressKey {
    Workload(String),
    Service(String),
}

/// The endpoints of one service key.
#[derive(Default, Debug)]
pub(super) struct Endpoints {
    /// Every workload naming the service, by uid.
    pub(super) all: BTreeMap<String, Arc<Workload>>,
    /// The healthy ones that have an address, sorted by uid: what connections are spread over.
    pub(super) healthy: Vec<Arc<Workload>>,
    /// Round-robin position, advanced by every selection.
    pub(super) next: AtomicUsize,
}

impl Endpoints {
    fn insert(&mut self, workload: &Arc<Workload>) {
        self.all.insert(workload.uid.clone(), workload.clone());
        if workload.healthy && !workload.addresses.is_empty() {
            match self.healthy.binary_search_by(|w| w.uid.cmp(&workload.uid)) {
                Ok(i) => self.healthy[i] = workload.clone(),
                Err(i) => self.healthy.insert(i, workload.clone()),
            }
        }
    }

    fn remove(&mut self, uid: &str) {
        self.all.remove(uid);
        if let Ok(i) = self.healthy.binary_search_by(|w| w.uid.as_str().cmp(uid)) {
            self.healthy.remove(i);
        }
    }
}

/// Objects indexed by IP. Several may share one (a pod replaced by another with its IP before
/// the old one is removed); the last one indexed wins, and removing it reveals the previous.
type ByIp<T> = HashMap<IpAddr, Vec<Arc<T>>>;

fn ip_lookup<T>(index: &ByIp<T>, ip: IpAddr, on_network: impl Fn(&T) -> bool) -> Option<&Arc<T>> {
    index.get(&ip.to_canonical())?.iter().rev().find(|t| on_network(t))
}

fn ip_remove<T>(index: &mut ByIp<T>, ip: IpAddr, is: impl Fn(&T) -> bool) {
    let ip = ip.to_canonical();
    if let Some(list) = index.get_mut(&ip) {
        list.retain(|t| !is(t));
        if list.is_empty() {
            index.remove(&ip);
        }
    }
}

#[derive(Default, Debug)]
pub(super) struct Store {
    names: HashMap<String, AddressKey>,
    pub(super) workloads: HashMap<String, Arc<Workload>>,
    workload_ips: ByIp<Workload>,
    pub(super) services: HashMap<String, Arc<Service>>,
    service_vips: ByIp<Service>,
    /// Service key -> endpoints, also for services not (yet) known.
    pub(super) endpoints: HashMap<String, Endpoints>,
    pub(crate) policies: PolicyStore,
}

impl Store {
    pub(super) fn workload_by_ip(&self, network: &str, ip: IpAddr) -> Option<&Arc<Workload>> {
        ip_lookup(&self.workload_ips, ip, |w| w.network == network)
    }

    pub(super) fn service_by_vip(&self, network: &str, ip: IpAddr) -> Option<&Arc<Service>> {
        ip_lookup(&self.service_vips, ip, |s| {
            s.vips.iter().any(|(n, v)| n == network && v.to_canonical() == ip.to_canonical())
        })
    }

    /// Stores the resource `name`, replacing what the name held before.
    pub(super) fn upsert_address(&mut self, name: &str, resource: AddressResource) {
        let key = match &resource {
            AddressResource::Workload(w) => AddressKey::Workload(w.uid.clone()),
            AddressResource::Service(s) => AddressKey::Service(s.key()),
        };
        if let Some(previous) = self.names.get(name)
            && *previous != key
        {
            self.remove_address(name);
        }
        self.names.insert(name.to_string(), key);
        match resource {
            AddressResource::Workload(w) => self.insert_workload(w),
            AddressResource::Service(s) => self.insert_service(s),
        }
    }

    /// Removes what the resource `name` holds, if anything.
    pub(super) fn remove_address(&mut self, name: &str) {
        match self.names.remove(name) {
            Some(AddressKey::Workload(uid)) => {
                if let Some(old) = self.workloads.remove(&uid) {
                    self.unindex_workload(&old);
                }
            }
            Some(AddressKey::Service(key)) => {
                if let Some(old) = self.services.remove(&key) {
                    self.unindex_service(&old);
                }
            }
            None => {}
        }
    }

    fn insert_workload(&mut self, workload: Arc<Workload>) {
        if let Some(old) = self.workloads.remove(&workload.uid) {
            self.unindex_workload(&old);
        }
        for ip in &workload.addresses {
            self.workload_ips.entry(ip.to_canonical()).or_default().push(workload.clone());
        }
        for key in workload.services.keys() {
            self.endpoints.entry(key.clone()).or_default().insert(&workload);
        }
        self.workloads.insert(workload.uid.clone(), workload);
    }

    fn unindex_workload(&mut self, old: &Workload) {
        for ip in &old.addresses {
            ip_remove(&mut self.workload_ips, *ip, |w| w.uid == old.uid);
        }
        for key in old.services.keys() {
            if let Some(endpoints) = self.endpoints.get_mut(key) {
                endpoints.remove(&old.uid);
                if endpoints.all.is_empty() {
                    self.endpoints.remove(key);
                }
            }
        }
    }

    fn insert_service(&mut self, service: Arc<Service>) {
        let key = service.key();
        if let Some(old) = self.services.remove(&key) {
            self.unindex_service(&old);
        }
        for (_, vip) in &service.vips {
            let list = self.service_vips.entry(vip.to_canonical()).or_default();
            // A service listing one VIP twice (two networks) is indexed once.
            if !list.iter().any(|s| s.key() == key) {
                list.push(service.clone());
            }
        }
        self.services.insert(key, service);
    }

    fn unindex_service(&mut self, old: &Service) {
        let key = old.key();
        for (_, vip) in &old.vips {
            ip_remove(&mut self.service_vips, *vip, |s| s.key() == key);
        }
    }

    /// Counts of every index, for consistency checks in tests.
    #[cfg(test)]
    pub(super) fn index_sizes(&self) -> (usize, usize, usize, usize) {
        let ips = self.workload_ips.values().map(Vec::len).sum();
        let vips = self.service_vips.values().map(Vec::len).sum();
        let endpoints = self.endpoints.values().map(|e| e.all.len()).sum();
        (self.names.len(), ips, vips, endpoints)
    }
}
