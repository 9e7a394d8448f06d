//! Services: VIPs, selectors and membership, and waypoint binding of services and pods.

use std::net::IpAddr;

use super::build::{ambient_namespace, labels, namespace, pod, service};
use super::{Case, Harness, members, put, remove, run_cases, workload};
use crate::mesh::{MeshIndex, ServiceKey, TargetPort, WaypointRef};
use crate::model::Resource;

fn vip(text: &str) -> IpAddr {
    text.parse().expect("test IPs are valid")
}

fn web_and_api_pods() -> Vec<Resource> {
    vec![
        ambient_namespace("app").into(),
        namespace("other").into(),
        pod("app", "a").label("app", "web").ip("10.0.0.1").into(),
        pod("app", "b").label("app", "api").ip("10.0.0.2").into(),
        // Same labels, other namespace: never a member of app's services.
        pod("other", "c").label("app", "web").ip("10.0.1.1").into(),
    ]
}

fn with_web_service(mut objects: Vec<Resource>) -> Vec<Resource> {
    objects.push(service("app", "s").selector("app", "web").cluster_ip("10.96.0.1").port(80).into());
    objects
}

fn service_names(index: &MeshIndex, namespace: &str, pod: &str) -> Vec<String> {
    workload(index, namespace, pod).services.keys().map(ToString::to_string).collect()
}

#[test]
fn service_facts() {
    let mut h = Harness::new(vec![namespace("app").into()]);
    let svc = service("app", "s").selector("app", "web").cluster_ip("10.96.0.1").port_named(80, "http").port(443);
    assert_eq!(h.put(svc), ["+service app/s"]);
    let s = h.index.service(&ServiceKey::new("app", "s")).cloned().expect("service is indexed");
    assert_eq!(s.vips, vec![vip("10.96.0.1")]);
    assert!(!s.headless);
    assert_eq!(s.selector, labels(&[("app", "web")]));
    let targets: Vec<_> = s.ports.iter().map(|p| (p.port, p.target_port.clone())).collect();
    assert_eq!(targets, vec![(80, TargetPort::Name("http".into())), (443, TargetPort::Number(443))]);
    let by_vip: Vec<_> = h.index.services_by_vip(vip("10.96.0.1")).map(|s| s.key.to_string()).collect();
    assert_eq!(by_vip, ["app/s"]);

    // Headless: no VIP, and the old VIP is no longer looked up.
    assert_eq!(h.put(service("app", "s").selector("app", "web").cluster_ip("None").port(80)), ["+service app/s"]);
    let s = h.index.service(&ServiceKey::new("app", "s")).cloned().expect("service is indexed");
    assert!(s.headless);
    assert!(s.vips.is_empty());
    assert_eq!(h.index.services_by_vip(vip("10.96.0.1")).count(), 0);
}

