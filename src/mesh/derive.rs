//! Derived values from inputs: a pod's [`Workload`] and a Service's [`MeshService`]. Pure
//! functions of the inputs, so the index can recompute any of them at any time and compare.

use super::MeshConfig;
use super::inputs::{Inputs, PodInput, ServiceInput, in_namespace};
use super::labels::{self, WaypointLabel};
use super::types::{MeshService, PortMapping, TargetPort, Workload};
use crate::model::Identity;

/// The workload of `pod`, given everything else the index knows.
pub(crate) fn workload(pod: &PodInput, inputs: &Inputs, config: &MeshConfig) -> Workload {
    let namespace_name = pod.key.namespace.as_str();
    let namespace = inputs.namespace(namespace_name);
    let waypoint = WaypointLabel::from_labels(&pod.labels, namespace_name).resolve(&namespace.waypoint);
    let services = in_namespace(&inputs.services, namespace_name)
        .map(|input| &input.service)
        .filter(|service| service.selects(namespace_name, &pod.labels))
        .map(|service| (service.key.clone(), port_mappings(service, pod)))
        .collect();
    // Policies that can apply live in the pod's namespace or the root namespace.
    let root_policies = (namespace_name != config.root_namespace)
        .then(|| in_namespace(&inputs.policies, &config.root_namespace))
        .into_iter()
        .flatten();
    let policies = in_namespace(&inputs.policies, namespace_name)
        .chain(root_policies)
        .filter(|policy| policy.applies_to(namespace_name, &pod.labels))
        .map(|policy| policy.key.clone())
        .collect();
    Workload {
        key: pod.key.clone(),
        uid: pod.uid.clone(),
        // Built from parts rather than parsed: the trust domain is checked by MeshConfig::new,
        // and Kubernetes namespace and service account names are always valid SPIFFE segments.
        identity: Identity {
            trust_domain: config.trust_domain.clone(),
            namespace: pod.key.namespace.clone(),
            service_account: pod.service_account.clone(),
        },
        ips: pod.ips.clone(),
        node: pod.node.clone(),
        labels: pod.labels.clone(),
        enrolled: pod.enrollable && labels::pod_wants_enrolment(&pod.labels, namespace.enrolled),
        ready: pod.ready,
        waypoint,
        services,
        policies,
    }
}

/// The ports of `service` that `pod` serves. Named target ports resolve against this pod's
/// container ports, so two pods of one service may serve a port on different numbers, and a pod
/// that lacks the name does not serve that port at all.
fn port_mappings(service: &MeshService, pod: &PodInput) -> Vec<PortMapping> {
    service
        .ports
        .iter()
        .filter_map(|port| {
            let target_port = match &port.target_port {
                TargetPort::Number(n) => *n,
                TargetPort::Name(name) => pod.resolve_port(name, port.protocol)?,
            };
            Some(PortMapping { port: port.port, protocol: port.protocol, target_port })
        })
        .collect()
}

/// The mesh view of a Service: its own facts plus the waypoint it inherits.
pub(crate) fn service(input: &ServiceInput, inputs: &Inputs) -> MeshService {
    let namespace = inputs.namespace(&input.service.key.namespace);
    MeshService { waypoint: input.waypoint.resolve(&namespace.waypoint), ..input.service.clone() }
}
