//! Where an outbound connection goes: a service VIP is balanced over its healthy endpoints, a
//! workload IP goes to that workload, and either may go through a waypoint first.
//!
//! As Istio's ztunnel does: traffic addressed to a service uses the service's waypoint (and
//! never the chosen endpoint's own); traffic addressed to a workload uses the workload's
//! waypoint. A waypoint is skipped when the source is that waypoint (its own onward traffic).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::model::{GatewayAddress, GatewayDestination, HBONE_PORT, Service, TunnelProtocol, Workload, service_key};
use super::store::Store;
use crate::model::Identity;

/// Where to send an outbound connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// HBONE to `connect` (ip:15008) with `authority` (endpoint ip:target_port), expecting
    /// `identity`.
    Hbone {
        connect: SocketAddr,
        authority: SocketAddr,
        identity: Identity,
        workload: Arc<Workload>,
        service: Option<Arc<Service>>,
    },
    /// HBONE via a waypoint: connect to the waypoint endpoint ip:15008, authority = the
    /// original destination.
    Waypoint {
        connect: SocketAddr,
        authority: SocketAddr,
        identity: Identity,
        waypoint: Arc<Workload>,
        service: Option<Arc<Service>>,
        workload: Option<Arc<Workload>>,
    },
    /// Plain TCP to `connect` (service endpoint not in the mesh, or unknown destination).
    Passthrough { connect: SocketAddr, workload: Option<Arc<Workload>>, service: Option<Arc<Service>> },
}

/// Why an outbound connection has nowhere to go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("service {0} has no healthy endpoint")]
    NoHealthyEndpoint(String),
    #[error("service {service} has no port {port}")]
    UnknownServicePort { service: String, port: u16 },
    #[error("no endpoint of service {service} has a target port for port {port}")]
    NoTargetPort { service: String, port: u16 },
    #[error("waypoint {waypoint} (of {of}) is not known")]
    WaypointNotFound { waypoint: String, of: String },
    #[error("waypoint {waypoint} (of {of}) has no healthy endpoint")]
    WaypointUnavailable { waypoint: String, of: String },
}

impl Store {
    pub(super) fn resolve_outbound(
        &self,
        network: &str,
        source: Option<&Workload>,
        dst: SocketAddr,
    ) -> Result<Upstream, ResolveError> {
        if let Some(service) = self.service_by_vip(network, dst.ip()) {
            return self.resolve_service(source, service, dst);
        }
        let Some(workload) = self.workload_by_ip(network, dst.ip()) else {
            return Ok(Upstream::Passthrough { connect: dst, workload: None, service: None });
        };
        if let Some(gateway) = &workload.waypoint
            && let Some((waypoint, connect)) = self.waypoint(gateway, source, dst, &workload.uid)?
        {
            return Ok(Upstream::Waypoint {
                connect,
                authority: dst,
                identity: waypoint.identity.clone(),
                waypoint,
                service: None,
                workload: Some(workload.clone()),
            });
        }
        Ok(direct(workload, dst.ip(), dst.port(), None))
    }

    fn resolve_service(
        &self,
        source: Option<&Workload>,
        service: &Arc<Service>,
        dst: SocketAddr,
    ) -> Result<Upstream, ResolveError> {
        let key = service.key();
        let Some(&service_target) = service.ports.get(&dst.port()) else {
            return Err(ResolveError::UnknownServicePort { service: key, port: dst.port() });
        };
        if let Some(gateway) = &service.waypoint
            && let Some((waypoint, connect)) = self.waypoint(gateway, source, dst, &key)?
        {
            return Ok(Upstream::Waypoint {
                connect,
                authority: dst,
                identity: waypoint.identity.clone(),
                waypoint,
                service: Some(service.clone()),
                workload: None,
            });
        }
        // The endpoint's own mapping wins (a named target port resolved for it), then the
        // service's; an endpoint with neither cannot take this port.
        let target = |w: &Workload| match w.services.get(&key).and_then(|ports| ports.get(&dst.port())) {
            Some(&port) if port != 0 => Some(port),
            _ if service_target != 0 => Some(service_target),
            _ => None,
        };
        let (endpoint, port) = self.pick(&key, |w| target(w)).map_err(|none| match none {
            NoPick::NoHealthy => ResolveError::NoHealthyEndpoint(key.clone()),
            NoPick::NoneEligible => ResolveError::NoTargetPort { service: key.clone(), port: dst.port() },
        })?;
        // Healthy endpoints always have an address.
        let ip = endpoint.address_like(dst.ip()).unwrap_or(dst.ip());
        Ok(direct(&endpoint, ip, port, Some(service.clone())))
    }

