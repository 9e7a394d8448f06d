//! Policy binding: root-namespace vs namespace policies, selectors, targetRefs.

use super::build::{ambient_namespace, authz, labels, namespace, peer_auth, pod};
use super::{Case, Harness, put, remove, run_cases, workload};
use crate::mesh::{MeshIndex, PolicyKey, PolicyKind, PolicyScope, PolicyTarget, TargetKind};
use crate::model::Resource;
use crate::model::security::MtlsMode;

const GATEWAY_API: &str = "gateway.networking.k8s.io";

/// Pods `app/a` (app=web), `app/b` (app=api) and `other/c` (app=web), no policies.
fn pods() -> Vec<Resource> {
    vec![
        ambient_namespace("app").into(),
        ambient_namespace("other").into(),
        namespace("istio-system").into(),
        pod("app", "a").label("app", "web").into(),
        pod("app", "b").label("app", "api").into(),
        pod("other", "c").label("app", "web").into(),
    ]
}

fn with(mut objects: Vec<Resource>, more: impl Into<Resource>) -> Vec<Resource> {
    objects.push(more.into());
    objects
}

/// The policies bound to a workload, as `Kind ns/name`.
fn bound(index: &MeshIndex, namespace: &str, name: &str) -> Vec<String> {
    workload(index, namespace, name).policies.iter().map(ToString::to_string).collect()
}

fn authz_key(namespace: &str, name: &str) -> PolicyKey {
    PolicyKey::new(PolicyKind::AuthorizationPolicy, namespace, name)
}

fn scope(index: &MeshIndex, key: &PolicyKey) -> PolicyScope {
    index.policy(key).map(|p| p.scope.clone()).expect("policy is indexed")
}

#[test]
fn workload_policy_binding() {
    run_cases(vec![
        Case {
            name: "namespace policy with a selector binds matching pods of its namespace",
            setup: pods(),
            change: vec![put(authz("app", "p").selector("app", "web"))],
            events: &["+policy AuthorizationPolicy app/p", "+workload app/a"],
            check: |index| {
                assert_eq!(bound(index, "app", "a"), ["AuthorizationPolicy app/p"]);
                assert!(bound(index, "app", "b").is_empty());
                assert!(bound(index, "other", "c").is_empty(), "same labels, other namespace");
                let labels = labels(&[("app", "web")]);
                assert_eq!(scope(index, &authz_key("app", "p")), PolicyScope::NamespaceSelector(labels));
            },
        },
        Case {
            name: "selector change: stops matching one pod, starts matching another",
            setup: with(pods(), authz("app", "p").selector("app", "web")),
            change: vec![put(authz("app", "p").selector("app", "api"))],
            events: &["+policy AuthorizationPolicy app/p", "+workload app/a", "+workload app/b"],
            check: |index| {
                assert!(bound(index, "app", "a").is_empty());
                assert_eq!(bound(index, "app", "b"), ["AuthorizationPolicy app/p"]);
            },
        },
        Case {
            name: "pod relabelled out of the selector loses the policy",
            setup: with(pods(), authz("app", "p").selector("app", "web")),
            change: vec![put(pod("app", "a").label("app", "other"))],
            events: &["+workload app/a"],
            check: |index| assert!(bound(index, "app", "a").is_empty()),
        },
        Case {
            name: "namespace policy without a selector binds its whole namespace",
            setup: pods(),
            change: vec![put(authz("app", "all"))],
            events: &["+policy AuthorizationPolicy app/all", "+workload app/a", "+workload app/b"],
            check: |index| {
                assert!(bound(index, "other", "c").is_empty());
                assert_eq!(scope(index, &authz_key("app", "all")), PolicyScope::Namespace);
            },
        },
        Case {
            name: "an empty matchLabels selects like no selector",
            setup: pods(),
            change: vec![put(authz("app", "all").empty_selector())],
            events: &["+policy AuthorizationPolicy app/all", "+workload app/a", "+workload app/b"],
            check: |index| assert_eq!(scope(index, &authz_key("app", "all")), PolicyScope::Namespace),
        },
        Case {
            name: "root-namespace policy without a selector binds every workload",
            setup: pods(),
            change: vec![put(authz("istio-system", "mesh"))],
            events: &[
                "+policy AuthorizationPolicy istio-system/mesh",
                "+workload app/a",
                "+workload app/b",
                "+workload other/c",
            ],
            check: |index| {
                assert_eq!(bound(index, "other", "c"), ["AuthorizationPolicy istio-system/mesh"]);
                assert_eq!(scope(index, &authz_key("istio-system", "mesh")), PolicyScope::Mesh);
            },
        },
        Case {
            name: "root-namespace policy with a selector binds matching pods in every namespace",
            setup: pods(),
            change: vec![put(authz("istio-system", "web").selector("app", "web"))],
            events: &["+policy AuthorizationPolicy istio-system/web", "+workload app/a", "+workload other/c"],
            check: |index| {
                assert!(bound(index, "app", "b").is_empty());
                assert_eq!(bound(index, "other", "c"), ["AuthorizationPolicy istio-system/web"]);
            },
        },
        Case {
            name: "root and namespace policies bind side by side, ordered by key",
            setup: with(with(pods(), authz("istio-system", "mesh")), authz("app", "p").selector("app", "web")),
            change: vec![],
            events: &[],
            check: |index| {
                let want = ["AuthorizationPolicy app/p", "AuthorizationPolicy istio-system/mesh"];
                assert_eq!(bound(index, "app", "a"), want);
                assert_eq!(bound(index, "app", "b"), ["AuthorizationPolicy istio-system/mesh"]);
            },
        },
        Case {
            name: "a change of rules only updates the policy, not the workloads",
            setup: with(pods(), authz("app", "p").selector("app", "web")),
            change: vec![put(authz("app", "p").selector("app", "web").allow_from("cluster.local/ns/app/sa/x"))],
            events: &["+policy AuthorizationPolicy app/p"],
            check: |index| assert_eq!(bound(index, "app", "a"), ["AuthorizationPolicy app/p"]),
        },
        Case {
            name: "deleting a policy unbinds it before announcing the removal",
            setup: with(pods(), authz("app", "p").selector("app", "web")),
            change: vec![remove(authz("app", "p"))],
            events: &["+workload app/a", "-policy AuthorizationPolicy app/p"],
            check: |index| {
                assert!(bound(index, "app", "a").is_empty());
                assert!(index.policy(&authz_key("app", "p")).is_none());
            },
        },
        Case {
            name: "PeerAuthentication binds like AuthorizationPolicy, under its own kind",
            setup: with(pods(), authz("app", "p").selector("app", "web")),
            change: vec![put(peer_auth("app", "p").selector("app", "web"))],
            events: &["+policy PeerAuthentication app/p", "+workload app/a"],
            check: |index| {
                assert_eq!(bound(index, "app", "a"), ["AuthorizationPolicy app/p", "PeerAuthentication app/p"]);
            },
        },
        Case {
            name: "a PeerAuthentication mode change updates the policy only",
            setup: with(pods(), peer_auth("istio-system", "default")),
            change: vec![put(peer_auth("istio-system", "default").mode(MtlsMode::Permissive))],
            events: &["+policy PeerAuthentication istio-system/default"],
            check: |index| assert_eq!(bound(index, "other", "c"), ["PeerAuthentication istio-system/default"]),
        },
    ]);
}

