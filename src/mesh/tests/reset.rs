//! No-op changes, and resets: from scratch, over an existing state, versus incremental changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::build::{ambient_namespace, authz, namespace, pod, service};
use super::{Case, Harness, no_check, put, remove, run_cases, summarize};
use crate::config::yaml::{DecodeOptions, decode_document, split_documents};
use crate::config::{Change, ChangeSet, Snapshot};
use crate::mesh::{MeshConfig, MeshIndex, PolicyKey, PolicyKind};
use crate::model::Resource;

fn fixture() -> Vec<Resource> {
    vec![
        ambient_namespace("app").into(),
        pod("app", "a").label("app", "web").ip("10.0.0.1").port("http", 8080).into(),
        service("app", "s").selector("app", "web").cluster_ip("10.96.0.1").port_named(80, "http").into(),
        authz("app", "p").selector("app", "web").into(),
    ]
}

#[test]
fn changes_that_derive_nothing_new_emit_nothing() {
    run_cases(vec![
        Case {
            name: "pod annotation",
            setup: fixture(),
            change: vec![put(pod("app", "a")
                .label("app", "web")
                .ip("10.0.0.1")
                .port("http", 8080)
                .annotation("x", "y"))],
            events: &[],
            check: no_check,
        },
        Case {
            name: "unrelated namespace label",
            setup: fixture(),
            change: vec![put(ambient_namespace("app").label("team", "blue"))],
            events: &[],
            check: no_check,
        },
        Case {
            name: "service annotation",
            setup: fixture(),
            change: vec![put(service("app", "s")
                .selector("app", "web")
                .cluster_ip("10.96.0.1")
                .port_named(80, "http")
                .annotation("x", "y"))],
            events: &[],
            check: no_check,
        },
        Case {
            name: "policy metadata label",
            setup: fixture(),
            change: vec![put(authz("app", "p").selector("app", "web").label("team", "blue"))],
            events: &[],
            check: no_check,
        },
        Case {
            name: "pod deleted and recreated identically in one batch",
            setup: fixture(),
            change: vec![
                remove(pod("app", "a")),
                put(pod("app", "a").label("app", "web").ip("10.0.0.1").port("http", 8080)),
            ],
            events: &[],
            check: no_check,
        },
        Case {
            name: "kinds the index does not use",
            setup: fixture(),
            change: vec![put(Resource::ServiceAccount(k8s_openapi::api::core::v1::ServiceAccount {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some("sa".into()),
                    namespace: Some("app".into()),
                    ..Default::default()
                },
                ..Default::default()
            }))],
            events: &[],
            check: no_check,
        },
    ]);
}

#[test]
fn applying_the_same_change_set_twice_emits_nothing_the_second_time() {
    let mut index = MeshIndex::new(MeshConfig::default());
    let changes =
        ChangeSet { revision: 1, changes: fixture().into_iter().map(|r| Change::Applied(Arc::new(r))).collect() };
    let first = summarize(&index.apply(&changes));
    assert_eq!(first, ["+policy AuthorizationPolicy app/p", "+service app/s", "+workload app/a"]);
    assert!(index.apply(&changes).is_empty());
}

const MESH_YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: shop-wp
---
apiVersion: v1
kind: Pod
metadata:
  name: cart-1
  namespace: shop
  labels: {app: cart}
spec:
  serviceAccountName: cart
  nodeName: node-1
  containers:
  - name: cart
    ports: [{name: http, containerPort: 8080}]
status:
  phase: Running
  podIP: 10.1.0.1
---
apiVersion: v1
kind: Pod
metadata:
  name: cart-2
  namespace: shop
  labels: {app: cart, istio.io/use-waypoint: none}
spec:
  serviceAccountName: cart
  nodeName: node-2
  containers:
  - name: cart
    ports: [{name: http, containerPort: 9090}]
status:
  phase: Running
  podIPs: [{ip: 10.1.0.2}]
---
apiVersion: v1
kind: Pod
metadata:
  name: batch
  namespace: shop
spec:
  containers: [{name: job}]
status:
  phase: Succeeded
---
apiVersion: v1
kind: Service
metadata:
  name: cart
  namespace: shop
spec:
  clusterIP: 10.96.1.1
  selector: {app: cart}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: cart
  namespace: shop
spec:
  selector:
    matchLabels: {app: cart}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: cart-waypoint
  namespace: shop
