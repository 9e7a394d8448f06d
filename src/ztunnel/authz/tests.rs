use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::xds::client::ClientResource;
use crate::xds::proto::google::protobuf::Empty;
use crate::xds::proto::security::{self as xds, string_match::MatchType};
use crate::xds::proto::workload as wxds;

const SHOP: &str = "shop";

fn id(ns: &str, sa: &str) -> Identity {
    Identity::new("cluster.local", ns, sa).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn conn(src: Option<Identity>, src_ip: &str, dst_port: u16) -> ConnectionAttrs {
    ConnectionAttrs { src_identity: src, src_ip: ip(src_ip), dst_ip: ip("10.0.0.5"), dst_port }
}

fn exact(s: &str) -> xds::StringMatch {
    xds::StringMatch { match_type: Some(MatchType::Exact(s.into())) }
}

fn prefix(s: &str) -> xds::StringMatch {
    xds::StringMatch { match_type: Some(MatchType::Prefix(s.into())) }
}

fn suffix(s: &str) -> xds::StringMatch {
    xds::StringMatch { match_type: Some(MatchType::Suffix(s.into())) }
}

fn presence() -> xds::StringMatch {
    xds::StringMatch { match_type: Some(MatchType::Presence(Empty {})) }
}

fn cidr(s: &str) -> xds::Address {
    let net: IpNet = s.parse().unwrap();
    let address = match net.addr() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    xds::Address { address, length: net.prefix_len().into() }
}

fn sa(ns: &str, name: &str) -> xds::ServiceAccountMatch {
    xds::ServiceAccountMatch { namespace: ns.into(), service_account: name.into() }
}

/// A policy with one rule of one clause holding `matches`.
fn policy(
    ns: &str,
    name: &str,
    scope: xds::Scope,
    action: xds::Action,
    matches: Vec<xds::Match>,
) -> xds::Authorization {
    xds::Authorization {
        name: name.into(),
        namespace: ns.into(),
        scope: scope as i32,
        action: action as i32,
        rules: vec![xds::Rule { clauses: vec![xds::Clause { matches }] }],
        ..Default::default()
    }
}

fn resource(name: &str) -> Arc<ClientResource> {
    Arc::new(ClientResource { name: name.into(), version: "1".into(), aliases: vec![], body: Bytes::new() })
}

fn state_with(policies: Vec<xds::Authorization>) -> ProxyState {
    let state = ProxyState::default();
    let upserts: Vec<_> = policies.into_iter().map(|p| (resource(&format!("{}/{}", p.namespace, p.name)), p)).collect();
    state.apply_policies(&upserts, &[]).unwrap();
    state
}

/// The destination: `shop/web`, listing `listed` policies.
fn web(listed: &[&str]) -> Workload {
    let message = wxds::Workload {
        uid: "Kubernetes//Pod/shop/web-1".into(),
        name: "web-1".into(),
        namespace: SHOP.into(),
        addresses: vec![vec![10, 0, 0, 5]],
        tunnel_protocol: wxds::TunnelProtocol::Hbone as i32,
        service_account: "web".into(),
        authorization_policies: listed.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    Workload::try_from(&message).unwrap()
}

fn m() -> xds::Match {
    xds::Match::default()
}

fn allow(matches: Vec<xds::Match>) -> xds::Authorization {
    policy(SHOP, "allow", xds::Scope::Namespace, xds::Action::Allow, matches)
}

fn deny_of(name: &str) -> Decision {
    Decision::Deny { policy: name.into() }
}

#[test]
fn match_fields_positive_and_negative() {
    let frontend = Some(id("shop", "frontend"));
    let other_ns = Some(id("other", "frontend"));
    // (case, match, connection, allowed)
    let cases: Vec<(&str, xds::Match, ConnectionAttrs, bool)> = vec![
        (
            "namespace exact",
            xds::Match { namespaces: vec![exact("shop")], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            true,
        ),
        (
            "namespace exact, other",
            xds::Match { namespaces: vec![exact("shop")], ..m() },
            conn(other_ns.clone(), "10.0.0.1", 80),
            false,
        ),
        (
            "namespace prefix",
            xds::Match { namespaces: vec![prefix("sh")], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            true,
        ),
        (
            "namespace suffix",
            xds::Match { namespaces: vec![suffix("her")], ..m() },
            conn(other_ns.clone(), "10.0.0.1", 80),
            true,
        ),
        (
            "any of several",
            xds::Match { namespaces: vec![exact("x"), exact("other")], ..m() },
            conn(other_ns.clone(), "10.0.0.1", 80),
            true,
        ),
        (
            "not_namespaces",
            xds::Match { not_namespaces: vec![exact("shop")], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            false,
        ),
        (
            "not_namespaces, other",
            xds::Match { not_namespaces: vec![exact("shop")], ..m() },
            conn(other_ns.clone(), "10.0.0.1", 80),
            true,
        ),
        (
            "principal",
            xds::Match { principals: vec![exact("cluster.local/ns/shop/sa/frontend")], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            true,
        ),
        (
            "principal with scheme never matches",
            xds::Match { principals: vec![exact("spiffe://cluster.local/ns/shop/sa/frontend")], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            false,
        ),
        (
            "principal suffix",
            xds::Match { principals: vec![suffix("/sa/frontend")], ..m() },
            conn(other_ns.clone(), "10.0.0.1", 80),
            true,
        ),
        (
            "not_principals",
            xds::Match { not_principals: vec![prefix("cluster.local/ns/shop/")], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            false,
        ),
        (
            "service account",
            xds::Match { service_accounts: vec![sa("shop", "frontend")], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            true,
        ),
        (
            "service account, other ns",
            xds::Match { service_accounts: vec![sa("shop", "frontend")], ..m() },
            conn(other_ns.clone(), "10.0.0.1", 80),
            false,
        ),
        (
            "not_service_accounts",
            xds::Match { not_service_accounts: vec![sa("shop", "frontend")], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            false,
        ),
        ("source cidr", xds::Match { source_ips: vec![cidr("10.0.0.0/24")], ..m() }, conn(None, "10.0.0.1", 80), true),
        (
            "source cidr, outside",
            xds::Match { source_ips: vec![cidr("10.0.1.0/24")], ..m() },
            conn(None, "10.0.0.1", 80),
            false,
        ),
        (
            "source ip, v4-mapped v6 source",
            xds::Match { source_ips: vec![cidr("10.0.0.1/32")], ..m() },
            conn(None, "::ffff:10.0.0.1", 80),
            true,
        ),
        (
            "not_source_ips",
            xds::Match { not_source_ips: vec![cidr("10.0.0.1/32")], ..m() },
            conn(None, "10.0.0.1", 80),
            false,
        ),
        (
            "destination ip",
            xds::Match { destination_ips: vec![cidr("10.0.0.5/32")], ..m() },
            conn(None, "10.0.0.1", 80),
            true,
        ),
        (
            "not_destination_ips",
            xds::Match { not_destination_ips: vec![cidr("10.0.0.0/8")], ..m() },
            conn(None, "10.0.0.1", 80),
            false,
        ),
        ("port", xds::Match { destination_ports: vec![80, 443], ..m() }, conn(None, "10.0.0.1", 443), true),
        ("port, other", xds::Match { destination_ports: vec![80], ..m() }, conn(None, "10.0.0.1", 8080), false),
        (
            "not_destination_ports",
            xds::Match { not_destination_ports: vec![80], ..m() },
            conn(None, "10.0.0.1", 80),
            false,
        ),
        (
            "all fields must hold",
            xds::Match { namespaces: vec![exact("shop")], destination_ports: vec![80], ..m() },
            conn(frontend.clone(), "10.0.0.1", 81),
            false,
        ),
        (
            "presence, with identity",
            xds::Match { principals: vec![presence()], ..m() },
            conn(frontend.clone(), "10.0.0.1", 80),
            true,
        ),
        ("presence, plaintext", xds::Match { principals: vec![presence()], ..m() }, conn(None, "10.0.0.1", 80), false),
        (
            "plaintext never matches a namespace",
            xds::Match { namespaces: vec![presence()], ..m() },
            conn(None, "10.0.0.1", 80),
            false,
        ),
        (
            "plaintext never matches exact empty namespace",
            xds::Match { namespaces: vec![exact("")], ..m() },
            conn(None, "10.0.0.1", 80),
            false,
        ),
        (
            "plaintext never matches a service account",
            xds::Match { service_accounts: vec![sa("shop", "frontend")], ..m() },
            conn(None, "10.0.0.1", 80),
            false,
        ),
        (
            "plaintext passes not_namespaces",
            xds::Match { not_namespaces: vec![exact("shop")], ..m() },
            conn(None, "10.0.0.1", 80),
            true,
        ),
    ];
    for (case, matched, conn, allowed) in cases {
        let state = state_with(vec![allow(vec![matched])]);
        let want = if allowed { Decision::Allow } else { deny_of("shop/allow") };
        assert_eq!(state.authorize(&web(&[]), &conn), want, "{case}");
    }
}

#[test]
fn rule_clause_and_match_structure() {
    let frontend = Some(id("shop", "frontend"));
    let port = |p: u32| xds::Match { destination_ports: vec![p], ..m() };
    let ns = |n: &str| xds::Match { namespaces: vec![exact(n)], ..m() };
    let rule = |clauses: Vec<Vec<xds::Match>>| xds::Rule {
        clauses: clauses.into_iter().map(|matches| xds::Clause { matches }).collect(),
    };
    // (case, rules, allowed for frontend -> :80)
    let cases: Vec<(&str, Vec<xds::Rule>, bool)> = vec![
        ("no rules: allows nothing", vec![], false),
        ("rule without clauses matches", vec![rule(vec![])], true),
        ("clause without matches matches", vec![rule(vec![vec![]])], true),
        ("an empty match never matches", vec![rule(vec![vec![m()]])], false),
        ("all clauses must match", vec![rule(vec![vec![port(80)], vec![ns("other")]])], false),
        ("all clauses match", vec![rule(vec![vec![port(80)], vec![ns("shop")]])], true),
        ("any match in a clause", vec![rule(vec![vec![port(81), port(80)]])], true),
        ("any rule", vec![rule(vec![vec![port(81)]]), rule(vec![vec![ns("shop")]])], true),
    ];
    for (case, rules, allowed) in cases {
        let mut p = allow(vec![]);
        p.rules = rules;
        let state = state_with(vec![p]);
        let want = if allowed { Decision::Allow } else { deny_of("shop/allow") };
        assert_eq!(state.authorize(&web(&[]), &conn(frontend.clone(), "10.0.0.1", 80)), want, "{case}");
    }
}

#[test]
fn deny_before_allow_and_allow_must_match_when_present() {
    use xds::{Action::*, Scope::*};
    let from = |n: &str| vec![xds::Match { namespaces: vec![exact(n)], ..m() }];
    let frontend = conn(Some(id("shop", "frontend")), "10.0.0.1", 80);
    // (case, policies, decision for shop/frontend -> shop/web)
    let cases: Vec<(&str, Vec<xds::Authorization>, Decision)> = vec![
        ("no policy: allow", vec![], Decision::Allow),
        ("matching allow", vec![policy(SHOP, "a", Namespace, Allow, from("shop"))], Decision::Allow),
        ("non-matching allow denies", vec![policy(SHOP, "a", Namespace, Allow, from("x"))], deny_of("shop/a")),
        (
            "deny wins over allow",
            vec![policy(SHOP, "a", Namespace, Allow, from("shop")), policy(SHOP, "d", Namespace, Deny, from("shop"))],
            deny_of("shop/d"),
        ),
        (
            "non-matching deny, matching allow",
            vec![policy(SHOP, "a", Namespace, Allow, from("shop")), policy(SHOP, "d", Namespace, Deny, from("x"))],
            Decision::Allow,
        ),
        ("non-matching deny alone allows", vec![policy(SHOP, "d", Namespace, Deny, from("x"))], Decision::Allow),
        (
            "one of several allows suffices",
            vec![policy(SHOP, "a1", Namespace, Allow, from("x")), policy(SHOP, "a2", Namespace, Allow, from("shop"))],
            Decision::Allow,
        ),
        (
            "none of several allows: both named",
            vec![policy(SHOP, "a1", Namespace, Allow, from("x")), policy(SHOP, "a2", Namespace, Allow, from("y"))],
            deny_of("shop/a1,shop/a2"),
        ),
        (
            "allow-nothing (no rules)",
            vec![xds::Authorization { rules: vec![], ..allow(vec![]) }],
            deny_of("shop/allow"),
        ),
    ];
    for (case, policies, want) in cases {
        assert_eq!(state_with(policies).authorize(&web(&[]), &frontend), want, "{case}");
    }
}

#[test]
fn dry_run_policies_are_never_enforced() {
    use xds::{Action::*, Scope::*};
    let everyone = vec![xds::Match { not_namespaces: vec![exact("nobody")], ..m() }];
    let no_one = vec![xds::Match { namespaces: vec![exact("nobody")], ..m() }];
    let dry = |p: xds::Authorization| xds::Authorization { dry_run: true, ..p };
    let frontend = conn(Some(id("shop", "frontend")), "10.0.0.1", 80);
    let cases = vec![
        ("dry-run deny matching", vec![dry(policy(SHOP, "d", Namespace, Deny, everyone.clone()))], Decision::Allow),
        ("dry-run allow not matching", vec![dry(policy(SHOP, "a", Namespace, Allow, no_one.clone()))], Decision::Allow),
        (
            "dry-run allow beside an enforced one that does not match",
            vec![
                dry(policy(SHOP, "a", Namespace, Allow, everyone.clone())),
                policy(SHOP, "b", Namespace, Allow, no_one.clone()),
            ],
            deny_of("shop/b"),
        ),
    ];
    for (case, policies, want) in cases {
        assert_eq!(state_with(policies).authorize(&web(&[]), &frontend), want, "{case}");
    }
}

#[test]
fn scope_decides_which_workloads_a_policy_applies_to() {
    use xds::{Action::*, Scope::*};
    let nothing = vec![]; // a DENY with an empty clause denies everything
    let deny = |ns: &str, name: &str, scope: xds::Scope| {
        let mut p = policy(ns, name, scope, Deny, nothing.clone());
        p.rules = vec![xds::Rule { clauses: vec![] }];
        p
    };
    let frontend = conn(Some(id("shop", "frontend")), "10.0.0.1", 80);
    // (case, policy, listed by the workload, applies)
    let cases = vec![
        ("global applies everywhere", deny("istio-system", "g", Global), vec![], true),
        ("namespace applies in its namespace", deny(SHOP, "n", Namespace), vec![], true),
        ("namespace not elsewhere", deny("other", "n", Namespace), vec![], false),
        ("selector applies when listed", deny(SHOP, "s", WorkloadSelector), vec!["shop/s"], true),
        ("selector not when unlisted", deny(SHOP, "s", WorkloadSelector), vec![], false),
        ("listed but unknown is skipped", deny(SHOP, "s", WorkloadSelector), vec!["shop/missing"], false),
    ];
    for (case, p, listed, applies) in cases {
        let key = format!("{}/{}", p.namespace, p.name);
        let want = if applies { deny_of(&key) } else { Decision::Allow };
        assert_eq!(state_with(vec![p]).authorize(&web(&listed), &frontend), want, "{case}");
    }
}

#[test]
fn static_strict_policy_rejects_plaintext_only() {
    // What the control plane sends for STRICT (translate/peer_authentication.rs).
    let strict = policy(
        "istio-system",
        "istio_converted_static_strict",
        xds::Scope::WorkloadSelector,
        xds::Action::Deny,
        vec![xds::Match { not_principals: vec![presence()], ..m() }],
    );
    let state = state_with(vec![strict]);
    let dst = web(&["istio-system/istio_converted_static_strict"]);
    assert_eq!(
        state.authorize(&dst, &conn(None, "10.0.0.1", 80)),
        deny_of("istio-system/istio_converted_static_strict")
    );
    assert_eq!(state.authorize(&dst, &conn(Some(id("other", "x")), "10.0.0.1", 80)), Decision::Allow);
    // Not listed (PERMISSIVE): plaintext allowed.
    assert_eq!(state.authorize(&web(&[]), &conn(None, "10.0.0.1", 80)), Decision::Allow);
}

#[test]
fn invalid_policies_are_rejected_by_field_and_the_rest_applies() {
    let good = allow(vec![xds::Match { namespaces: vec![exact("shop")], ..m() }]);
    let mut bad_scope = allow(vec![]);
    bad_scope.name = "bad-scope".into();
    bad_scope.scope = 9;
    let mut bad_cidr =
        allow(vec![xds::Match { source_ips: vec![xds::Address { address: vec![10, 0, 0, 0], length: 33 }], ..m() }]);
    bad_cidr.name = "bad-cidr".into();
    let mut bad_match = allow(vec![xds::Match { principals: vec![xds::StringMatch { match_type: None }], ..m() }]);
    bad_match.name = "bad-match".into();
    let state = ProxyState::default();
    let upserts: Vec<_> = [good, bad_scope, bad_cidr, bad_match]
        .into_iter()
        .map(|p| (resource(&format!("{}/{}", p.namespace, p.name)), p))
        .collect();
    let rejections = state.apply_policies(&upserts, &[]).unwrap_err();
    let got: Vec<(String, String)> = rejections.into_iter().map(|r| (r.name, r.reason)).collect();
    assert_eq!(
        got,
        vec![
            ("shop/bad-scope".to_string(), "scope: unknown value 9".to_string()),
            (
                "shop/bad-cidr".to_string(),
                "rules[0].clauses[0].matches[0].source_ips[0].length: 33 is not a prefix length for 10.0.0.0"
                    .to_string()
            ),
            (
                "shop/bad-match".to_string(),
                "rules[0].clauses[0].matches[0].principals[0]: no match type (exact, prefix, suffix or presence)"
                    .to_string()
            ),
        ]
    );
    assert!(state.policy("shop/allow").is_some());
    assert!(state.policy("shop/bad-scope").is_none());
}

#[test]
fn removal_and_scope_change_update_the_indexes() {
    use xds::{Action::*, Scope::*};
    let everything = |scope| {
        let mut p = policy(SHOP, "d", scope, Deny, vec![]);
        p.rules = vec![xds::Rule { clauses: vec![] }];
        p
    };
    let frontend = conn(Some(id("shop", "frontend")), "10.0.0.1", 80);
    let state = state_with(vec![everything(Namespace)]);
    assert_eq!(state.authorize(&web(&[]), &frontend), deny_of("shop/d"));
    // Now selector-scoped: no longer applies to the unlisting workload.
    state.apply_policies(&[(resource("shop/d"), everything(WorkloadSelector))], &[]).unwrap();
    assert_eq!(state.authorize(&web(&[]), &frontend), Decision::Allow);
    assert_eq!(state.authorize(&web(&["shop/d"]), &frontend), deny_of("shop/d"));
    state.apply_policies(&[], &["shop/d".to_string()]).unwrap();
    assert_eq!(state.authorize(&web(&["shop/d"]), &frontend), Decision::Allow);
    assert!(state.snapshot()["policies"].as_array().unwrap().is_empty());
}

#[test]
fn ten_thousand_policies_scale() {
    use xds::{Action::*, Scope::*};
    let mut policies: Vec<xds::Authorization> = (0..10_000)
        .map(|i| {
            policy(
                &format!("ns-{i}"),
                &format!("p-{i}"),
                Namespace,
                Allow,
                vec![xds::Match { destination_ports: vec![1], ..m() }],
            )
        })
        .collect();
    policies.extend((0..100).map(|i| {
        policy(
            SHOP,
            &format!("sel-{i}"),
            WorkloadSelector,
            Allow,
            vec![xds::Match { destination_ports: vec![i], ..m() }],
        )
    }));
    let state = state_with(policies);
    let listed: Vec<String> = (0..100).map(|i| format!("shop/sel-{i}")).collect();
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    let dst = web(&listed);
    for _ in 0..1000 {
        assert_eq!(state.authorize(&dst, &conn(None, "10.0.0.1", 99)), Decision::Allow);
    }
    assert!(matches!(state.authorize(&dst, &conn(None, "10.0.0.1", 100)), Decision::Deny { .. }));
    // Other namespaces' policies do not apply.
    assert_eq!(state.authorize(&web(&[]), &conn(None, "10.0.0.1", 100)), Decision::Allow);
}

#[test]
fn a_denial_names_a_few_allow_policies_and_counts_the_rest() {
    let policies = (0..5)
        .map(|i| {
            let only_other = xds::Match { namespaces: vec![exact("other")], ..m() };
            policy(SHOP, &format!("allow-{i}"), xds::Scope::Namespace, xds::Action::Allow, vec![only_other])
        })
        .collect();
    let state = state_with(policies);
    let decision = state.authorize(&web(&[]), &conn(Some(id("shop", "frontend")), "10.0.0.1", 80));
    assert_eq!(decision, deny_of("shop/allow-0,shop/allow-1,shop/allow-2 and 2 more"));
}