#[test]
fn selectors_and_membership() {
    run_cases(vec![
        Case {
            name: "a new service selects matching pods of its namespace only",
            setup: web_and_api_pods(),
            change: vec![put(service("app", "s").selector("app", "web").port(80))],
            events: &["+service app/s", "+workload app/a"],
            check: |index| {
                assert_eq!(members(index, "app", "s"), ["app/a"]);
                assert!(service_names(index, "other", "c").is_empty());
            },
        },
        Case {
            name: "selector change moves membership",
            setup: with_web_service(web_and_api_pods()),
            change: vec![put(service("app", "s").selector("app", "api").cluster_ip("10.96.0.1").port(80))],
            events: &["+service app/s", "+workload app/a", "+workload app/b"],
            check: |index| {
                assert!(service_names(index, "app", "a").is_empty());
                assert_eq!(service_names(index, "app", "b"), ["app/s"]);
                assert_eq!(members(index, "app", "s"), ["app/b"]);
            },
        },
        Case {
            name: "a selector needing every label narrows membership",
            setup: with_web_service(web_and_api_pods()),
            change: vec![put(service("app", "s")
                .selector("app", "web")
                .selector("tier", "front")
                .cluster_ip("10.96.0.1")
                .port(80))],
            events: &["+service app/s", "+workload app/a"],
            check: |index| assert!(members(index, "app", "s").is_empty()),
        },
        Case {
            name: "service deletion removes memberships, after the workload update",
            setup: with_web_service(web_and_api_pods()),
            change: vec![remove(service("app", "s"))],
            events: &["+workload app/a", "-service app/s"],
            check: |index| {
                assert!(service_names(index, "app", "a").is_empty());
                assert!(members(index, "app", "s").is_empty());
                assert_eq!(index.services_by_vip(vip("10.96.0.1")).count(), 0);
            },
        },
        Case {
            name: "a service without a selector selects nothing",
            setup: web_and_api_pods(),
            change: vec![put(service("app", "manual").port(80))],
            events: &["+service app/manual"],
            check: |index| assert!(members(index, "app", "manual").is_empty()),
        },
        Case {
            name: "a pod relabelled into the selector joins",
            setup: with_web_service(web_and_api_pods()),
            change: vec![put(pod("app", "b").label("app", "web").ip("10.0.0.2"))],
            events: &["+workload app/b"],
            check: |index| assert_eq!(members(index, "app", "s"), ["app/a", "app/b"]),
        },
        Case {
            name: "a VIP change touches the service only",
            setup: with_web_service(web_and_api_pods()),
            change: vec![put(service("app", "s").selector("app", "web").cluster_ip("10.96.0.2").port(80))],
            events: &["+service app/s"],
            check: |index| {
                assert_eq!(index.services_by_vip(vip("10.96.0.1")).count(), 0);
                assert_eq!(index.services_by_vip(vip("10.96.0.2")).count(), 1);
            },
        },
        Case {
            name: "a port change updates the members' mappings",
            setup: with_web_service(web_and_api_pods()),
            change: vec![put(service("app", "s").selector("app", "web").cluster_ip("10.96.0.1").port_to(80, 8080))],
            events: &["+service app/s", "+workload app/a"],
            check: |index| {
                let a = workload(index, "app", "a");
                let ports = &a.services[&ServiceKey::new("app", "s")];
                assert_eq!(ports.iter().map(|p| (p.port, p.target_port)).collect::<Vec<_>>(), [(80, 8080)]);
            },
        },
        Case {
            name: "a service created and deleted in one batch emits nothing",
            setup: web_and_api_pods(),
            change: vec![put(service("app", "t").selector("app", "web").port(80)), remove(service("app", "t"))],
            events: &[],
            check: |index| assert!(service_names(index, "app", "a").is_empty()),
        },
    ]);
}

fn pod_waypoint(index: &MeshIndex, namespace: &str, name: &str) -> Option<String> {
    workload(index, namespace, name).waypoint.as_ref().map(WaypointRef::to_string)
}

fn service_waypoint(index: &MeshIndex, namespace: &str, name: &str) -> Option<String> {
    let service = index.service(&ServiceKey::new(namespace, name)).expect("service is indexed");
    service.waypoint.as_ref().map(WaypointRef::to_string)
}

/// Namespace `app` without a waypoint, pod `a` and service `s` inheriting, pod `own` and service
/// `own` naming their own, pod `out` and service `out` opting out.
fn waypoint_fixture(namespace_object: Resource) -> Vec<Resource> {
    vec![
        namespace_object,
        pod("app", "a").into(),
        pod("app", "own").label("istio.io/use-waypoint", "pod-wp").into(),
        pod("app", "out").label("istio.io/use-waypoint", "none").into(),
        service("app", "s").into(),
        service("app", "own").label("istio.io/use-waypoint", "svc-wp").into(),
        service("app", "out").label("istio.io/use-waypoint", "none").into(),
    ]
}

fn plain_app() -> Resource {
    namespace("app").into()
}

fn app_with_waypoint() -> Resource {
    namespace("app").label("istio.io/use-waypoint", "ns-wp").into()
}