spec:
  targetRefs: [{kind: Service, group: "", name: cart}]
"#;

fn decode(yaml: &str) -> Vec<Resource> {
    split_documents(yaml)
        .iter()
        .map(|doc| {
            let decoded = decode_document("test.yaml", doc, &DecodeOptions::default());
            assert!(decoded.diagnostics.is_empty(), "{:?}", decoded.diagnostics);
            decoded.resource.expect("document decodes")
        })
        .collect()
}

fn snapshot(objects: Vec<Resource>, revision: u64) -> Snapshot {
    let objects: BTreeMap<_, _> = objects.into_iter().map(|r| (r.object_ref(), Arc::new(r))).collect();
    Snapshot { revision, objects }
}

#[test]
fn reset_matches_incremental_application_in_any_order() {
    let objects = decode(MESH_YAML);
    let mut from_snapshot = MeshIndex::new(MeshConfig::default());
    let events = summarize(&from_snapshot.reset(&snapshot(objects.clone(), 8)));
    assert_eq!(
        events,
        [
            "+policy PeerAuthentication istio-system/default",
            "+policy AuthorizationPolicy shop/cart",
            "+policy AuthorizationPolicy shop/cart-waypoint",
            "+service shop/cart",
            "+workload shop/cart-1",
            "+workload shop/cart-2",
        ]
    );

    // One object per change set, dependents before what they depend on.
    for order in [objects.iter().rev().cloned().collect::<Vec<_>>(), objects.clone()] {
        let mut incremental = MeshIndex::new(MeshConfig::default());
        for (i, object) in order.into_iter().enumerate() {
            let revision = i as u64 + 1;
            incremental.apply(&ChangeSet { revision, changes: vec![Change::Applied(Arc::new(object))] });
        }
        assert_eq!(incremental, from_snapshot);
    }

    let index = &from_snapshot;
    let cart_1 = super::workload(index, "shop", "cart-1");
    let cart_2 = super::workload(index, "shop", "cart-2");
    assert!(cart_1.enrolled && cart_2.enrolled);
    assert_eq!(cart_1.identity.to_string(), "spiffe://cluster.local/ns/shop/sa/cart");
    assert_eq!(cart_1.waypoint.as_ref().map(ToString::to_string).as_deref(), Some("shop/shop-wp"));
    assert_eq!(cart_2.waypoint, None);
    let ports = |w: &crate::mesh::Workload| -> Vec<(u16, u16)> {
        w.services.values().flatten().map(|p| (p.port, p.target_port)).collect()
    };
    assert_eq!(ports(&cart_1), [(80, 8080)]);
    assert_eq!(ports(&cart_2), [(80, 9090)]);
    let policies: Vec<_> = cart_1.policies.iter().map(ToString::to_string).collect();
    assert_eq!(policies, ["PeerAuthentication istio-system/default", "AuthorizationPolicy shop/cart"]);
    assert_eq!(index.revision(), 8);
}

#[test]
fn reset_over_existing_state_emits_only_the_difference() {
    let mut h = Harness::new(vec![
        namespace("app").into(),
        pod("app", "a").label("app", "web").into(),
        pod("app", "b").label("app", "web").into(),
        service("app", "s").selector("app", "web").port(80).into(),
        service("app", "gone").selector("app", "web").port(81).into(),
        authz("app", "p").selector("app", "web").into(),
    ]);
    // The new state: pod b got an IP, service `gone` went, policy `q` came.
    let next = vec![
        namespace("app").into(),
        pod("app", "a").label("app", "web").into(),
        pod("app", "b").label("app", "web").ip("10.0.0.2").into(),
        service("app", "s").selector("app", "web").port(80).into(),
        authz("app", "p").selector("app", "web").into(),
        authz("app", "q").into(),
    ];
    let events = summarize(&h.index.reset(&snapshot(next.clone(), 42)));
    assert_eq!(
        events,
        ["+policy AuthorizationPolicy app/q", "+workload app/a", "+workload app/b", "-service app/gone",]
    );
    let mut fresh = MeshIndex::new(MeshConfig::default());
    fresh.reset(&snapshot(next.clone(), 42));
    assert_eq!(h.index, fresh);
    assert!(h.index.policy(&PolicyKey::new(PolicyKind::AuthorizationPolicy, "app", "q")).is_some());

    // The same snapshot again changes nothing.
    assert!(h.index.reset(&snapshot(next, 42)).is_empty());
}