    /// The next healthy endpoint of service `key`, round-robin, among those for which
    /// `eligible` yields a port.
    fn pick(&self, key: &str, eligible: impl Fn(&Workload) -> Option<u16>) -> Result<(Arc<Workload>, u16), NoPick> {
        let endpoints = self.endpoints.get(key).filter(|e| !e.healthy.is_empty()).ok_or(NoPick::NoHealthy)?;
        let count = endpoints.healthy.len();
        let start = endpoints.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| &endpoints.healthy[start.wrapping_add(offset) % count])
            .find_map(|w| eligible(w).map(|port| (w.clone(), port)))
            .ok_or(NoPick::NoneEligible)
    }

    /// The waypoint workload to use for `gateway` and the address to connect to, or `None`
    /// when the source is that waypoint. `of` names what the waypoint is for, in errors.
    fn waypoint(
        &self,
        gateway: &GatewayAddress,
        source: Option<&Workload>,
        dst: SocketAddr,
        of: &str,
    ) -> Result<Option<(Arc<Workload>, SocketAddr)>, ResolveError> {
        let not_found = || ResolveError::WaypointNotFound { waypoint: gateway.to_string(), of: of.to_string() };
        let unavailable = || ResolveError::WaypointUnavailable { waypoint: gateway.to_string(), of: of.to_string() };
        let (service_key, workload) = match &gateway.destination {
            GatewayDestination::Hostname { namespace, hostname } => {
                let key = service_key(namespace, hostname);
                if self.services.contains_key(&key) || self.endpoints.contains_key(&key) {
                    (Some(key), None)
                } else {
                    return Err(not_found());
                }
            }
            GatewayDestination::Address { network, ip } => match self.service_by_vip(network, *ip) {
                Some(service) => (Some(service.key()), None),
                None => (None, Some(self.workload_by_ip(network, *ip).ok_or_else(not_found)?.clone())),
            },
        };
        let is_source = |w: &Workload| source.is_some_and(|s| s.uid == w.uid);
        let waypoint = match (service_key, workload) {
            (Some(key), _) => {
                if source.is_some_and(|s| s.services.contains_key(&key)) {
                    return Ok(None);
                }
                self.pick(&key, |_| Some(gateway.hbone_port)).map_err(|_| unavailable())?.0
            }
            (None, Some(workload)) => workload,
            (None, None) => return Err(not_found()),
        };
        if is_source(&waypoint) {
            return Ok(None);
        }
        let ip = waypoint.address_like(dst.ip()).ok_or_else(unavailable)?;
        Ok(Some((waypoint, SocketAddr::new(ip, gateway.hbone_port))))
    }
}

enum NoPick {
    NoHealthy,
    NoneEligible,
}

/// Straight to `workload` at `ip:port`: HBONE if it is in the mesh, else plain TCP.
fn direct(workload: &Arc<Workload>, ip: IpAddr, port: u16, service: Option<Arc<Service>>) -> Upstream {
    match workload.protocol {
        TunnelProtocol::Hbone => Upstream::Hbone {
            connect: SocketAddr::new(ip, HBONE_PORT),
            authority: SocketAddr::new(ip, port),
            identity: workload.identity.clone(),
            workload: workload.clone(),
            service,
        },
        TunnelProtocol::Tcp => {
            Upstream::Passthrough { connect: SocketAddr::new(ip, port), workload: Some(workload.clone()), service }
        }
    }
}
