//! What ztunnel knows of the mesh: workloads and services (xDS `istio.workload.Address`) and L4
//! policies (`istio.security.Authorization`), indexed for the data path.
//!
//! [`ProxyState`] is cheap to clone. Lookups take a std read lock on plain data and return
//! `Arc`s; the lock is never held across an `.await`. The xDS client feeds it through
//! [`ProxyState::handlers`]: an invalid resource is rejected (naming the field) and the valid
//! rest of the response is applied.

pub mod model;
mod resolve;
mod store;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::json;

pub use self::model::{
    AddressResource, GatewayAddress, GatewayDestination, HBONE_PORT, InvalidField, PortMap, Service, TunnelProtocol,
    Workload,
};
pub use self::resolve::{ResolveError, Upstream};
use self::store::Store;
use crate::xds::client::{ClientResource, Decoded, Handler, Rejection};
use crate::xds::proto::{security, workload};
use crate::ztunnel::authz::{Authorization, PolicyStore};

/// The mesh as this ztunnel sees it.
#[derive(Clone, Debug)]
pub struct ProxyState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The network of this node: destinations are looked up on it when the source is unknown.
    network: String,
    store: RwLock<Store>,
}

impl Default for ProxyState {
    fn default() -> Self {
        ProxyState::new("")
    }
}

impl ProxyState {
    /// An empty state for a node on `network` (empty: the single flat network).
    pub fn new(network: impl Into<String>) -> Self {
        ProxyState { shared: Arc::new(Shared { network: network.into(), store: RwLock::default() }) }
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        // A panic while writing leaves whole entries (every update is a few map operations),
        // so the data stays usable.
        self.shared.store.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.shared.store.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn with_policies<R>(&self, f: impl FnOnce(&PolicyStore) -> R) -> R {
        f(&self.read().policies)
    }

    /// xDS handlers for `ADDRESS_TYPE` and `AUTHORIZATION_TYPE`, in that order.
    pub fn handlers(&self) -> (Arc<dyn Handler>, Arc<dyn Handler>) {
        let state = self.clone();
        let addresses =
            Decoded::new(move |upserts: Vec<(Arc<ClientResource>, workload::Address)>, removals: &[String]| {
                state.apply_addresses(&upserts, removals)
            });
        let state = self.clone();
        let policies =
            Decoded::new(move |upserts: Vec<(Arc<ClientResource>, security::Authorization)>, removals: &[String]| {
                state.apply_policies(&upserts, removals)
            });
        (Arc::new(addresses), Arc::new(policies))
    }

    /// Applies `Address` changes: converts everything first, then applies the valid part under
    /// one write lock.
    pub fn apply_addresses(
        &self,
        upserts: &[(Arc<ClientResource>, workload::Address)],
        removals: &[String],
    ) -> Result<(), Vec<Rejection>> {
        let (valid, rejections) = convert(upserts, |m| AddressResource::try_from(m));
        let mut store = self.write();
        for name in removals {
            store.remove_address(name);
        }
        for (name, resource) in valid {
            store.upsert_address(name, resource);
        }
        if rejections.is_empty() { Ok(()) } else { Err(rejections) }
    }

    /// Applies `Authorization` changes, as [`apply_addresses`](Self::apply_addresses) does.
    pub fn apply_policies(
        &self,
        upserts: &[(Arc<ClientResource>, security::Authorization)],
        removals: &[String],
    ) -> Result<(), Vec<Rejection>> {
        let (valid, rejections) = convert(upserts, |m| Authorization::try_from(m));
        let mut store = self.write();
        for name in removals {
            store.policies.remove(name);
        }
        for (name, policy) in valid {
            store.policies.upsert(name, policy);
        }
        if rejections.is_empty() { Ok(()) } else { Err(rejections) }
    }

    pub fn workload_by_ip(&self, network: &str, ip: IpAddr) -> Option<Arc<Workload>> {
        self.read().workload_by_ip(network, ip).cloned()
    }

    pub fn workload_by_uid(&self, uid: &str) -> Option<Arc<Workload>> {
        self.read().workloads.get(uid).cloned()
    }

    pub fn service_by_vip(&self, network: &str, ip: IpAddr) -> Option<Arc<Service>> {
        self.read().service_by_vip(network, ip).cloned()
    }

    /// The service with key `namespace/hostname`.
    pub fn service_by_host(&self, key: &str) -> Option<Arc<Service>> {
        self.read().services.get(key).cloned()
    }

    /// Every workload naming service `key` (`namespace/hostname`), healthy or not, by uid.
    pub fn endpoints(&self, key: &str) -> Vec<Arc<Workload>> {
        self.read().endpoints.get(key).map(|e| e.all.values().cloned().collect()).unwrap_or_default()
    }

    pub fn policy(&self, name: &str) -> Option<Arc<Authorization>> {
        self.read().policies.by_name.get(name).cloned()
    }

    /// Where a connection from `source` (a local pod; `None` for ztunnel itself) to `dst`
    /// goes. See [`resolve`](self::resolve) for the rules.
    pub fn resolve_outbound(&self, source: Option<&Workload>, dst: SocketAddr) -> Result<Upstream, ResolveError> {
        let network = source.map_or(self.shared.network.as_str(), |s| s.network.as_str());
        self.read().resolve_outbound(network, source, dst)
    }

    /// Everything known, for `/config_dump`: workloads, services (with their endpoints' uids)
    /// and policies, each sorted by name.
    pub fn snapshot(&self) -> serde_json::Value {
        let store = self.read();
        let mut workloads: Vec<&Workload> = store.workloads.values().map(|w| w.as_ref()).collect();
        workloads.sort_by(|a, b| a.uid.cmp(&b.uid));
        let mut services: Vec<&Service> = store.services.values().map(|s| s.as_ref()).collect();
        services.sort_by_key(|s| s.key());
        let services: Vec<_> = services
            .into_iter()
            .map(|s| {
                let endpoints = store.endpoints.get(&s.key());
                let uids = |healthy: bool| -> Vec<&str> {
                    endpoints
                        .into_iter()
                        .flat_map(|e| e.all.values())
                        .filter(|w| w.healthy == healthy)
                        .map(|w| w.uid.as_str())
                        .collect()
                };
                json!({ "service": s, "endpoints": uids(true), "unhealthyEndpoints": uids(false) })
            })
            .collect();
        let mut policies: Vec<_> = store.policies.by_name.iter().collect();
        policies.sort_by(|a, b| a.0.cmp(b.0));
        let policies: Vec<&Authorization> = policies.into_iter().map(|(_, p)| p.as_ref()).collect();
        json!({ "workloads": workloads, "services": services, "policies": policies })
    }
}

/// Converts each resource, sorting the valid ones from the rejections.
fn convert<M, T>(
    upserts: &[(Arc<ClientResource>, M)],
    convert: impl Fn(&M) -> Result<T, InvalidField>,
) -> (Vec<(&str, T)>, Vec<Rejection>) {
    let mut valid = Vec::with_capacity(upserts.len());
    let mut rejections = Vec::new();
    for (resource, message) in upserts {
        match convert(message) {
            Ok(converted) => valid.push((resource.name.as_str(), converted)),
            Err(error) => rejections.push(Rejection { name: resource.name.clone(), reason: error.to_string() }),
        }
    }
    (valid, rejections)
}
