//! Pods to workloads: named target ports, addresses, nodes, identity, enrolment.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::build::{ServiceBuilder, ambient_namespace, authz, namespace, pod, service};
use super::{Case, Harness, members, put, remove, run_cases, workload};
use crate::config::{Change, ChangeSet};
use crate::mesh::{MeshConfig, MeshIndex, PortMapping, Protocol, ServiceKey};
use crate::model::Resource;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test IPs are valid")
}

fn tcp(port: u16, target_port: u16) -> PortMapping {
    PortMapping { port, protocol: Protocol::Tcp, target_port }
}

fn mappings(index: &MeshIndex, pod: &str) -> Vec<PortMapping> {
    let w = workload(index, "app", pod);
    w.services.get(&ServiceKey::new("app", "web")).cloned().unwrap_or_default()
}

/// A service whose ports exercise every kind of target port.
fn web_service() -> ServiceBuilder {
    service("app", "web")
        .selector("app", "web")
        .cluster_ip("10.96.0.10")
        .port_named(80, "http")
        .port_to(81, 8081)
        .port(82)
        // Named UDP target: the pods' "http" ports are TCP, so it resolves nowhere.
        .port_with(53, "UDP", Some(IntOrString::String("http".into())))
        .port_with(54, "UDP", Some(IntOrString::Int(5353)))
}

fn web_pods() -> Vec<Resource> {
    vec![
        ambient_namespace("app").into(),
        pod("app", "a").label("app", "web").ip("10.0.0.1").port("http", 8080).into(),
        pod("app", "b").label("app", "web").ip("10.0.0.2").port("http", 9090).into(),
        // No port named "http": port 80 of the service is not served by this pod.
        pod("app", "c").label("app", "web").ip("10.0.0.3").port("metrics", 9100).into(),
    ]
}

#[test]
fn named_target_ports_resolve_per_pod() {
    run_cases(vec![
        Case {
            name: "two pods resolve the same name differently; a third lacks it",
            setup: web_pods(),
            change: vec![put(web_service())],
            events: &["+service app/web", "+workload app/a", "+workload app/b", "+workload app/c"],
            check: |index| {
                assert_eq!(mappings(index, "a"), vec![tcp(80, 8080), tcp(81, 8081), tcp(82, 82), udp_54()]);
                assert_eq!(mappings(index, "b"), vec![tcp(80, 9090), tcp(81, 8081), tcp(82, 82), udp_54()]);
                assert_eq!(mappings(index, "c"), vec![tcp(81, 8081), tcp(82, 82), udp_54()]);
                assert_eq!(members(index, "app", "web"), ["app/a", "app/b", "app/c"]);
            },
        },
        Case {
            name: "a pod renumbering its named port changes only that pod",
            setup: [web_pods(), vec![web_service().into()]].concat(),
            change: vec![put(pod("app", "b").label("app", "web").ip("10.0.0.2").port("http", 9091))],
            events: &["+workload app/b"],
            check: |index| assert_eq!(mappings(index, "b")[0], tcp(80, 9091)),
        },
        Case {
            name: "a pod gaining the name starts serving the port",
            setup: [web_pods(), vec![web_service().into()]].concat(),
            change: vec![put(pod("app", "c").label("app", "web").ip("10.0.0.3").port("http", 7070))],
            events: &["+workload app/c"],
            check: |index| assert_eq!(mappings(index, "c")[0], tcp(80, 7070)),
        },
        Case {
            name: "a UDP container port named like the target resolves only the UDP service port",
            setup: [web_pods(), vec![web_service().into()]].concat(),
            change: vec![put(pod("app", "c")
                .label("app", "web")
                .ip("10.0.0.3")
                .port_with_protocol("http", 5300, "UDP"))],
            events: &["+workload app/c"],
            check: |index| {
                let named_udp = PortMapping { port: 53, protocol: Protocol::Udp, target_port: 5300 };
                assert_eq!(mappings(index, "c"), vec![tcp(81, 8081), tcp(82, 82), named_udp, udp_54()]);
            },
        },
    ]);
}

/// Service port 54/UDP, numerically targeted: every member serves it.
fn udp_54() -> PortMapping {
    PortMapping { port: 54, protocol: Protocol::Udp, target_port: 5353 }
}

