//! `/debug/registryz`: the mesh index as JSON, as the control plane sees it before translation.

use serde_json::{Value, json};

use crate::mesh::{MeshIndex, MeshPolicy, MeshService, PolicyScope, TargetPort, Workload};

pub fn view(index: &MeshIndex) -> Value {
    json!({
        "revision": index.revision(),
        "workloads": index.workloads().map(|w| workload(w)).collect::<Vec<_>>(),
        "services": index.services().map(|s| service(s)).collect::<Vec<_>>(),
        "policies": index.policies().map(|p| policy(p)).collect::<Vec<_>>(),
    })
}

fn workload(w: &Workload) -> Value {
    json!({
        "namespace": w.key.namespace,
        "name": w.key.name,
        "uid": w.uid,
        "identity": w.identity.to_string(),
        "ips": w.ips,
        "node": w.node,
        "enrolled": w.enrolled,
        "ready": w.ready,
        "waypoint": w.waypoint.as_ref().map(ToString::to_string),
        "services": w.services.iter().map(|(key, ports)| json!({
            "service": key.to_string(),
            "ports": ports.iter().map(|p| json!({"port": p.port, "targetPort": p.target_port})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "policies": w.policies.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn service(s: &MeshService) -> Value {
    json!({
        "namespace": s.key.namespace,
        "name": s.key.name,
        "vips": s.vips,
        "headless": s.headless,
        "ports": s.ports.iter().map(|p| json!({
            "name": p.name,
            "port": p.port,
            "protocol": format!("{:?}", p.protocol).to_uppercase(),
            "targetPort": match &p.target_port {
                TargetPort::Number(n) => json!(n),
                TargetPort::Name(name) => json!(name),
            },
        })).collect::<Vec<_>>(),
        "selector": s.selector,
        "waypoint": s.waypoint.as_ref().map(ToString::to_string),
    })
}

fn policy(p: &MeshPolicy) -> Value {
    let scope = match &p.scope {
        PolicyScope::Mesh => json!("mesh"),
        PolicyScope::MeshSelector(selector) => json!({"mesh": selector}),
        PolicyScope::Namespace => json!("namespace"),
        PolicyScope::NamespaceSelector(selector) => json!({"namespace": selector}),
        PolicyScope::Targets(targets) => json!({
            "targets": targets.iter().map(|t| format!("{:?} {}/{}", t.kind, t.namespace, t.name)).collect::<Vec<_>>()
        }),
    };
    json!({
        "kind": p.key.kind.to_string(),
        "namespace": p.key.namespace,
        "name": p.key.name,
        "scope": scope,
        "dryRun": p.dry_run,
    })
}