#[test]
fn waypoint_binding() {
    run_cases(vec![
        Case {
            name: "own labels bind, none binds nothing, the rest inherit nothing",
            setup: waypoint_fixture(plain_app()),
            change: vec![],
            events: &[],
            check: |index| {
                assert_eq!(pod_waypoint(index, "app", "a"), None);
                assert_eq!(pod_waypoint(index, "app", "own").as_deref(), Some("app/pod-wp"));
                assert_eq!(pod_waypoint(index, "app", "out"), None);
                assert_eq!(service_waypoint(index, "app", "s"), None);
                assert_eq!(service_waypoint(index, "app", "own").as_deref(), Some("app/svc-wp"));
            },
        },
        Case {
            name: "namespace label binds only objects that inherit",
            setup: waypoint_fixture(plain_app()),
            change: vec![put(app_with_waypoint())],
            events: &["+service app/s", "+workload app/a"],
            check: |index| {
                assert_eq!(pod_waypoint(index, "app", "a").as_deref(), Some("app/ns-wp"));
                assert_eq!(pod_waypoint(index, "app", "own").as_deref(), Some("app/pod-wp"));
                assert_eq!(pod_waypoint(index, "app", "out"), None);
                assert_eq!(service_waypoint(index, "app", "s").as_deref(), Some("app/ns-wp"));
                assert_eq!(service_waypoint(index, "app", "own").as_deref(), Some("app/svc-wp"));
                assert_eq!(service_waypoint(index, "app", "out"), None);
            },
        },
        Case {
            name: "namespace label removed unbinds the inheritors",
            setup: waypoint_fixture(app_with_waypoint()),
            change: vec![put(plain_app())],
            events: &["+service app/s", "+workload app/a"],
            check: |index| {
                assert_eq!(pod_waypoint(index, "app", "a"), None);
                assert_eq!(service_waypoint(index, "app", "s"), None);
            },
        },
        Case {
            name: "namespace waypoint in another namespace",
            setup: waypoint_fixture(plain_app()),
            change: vec![put(namespace("app")
                .label("istio.io/use-waypoint", "shared")
                .label("istio.io/use-waypoint-namespace", "infra"))],
            events: &["+service app/s", "+workload app/a"],
            check: |index| {
                assert_eq!(pod_waypoint(index, "app", "a").as_deref(), Some("infra/shared"));
                // The namespace's waypoint namespace does not leak into the pod's own choice.
                assert_eq!(pod_waypoint(index, "app", "own").as_deref(), Some("app/pod-wp"));
            },
        },
        Case {
            name: "pod waypoint in another namespace",
            setup: waypoint_fixture(app_with_waypoint()),
            change: vec![put(pod("app", "a")
                .label("istio.io/use-waypoint", "shared")
                .label("istio.io/use-waypoint-namespace", "infra"))],
            events: &["+workload app/a"],
            check: |index| assert_eq!(pod_waypoint(index, "app", "a").as_deref(), Some("infra/shared")),
        },
        Case {
            name: "pod opting out with none overrides the namespace",
            setup: waypoint_fixture(app_with_waypoint()),
            change: vec![put(pod("app", "a").label("istio.io/use-waypoint", "none"))],
            events: &["+workload app/a"],
            check: |index| assert_eq!(pod_waypoint(index, "app", "a"), None),
        },
        Case {
            name: "service label change touches the service, not its pods",
            setup: {
                let mut objects = waypoint_fixture(app_with_waypoint());
                objects.push(service("app", "sel").selector("app", "web").into());
                objects.push(pod("app", "web").label("app", "web").into());
                objects
            },
            change: vec![put(service("app", "sel").selector("app", "web").label("istio.io/use-waypoint", "none"))],
            events: &["+service app/sel"],
            check: |index| {
                assert_eq!(service_waypoint(index, "app", "sel"), None);
                assert_eq!(pod_waypoint(index, "app", "web").as_deref(), Some("app/ns-wp"));
            },
        },
    ]);
}

#[test]
fn namespace_changes_reach_only_their_namespace() {
    let mut h = Harness::new(vec![
        namespace("app").into(),
        namespace("other").into(),
        pod("app", "a").into(),
        pod("other", "b").into(),
        service("other", "s").into(),
    ]);
    let events = h.put(namespace("app").label("istio.io/use-waypoint", "wp"));
    assert_eq!(events, ["+workload app/a"]);
    assert_eq!(pod_waypoint(&h.index, "other", "b"), None);
}
