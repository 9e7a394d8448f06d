//! Pods and Services as `istio.workload.Address` resources.

use std::net::IpAddr;

use super::TranslateConfig;
use crate::mesh::{MeshService, Protocol, ServiceKey, TargetPort, WaypointRef, Workload, WorkloadKey};
use crate::xds::Resource;
use crate::xds::proto::ADDRESS_TYPE;
use crate::xds::proto::workload::{
    Address, GatewayAddress, NamespacedHostname, NetworkAddress, Port, PortList, Service, TunnelProtocol,
    Workload as XdsWorkload, WorkloadStatus, WorkloadType, address, gateway_address,
};

/// The port waypoints accept HBONE on.
const HBONE_PORT: u32 = 15008;

/// Labels that name the workload's canonical service and revision, in Istio's order.
const CANONICAL_NAME_LABELS: &[&str] = &["service.istio.io/canonical-name", "app.kubernetes.io/name", "app"];
const CANONICAL_REVISION_LABELS: &[&str] =
    &["service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"];

/// A pod's uid as Istio forms it: `<cluster>//Pod/<namespace>/<name>`.
pub fn workload_uid(config: &TranslateConfig, key: &WorkloadKey) -> String {
    format!("{}//Pod/{}/{}", config.cluster_id, key.namespace, key.name)
}

/// `<name>.<namespace>.svc.<domain suffix>`.
pub fn service_hostname(config: &TranslateConfig, namespace: &str, name: &str) -> String {
    format!("{name}.{namespace}.svc.{}", config.domain_suffix)
}

/// A service's resource name: `<namespace>/<hostname>`.
pub fn service_name(config: &TranslateConfig, key: &ServiceKey) -> String {
    format!("{}/{}", key.namespace, service_hostname(config, &key.namespace, &key.name))
}

/// The on-demand name of an address: `<network>/<ip>`.
fn address_alias(config: &TranslateConfig, ip: &IpAddr) -> String {
    format!("{}/{ip}", config.network)
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn waypoint(config: &TranslateConfig, waypoint: &WaypointRef) -> GatewayAddress {
    GatewayAddress {
        destination: Some(gateway_address::Destination::Hostname(NamespacedHostname {
            namespace: waypoint.namespace.clone(),
            hostname: service_hostname(config, &waypoint.namespace, &waypoint.name),
        })),
        hbone_mtls_port: HBONE_PORT,
    }
}

fn first_label(workload: &Workload, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| workload.labels.get(*k)).cloned()
}

pub fn workload(config: &TranslateConfig, w: &Workload, authorization_policies: Vec<String>) -> Resource {
    let services = w
        .services
        .iter()
        .map(|(key, mappings)| {
            let ports = mappings
                .iter()
                .filter(|m| m.protocol == Protocol::Tcp)
                .map(|m| Port { service_port: m.port.into(), target_port: m.target_port.into(), app_protocol: 0 })
                .collect();
            (service_name(config, key), PortList { ports })
        })
        .collect();
    let message = XdsWorkload {
        uid: workload_uid(config, &w.key),
        name: w.key.name.clone(),
        namespace: w.key.namespace.clone(),
        addresses: w.ips.iter().map(ip_bytes).collect(),
        network: config.network.clone(),
        tunnel_protocol: if w.enrolled { TunnelProtocol::Hbone } else { TunnelProtocol::None } as i32,
        trust_domain: w.identity.trust_domain.clone(),
        service_account: w.identity.service_account.clone(),
        waypoint: w.waypoint.as_ref().map(|wp| waypoint(config, wp)),
        node: w.node.clone().unwrap_or_default(),
        canonical_name: first_label(w, CANONICAL_NAME_LABELS).unwrap_or_else(|| w.key.name.clone()),
        canonical_revision: first_label(w, CANONICAL_REVISION_LABELS).unwrap_or_else(|| "latest".to_string()),
        workload_type: WorkloadType::Pod as i32,
        workload_name: w.key.name.clone(),
        services,
        authorization_policies,
        status: if w.ready { WorkloadStatus::Healthy } else { WorkloadStatus::Unhealthy } as i32,
        cluster_id: config.cluster_id.clone(),
        ..Default::default()
    };
    let uid = message.uid.clone();
    let aliases = w.ips.iter().map(|ip| address_alias(config, ip)).collect();
    Resource::new(ADDRESS_TYPE, uid, &Address { r#type: Some(address::Type::Workload(message)) }).with_aliases(aliases)
}

pub fn service(config: &TranslateConfig, s: &MeshService) -> Resource {
    let ports = s
        .ports
        .iter()
        .filter(|p| p.protocol == Protocol::Tcp)
        .map(|p| Port {
            service_port: p.port.into(),
            // A named target port is resolved per workload (its `services` map); 0 says so.
            target_port: match &p.target_port {
                TargetPort::Number(n) => (*n).into(),
                TargetPort::Name(_) => 0,
            },
            app_protocol: 0,
        })
        .collect();
    let message = Service {
        name: s.key.name.clone(),
        namespace: s.key.namespace.clone(),
        hostname: service_hostname(config, &s.key.namespace, &s.key.name),
        addresses: s
            .vips
            .iter()
            .map(|ip| NetworkAddress { network: config.network.clone(), address: ip_bytes(ip), length: None })
            .collect(),
        ports,
        waypoint: s.waypoint.as_ref().map(|wp| waypoint(config, wp)),
        ..Default::default()
    };
    let aliases = s.vips.iter().map(|ip| address_alias(config, ip)).collect();
    Resource::new(
        ADDRESS_TYPE,
        service_name(config, &s.key),
        &Address { r#type: Some(address::Type::Service(message)) },
    )
    .with_aliases(aliases)
}