#[test]
fn addresses_and_nodes() {
    let base = || -> Vec<Resource> { vec![ambient_namespace("app").into()] };
    run_cases(vec![
        Case {
            name: "a pod without an IP is tracked but not addressable",
            setup: base(),
            change: vec![put(pod("app", "a"))],
            events: &["+workload app/a"],
            check: |index| {
                let a = workload(index, "app", "a");
                assert!(a.ips.is_empty());
                assert!(!a.is_addressable());
                assert!(a.enrolled);
            },
        },
        Case {
            name: "the pod later gets an IP",
            setup: [base(), vec![pod("app", "a").into()]].concat(),
            change: vec![put(pod("app", "a").ip("10.0.0.1"))],
            events: &["+workload app/a"],
            check: |index| {
                let a = workload(index, "app", "a");
                assert!(a.is_addressable());
                assert_eq!(a.ips, vec![ip("10.0.0.1")]);
                let by_ip: Vec<_> = index.workloads_by_ip(ip("10.0.0.1")).map(|w| w.key.to_string()).collect();
                assert_eq!(by_ip, ["app/a"]);
            },
        },
        Case {
            name: "podIPs wins over podIP and keeps both families",
            setup: base(),
            change: vec![put(pod("app", "a").ips(&["10.0.0.1", "fd00::1"]))],
            events: &["+workload app/a"],
            check: |index| assert_eq!(workload(index, "app", "a").ips, vec![ip("10.0.0.1"), ip("fd00::1")]),
        },
        Case {
            name: "a pod changing IP leaves the old IP's lookup",
            setup: [base(), vec![pod("app", "a").ip("10.0.0.1").into()]].concat(),
            change: vec![put(pod("app", "a").ip("10.0.0.2"))],
            events: &["+workload app/a"],
            check: |index| {
                assert_eq!(index.workloads_by_ip(ip("10.0.0.1")).count(), 0);
                assert_eq!(index.workloads_by_ip(ip("10.0.0.2")).count(), 1);
            },
        },
        Case {
            name: "a pod moved to another node",
            setup: [base(), vec![pod("app", "a").ip("10.0.0.1").node("node-1").into()]].concat(),
            change: vec![put(pod("app", "a").ip("10.0.0.1").node("node-2"))],
            events: &["+workload app/a"],
            check: |index| {
                assert_eq!(workload(index, "app", "a").node.as_deref(), Some("node-2"));
                assert_eq!(index.workloads_on_node("node-1").count(), 0);
                let on_two: Vec<_> = index.workloads_on_node("node-2").map(|w| w.key.to_string()).collect();
                assert_eq!(on_two, ["app/a"]);
            },
        },
        Case {
            name: "host-network pods share their node's IP",
            setup: base(),
            change: vec![
                put(pod("app", "h1").host_network().ip("192.168.0.5").node("node-1")),
                put(pod("app", "h2").host_network().ip("192.168.0.5").node("node-1")),
            ],
            events: &["+workload app/h1", "+workload app/h2"],
            check: |index| assert_eq!(index.workloads_by_ip(ip("192.168.0.5")).count(), 2),
        },
    ]);
}

#[test]
fn identity_and_uid() {
    let mut h = Harness::new(vec![namespace("app").into()]);
    assert_eq!(h.put(pod("app", "a").service_account("reviews")), ["+workload app/a"]);
    assert_eq!(h.put(pod("app", "b")), ["+workload app/b"]);
    let a = workload(&h.index, "app", "a");
    assert_eq!(a.identity.to_string(), "spiffe://cluster.local/ns/app/sa/reviews");
    assert_eq!(a.uid.as_deref(), Some("uid-app-a"));
    assert_eq!(workload(&h.index, "app", "b").identity.to_string(), "spiffe://cluster.local/ns/app/sa/default");
    // A new service account is a new identity.
    assert_eq!(h.put(pod("app", "a").service_account("ratings")), ["+workload app/a"]);
    assert_eq!(workload(&h.index, "app", "a").identity.service_account, "ratings");
}

fn enrolled(index: &MeshIndex, namespace: &str, name: &str) -> bool {
    workload(index, namespace, name).enrolled
}

