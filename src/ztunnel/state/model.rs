//! ztunnel's own typed view of `istio.workload.Address` resources, converted (and validated)
//! from the protobuf messages. A resource that cannot be converted is rejected with the field
//! that is wrong, so the control plane's NACK says what to fix.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::model::Identity;
use crate::xds::proto::workload as xds;

/// The port ztunnel and waypoints accept HBONE on.
pub const HBONE_PORT: u16 = 15008;

/// Defaults Istio applies to a workload that leaves its identity fields empty.
const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What a workload accepts: HBONE (in the mesh, behind a ztunnel) or plain TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TunnelProtocol {
    Hbone,
    Tcp,
}

/// Where a waypoint is: a service (or workload) by hostname, or an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GatewayDestination {
    /// A service key: `namespace/hostname`.
    Hostname {
        namespace: String,
        hostname: String,
    },
    Address {
        network: String,
        ip: IpAddr,
    },
}

/// A waypoint reference and the port it takes HBONE on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAddress {
    pub destination: GatewayDestination,
    pub hbone_port: u16,
}

impl fmt::Display for GatewayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.destination {
            GatewayDestination::Hostname { namespace, hostname } => write!(f, "{namespace}/{hostname}"),
            GatewayDestination::Address { network, ip } => write!(f, "{network}/{ip}"),
        }
    }
}

/// Service port -> target port.
pub type PortMap = HashMap<u16, u16>;

/// A workload (pod) as ztunnel uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub addresses: Vec<IpAddr>,
    pub network: String,
    pub protocol: TunnelProtocol,
    #[serde(serialize_with = "display")]
    pub identity: Identity,
    pub waypoint: Option<GatewayAddress>,
    pub node: String,
    pub canonical_name: String,
    pub canonical_revision: String,
    pub workload_name: String,
    /// Services this workload is an endpoint of, by key `namespace/hostname`, with the port
    /// mapping for this workload (named target ports are resolved per workload).
    pub services: HashMap<String, PortMap>,
    /// Authorization names (`namespace/name`) bound to this workload by selector.
    pub authorization_policies: Vec<String>,
    pub healthy: bool,
    pub cluster_id: String,
}

impl Workload {
    /// The address to reach the workload at for a connection to `like`: one of the same family
    /// if it has one, else its first.
    pub fn address_like(&self, like: IpAddr) -> Option<IpAddr> {
        let same_family = self.addresses.iter().find(|a| a.is_ipv4() == like.is_ipv4());
        same_family.or(self.addresses.first()).copied()
    }
}

/// A service as ztunnel uses it. Its endpoints are not part of it: they are derived from the
/// workloads' `services` maps (see the store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub name: String,
    pub namespace: String,
    pub hostname: String,
    /// (network, VIP).
    pub vips: Vec<(String, IpAddr)>,
    /// Service port -> target port; 0 means "per workload" (a named target port).
    pub ports: PortMap,
    pub waypoint: Option<GatewayAddress>,
    pub subject_alt_names: Vec<String>,
}

impl Service {
    /// The key workloads use to name this service: `namespace/hostname`.
    pub fn key(&self) -> String {
        service_key(&self.namespace, &self.hostname)
    }
}

pub fn service_key(namespace: &str, hostname: &str) -> String {
    format!("{namespace}/{hostname}")
}

pub(crate) fn display<S: serde::Serializer>(value: &impl fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Why a resource was rejected: the field (a path such as `workload.addresses[1]`) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: String,
    pub problem: String,
}

pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> InvalidField {
    InvalidField { field: field.into(), problem: problem.into() }
}

/// An IP from its 4 or 16 bytes.
pub(crate) fn ip_from_bytes(field: &str, bytes: &[u8]) -> Result<IpAddr, InvalidField> {
    match bytes.len() {
        4 => Ok(IpAddr::from(<[u8; 4]>::try_from(bytes).expect("4 bytes"))),
        16 => Ok(IpAddr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes"))),
        n => Err(invalid(field, format!("{n} bytes is not an IPv4 (4) or IPv6 (16) address"))),
    }
}

pub(crate) fn port(field: &str, value: u32) -> Result<u16, InvalidField> {
    u16::try_from(value).map_err(|_| invalid(field, format!("{value} is not a port (0-65535)")))
}

fn port_map(field: &str, ports: &[xds::Port]) -> Result<PortMap, InvalidField> {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let service_port = port(&format!("{field}[{i}].service_port"), p.service_port)?;
            let target_port = port(&format!("{field}[{i}].target_port"), p.target_port)?;
            Ok((service_port, target_port))
        })
        .collect()
}