fn service_target(namespace: &str, name: &str) -> PolicyTarget {
    PolicyTarget::new(TargetKind::Service, namespace, name)
}

fn attached(index: &MeshIndex, target: &PolicyTarget) -> Vec<String> {
    index.policies_for_target(target).map(|p| p.key.to_string()).collect()
}

#[test]
fn target_ref_policies() {
    run_cases(vec![
        Case {
            name: "targetRefs policies bind to their targets, not to workloads",
            setup: pods(),
            change: vec![put(authz("app", "t")
                .target("", "Service", "s")
                .target(GATEWAY_API, "Gateway", "wp")
                .selector("app", "web"))],
            events: &["+policy AuthorizationPolicy app/t"],
            check: |index| {
                assert!(bound(index, "app", "a").is_empty(), "a targetRefs policy ignores its selector");
                assert_eq!(attached(index, &service_target("app", "s")), ["AuthorizationPolicy app/t"]);
                let gateway = PolicyTarget::new(TargetKind::Gateway, "app", "wp");
                assert_eq!(attached(index, &gateway), ["AuthorizationPolicy app/t"]);
                assert!(attached(index, &service_target("other", "s")).is_empty());
            },
        },
        Case {
            name: "retargeting moves the policy between targets",
            setup: with(pods(), authz("app", "t").target("", "Service", "s")),
            change: vec![put(authz("app", "t").target("", "Service", "s2"))],
            events: &["+policy AuthorizationPolicy app/t"],
            check: |index| {
                assert!(attached(index, &service_target("app", "s")).is_empty());
                assert_eq!(attached(index, &service_target("app", "s2")), ["AuthorizationPolicy app/t"]);
            },
        },
        Case {
            name: "a policy switched from a selector to a target leaves its workloads",
            setup: with(pods(), authz("app", "t").selector("app", "web")),
            change: vec![put(authz("app", "t").target("", "Service", "s"))],
            events: &["+policy AuthorizationPolicy app/t", "+workload app/a"],
            check: |index| assert!(bound(index, "app", "a").is_empty()),
        },
        Case {
            name: "deleting a targetRefs policy detaches it",
            setup: with(pods(), authz("app", "t").target("", "Service", "s")),
            change: vec![remove(authz("app", "t"))],
            events: &["-policy AuthorizationPolicy app/t"],
            check: |index| assert!(attached(index, &service_target("app", "s")).is_empty()),
        },
        Case {
            name: "GatewayClass targets count only from the root namespace; unknown kinds never",
            setup: pods(),
            change: vec![
                put(authz("istio-system", "class").target(GATEWAY_API, "GatewayClass", "istio-waypoint")),
                put(authz("app", "class").target(GATEWAY_API, "GatewayClass", "istio-waypoint")),
                put(authz("app", "odd").target("apps", "Deployment", "web")),
            ],
            events: &[
                "+policy AuthorizationPolicy app/class",
                "+policy AuthorizationPolicy app/odd",
                "+policy AuthorizationPolicy istio-system/class",
            ],
            check: |index| {
                let class = PolicyTarget::new(TargetKind::GatewayClass, "", "istio-waypoint");
                assert_eq!(attached(index, &class), ["AuthorizationPolicy istio-system/class"]);
                assert_eq!(scope(index, &authz_key("app", "odd")), PolicyScope::Targets(vec![]));
                assert!(bound(index, "app", "a").is_empty());
            },
        },
    ]);
}

#[test]
fn pods_arriving_later_pick_up_existing_policies() {
    let mut h = Harness::new(with(pods(), authz("istio-system", "web").selector("app", "web")));
    assert_eq!(h.put(pod("other", "d").label("app", "web")), ["+workload other/d"]);
    assert_eq!(bound(&h.index, "other", "d"), ["AuthorizationPolicy istio-system/web"]);
}