#[test]
fn enrolment() {
    let plain_pods = || -> Vec<Resource> {
        vec![
            namespace("app").into(),
            namespace("other").into(),
            pod("app", "a").into(),
            pod("app", "b").into(),
            pod("other", "c").into(),
        ]
    };
    let ambient_pods =
        || -> Vec<Resource> { vec![ambient_namespace("app").into(), pod("app", "a").into(), pod("app", "b").into()] };
    run_cases(vec![
        Case {
            name: "namespace label added enrols the namespace's pods only",
            setup: plain_pods(),
            change: vec![put(ambient_namespace("app"))],
            events: &["+workload app/a", "+workload app/b"],
            check: |index| {
                assert!(enrolled(index, "app", "a") && enrolled(index, "app", "b"));
                assert!(!enrolled(index, "other", "c"));
            },
        },
        Case {
            name: "namespace label removed un-enrols its pods",
            setup: ambient_pods(),
            change: vec![put(namespace("app"))],
            events: &["+workload app/a", "+workload app/b"],
            check: |index| assert!(!enrolled(index, "app", "a") && !enrolled(index, "app", "b")),
        },
        Case {
            name: "namespace deleted un-enrols its pods",
            setup: ambient_pods(),
            change: vec![remove(namespace("app"))],
            events: &["+workload app/a", "+workload app/b"],
            check: |index| assert!(!enrolled(index, "app", "a")),
        },
        Case {
            name: "namespace labelled with a value other than ambient enrols nothing",
            setup: plain_pods(),
            change: vec![put(namespace("app").label("istio.io/dataplane-mode", "sidecar"))],
            events: &[],
            check: |index| assert!(!enrolled(index, "app", "a")),
        },
        Case {
            name: "pod opts out with none in an enrolled namespace",
            setup: ambient_pods(),
            change: vec![put(pod("app", "a").label("istio.io/dataplane-mode", "none"))],
            events: &["+workload app/a"],
            check: |index| assert!(!enrolled(index, "app", "a") && enrolled(index, "app", "b")),
        },
        Case {
            name: "an opted-out pod stays out when its namespace enrols",
            setup: vec![namespace("app").into(), pod("app", "a").label("istio.io/dataplane-mode", "none").into()],
            change: vec![put(ambient_namespace("app"))],
            events: &[],
            check: |index| assert!(!enrolled(index, "app", "a")),
        },
        Case {
            name: "pod-level opt-in in a plain namespace",
            setup: plain_pods(),
            change: vec![put(pod("app", "a").label("istio.io/dataplane-mode", "ambient"))],
            events: &["+workload app/a"],
            check: |index| assert!(enrolled(index, "app", "a") && !enrolled(index, "app", "b")),
        },
        Case {
            name: "host-network pods are never enrolled",
            setup: ambient_pods(),
            change: vec![put(pod("app", "h").host_network().label("istio.io/dataplane-mode", "ambient"))],
            events: &["+workload app/h"],
            check: |index| assert!(!enrolled(index, "app", "h")),
        },
        Case {
            name: "pods with a sidecar are never enrolled",
            setup: ambient_pods(),
            change: vec![put(pod("app", "a").annotation("sidecar.istio.io/status", "{}"))],
            events: &["+workload app/a"],
            check: |index| assert!(!enrolled(index, "app", "a")),
        },
        Case {
            name: "a pod that completes stops being a workload",
            setup: ambient_pods(),
            change: vec![put(pod("app", "a").phase("Succeeded"))],
            events: &["-workload app/a"],
            check: |index| assert!(index.workload(&crate::mesh::WorkloadKey::new("app", "a")).is_none()),
        },
        Case {
            name: "a pod that is already failed never becomes one",
            setup: ambient_pods(),
            change: vec![put(pod("app", "f").phase("Failed"))],
            events: &[],
            check: |index| assert_eq!(index.workloads().count(), 2),
        },
        Case {
            name: "pods enrol with a namespace created after them",
            setup: vec![pod("app", "a").into()],
            change: vec![put(ambient_namespace("app"))],
            events: &["+workload app/a"],
            check: |index| assert!(enrolled(index, "app", "a")),
        },
    ]);
}

#[test]
fn deleting_a_pod_removes_it_from_every_lookup() {
    let mut h = Harness::new(vec![
        ambient_namespace("app").into(),
        service("app", "web").selector("app", "web").port(80).into(),
        pod("app", "a").label("app", "web").ip("10.0.0.1").node("node-1").into(),
    ]);
    assert_eq!(members(&h.index, "app", "web"), ["app/a"]);
    assert_eq!(h.delete(pod("app", "a")), ["-workload app/a"]);
    assert!(members(&h.index, "app", "web").is_empty());
    assert_eq!(h.index.workloads_by_ip(ip("10.0.0.1")).count(), 0);
    assert_eq!(h.index.workloads_on_node("node-1").count(), 0);
}

#[test]
fn mesh_config_decides_trust_domain_and_root_namespace() {
    assert_eq!(MeshConfig::new("cluster.local", "istio-system"), Ok(MeshConfig::default()));
    assert!(MeshConfig::new("Cluster.Local", "istio-system").is_err(), "trust domains are lowercase");
    assert!(MeshConfig::new("cluster.local", "").is_err(), "the root namespace must be a name");

    let config = MeshConfig::new("example.org", "mesh-root").expect("valid config");
    let mut index = MeshIndex::new(config);
    let objects: Vec<Resource> = vec![
        pod("app", "a").into(),
        authz("mesh-root", "everyone").into(),
        // Not the root namespace here: binds only its own namespace's pods.
        authz("istio-system", "local").into(),
    ];
    let changes = objects.into_iter().map(|r| Change::Applied(Arc::new(r))).collect();
    index.apply(&ChangeSet { revision: 1, changes });
    let a = workload(&index, "app", "a");
    assert_eq!(a.identity.to_string(), "spiffe://example.org/ns/app/sa/default");
    let policies: Vec<_> = a.policies.iter().map(ToString::to_string).collect();
    assert_eq!(policies, ["AuthorizationPolicy mesh-root/everyone"]);
}