fn gateway(field: &str, gateway: &xds::GatewayAddress) -> Result<GatewayAddress, InvalidField> {
    use xds::gateway_address::Destination;
    let destination = match &gateway.destination {
        Some(Destination::Hostname(h)) => {
            if h.namespace.is_empty() || h.hostname.is_empty() {
                return Err(invalid(format!("{field}.hostname"), "namespace and hostname must both be set"));
            }
            GatewayDestination::Hostname { namespace: h.namespace.clone(), hostname: h.hostname.clone() }
        }
        Some(Destination::Address(a)) => GatewayDestination::Address {
            network: a.network.clone(),
            ip: ip_from_bytes(&format!("{field}.address.address"), &a.address)?,
        },
        None => return Err(invalid(format!("{field}.destination"), "neither hostname nor address is set")),
    };
    let hbone_port = match port(&format!("{field}.hbone_mtls_port"), gateway.hbone_mtls_port)? {
        0 => HBONE_PORT,
        p => p,
    };
    Ok(GatewayAddress { destination, hbone_port })
}

fn or_default<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

impl TryFrom<&xds::Workload> for Workload {
    type Error = InvalidField;

    fn try_from(w: &xds::Workload) -> Result<Self, InvalidField> {
        if w.uid.is_empty() {
            return Err(invalid("workload.uid", "is empty"));
        }
        let addresses = w
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| ip_from_bytes(&format!("workload.addresses[{i}]"), a))
            .collect::<Result<_, _>>()?;
        let protocol = match xds::TunnelProtocol::try_from(w.tunnel_protocol) {
            Ok(xds::TunnelProtocol::None) => TunnelProtocol::Tcp,
            Ok(xds::TunnelProtocol::Hbone) => TunnelProtocol::Hbone,
            Ok(xds::TunnelProtocol::LegacyIstioMtls) => {
                return Err(invalid("workload.tunnel_protocol", "LEGACY_ISTIO_MTLS (sidecars) is not supported"));
            }
            Err(_) => return Err(invalid("workload.tunnel_protocol", format!("unknown value {}", w.tunnel_protocol))),
        };
        let healthy = match xds::WorkloadStatus::try_from(w.status) {
            Ok(status) => status == xds::WorkloadStatus::Healthy,
            Err(_) => return Err(invalid("workload.status", format!("unknown value {}", w.status))),
        };
        let identity = Identity::new(
            or_default(&w.trust_domain, DEFAULT_TRUST_DOMAIN),
            &w.namespace,
            or_default(&w.service_account, DEFAULT_SERVICE_ACCOUNT),
        )
        .map_err(|e| invalid("workload.trust_domain/namespace/service_account", e.to_string()))?;
        let waypoint = w.waypoint.as_ref().map(|g| gateway("workload.waypoint", g)).transpose()?;
        let services = w
            .services
            .iter()
            .map(|(key, list)| {
                if !key.contains('/') {
                    return Err(invalid(format!("workload.services[{key:?}]"), "key is not namespace/hostname"));
                }
                Ok((key.clone(), port_map(&format!("workload.services[{key:?}].ports"), &list.ports)?))
            })
            .collect::<Result<_, _>>()?;
        Ok(Workload {
            uid: w.uid.clone(),
            name: w.name.clone(),
            namespace: w.namespace.clone(),
            addresses,
            network: w.network.clone(),
            protocol,
            identity,
            waypoint,
            node: w.node.clone(),
            canonical_name: w.canonical_name.clone(),
            canonical_revision: w.canonical_revision.clone(),
            workload_name: w.workload_name.clone(),
            services,
            authorization_policies: w.authorization_policies.clone(),
            healthy,
            cluster_id: w.cluster_id.clone(),
        })
    }
}

impl TryFrom<&xds::Service> for Service {
    type Error = InvalidField;

    fn try_from(s: &xds::Service) -> Result<Self, InvalidField> {
        if s.namespace.is_empty() || s.hostname.is_empty() {
            return Err(invalid("service.namespace/hostname", "namespace and hostname must both be set"));
        }
        let vips = s
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Ok((a.network.clone(), ip_from_bytes(&format!("service.addresses[{i}].address"), &a.address)?))
            })
            .collect::<Result<_, _>>()?;
        Ok(Service {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            hostname: s.hostname.clone(),
            vips,
            ports: port_map("service.ports", &s.ports)?,
            waypoint: s.waypoint.as_ref().map(|g| gateway("service.waypoint", g)).transpose()?,
            subject_alt_names: s.subject_alt_names.clone(),
        })
    }
}

/// One converted `Address` resource, shared from here on.
#[derive(Clone, Debug)]
pub enum AddressResource {
    Workload(Arc<Workload>),
    Service(Arc<Service>),
}

impl TryFrom<&xds::Address> for AddressResource {
    type Error = InvalidField;

    fn try_from(address: &xds::Address) -> Result<Self, InvalidField> {
        match &address.r#type {
            Some(xds::address::Type::Workload(w)) => Ok(AddressResource::Workload(Arc::new(w.try_into()?))),
            Some(xds::address::Type::Service(s)) => Ok(AddressResource::Service(Arc::new(s.try_into()?))),
            None => Err(invalid("type", "the Address is neither a workload nor a service")),
        }
    }
}
