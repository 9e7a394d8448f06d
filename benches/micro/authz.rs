//! `ProxyState::authorize` against 10,000 L4 policies.
//!
//! Policy `i` is keyed by its index: an ALLOW admits only the client `client-i/sa-i` (by
//! principal, namespace + port, service account, or its source IP `172.16.x.y/32` + port), so a
//! connection from client `k` matches policy `k` and no other. One in ten is a DENY that never
//! matches these clients (other identities, 192.168/16); ten are GLOBAL DENYs of plaintext, as
//! a STRICT PeerAuthentication produces; one in twenty is bound by workload selector.
//!
//! Only GLOBAL policies, those of the destination's namespace and those it lists apply, so the
//! cost depends on how the 10,000 are spread:
//! - `dense`: all in the destination's namespace, every one applies (the worst case);
//! - `spread`: over 100 namespaces, 110 apply (the typical case).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ambient::model::Identity;
use ambient::xds::client::ClientResource;
use ambient::xds::proto::google::protobuf::Empty;
use ambient::xds::proto::security::{self as xds, string_match::MatchType};
use ambient::xds::proto::workload as wxds;
use ambient::ztunnel::authz::{ConnectionAttrs, Decision};
use ambient::ztunnel::state::{ProxyState, Workload};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};

const POLICIES: usize = 10_000;
const TRUST_DOMAIN: &str = "cluster.local";
/// The destination workload's namespace: block 0.
const DST_NAMESPACE: &str = "ns-000";
const DST_PORT: u16 = 8080;
const DST_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// A client index no policy names.
const UNKNOWN_CLIENT: usize = 99_999;

fn namespace(block: usize) -> String {
    format!("ns-{block:03}")
}

fn exact(s: String) -> xds::StringMatch {
    xds::StringMatch { match_type: Some(MatchType::Exact(s)) }
}

fn host(ip: Ipv4Addr, length: u32) -> xds::Address {
    xds::Address { address: ip.octets().to_vec(), length }
}

/// The source address of client `k`.
fn client_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, (k / 256) as u8, (k % 256) as u8)
}

/// What client `i` may do, in one of the four shapes of rule policies usually take.
fn allow_match(i: usize) -> xds::Match {
    match i % 4 {
        0 => xds::Match {
            principals: vec![exact(format!("{TRUST_DOMAIN}/ns/client-{i}/sa/sa-{i}"))],
            ..Default::default()
        },
        1 => xds::Match {
            namespaces: vec![exact(format!("client-{i}"))],
            destination_ports: vec![DST_PORT.into()],
            ..Default::default()
        },
        2 => xds::Match {
            source_ips: vec![host(client_ip(i), 32)],
            destination_ports: vec![DST_PORT.into()],
            ..Default::default()
        },
        _ => xds::Match {
            service_accounts: vec![xds::ServiceAccountMatch {
                namespace: format!("client-{i}"),
                service_account: format!("sa-{i}"),
            }],
            not_destination_ports: vec![22],
            ..Default::default()
        },
    }
}

/// A DENY that none of the benchmark's clients trips.
fn deny_match(i: usize) -> xds::Match {
    if i.is_multiple_of(20) {
        xds::Match { principals: vec![exact(format!("{TRUST_DOMAIN}/ns/attacker-{i}/sa/x"))], ..Default::default() }
    } else {
        xds::Match { source_ips: vec![host(Ipv4Addr::new(192, 168, (i / 256) as u8, 0), 24)], ..Default::default() }
    }
}

fn is_global(i: usize) -> bool {
    i % 1000 == 999
}

fn is_selector(i: usize) -> bool {
    !is_global(i) && i % 20 == 7
}

fn is_deny(i: usize) -> bool {
    is_global(i) || i.is_multiple_of(10)
}

/// The 10,000 policies, in `namespaces` contiguous blocks of indexes.
fn policies(namespaces: usize) -> Vec<xds::Authorization> {
    let per_namespace = POLICIES / namespaces;
    (0..POLICIES)
        .map(|i| {
            let (scope, namespace, matches) = if is_global(i) {
                // STRICT mTLS: deny whatever has no principal.
                let strict = xds::Match {
                    not_principals: vec![xds::StringMatch { match_type: Some(MatchType::Presence(Empty {})) }],
                    ..Default::default()
                };
                (xds::Scope::Global, "istio-system".to_string(), strict)
            } else {
                let scope = if is_selector(i) { xds::Scope::WorkloadSelector } else { xds::Scope::Namespace };
                let matches = if is_deny(i) { deny_match(i) } else { allow_match(i) };
                (scope, namespace(i / per_namespace), matches)
            };
            let action = if is_deny(i) { xds::Action::Deny } else { xds::Action::Allow };
            xds::Authorization {
                name: format!("p-{i:05}"),
                namespace,
                scope: scope as i32,
                action: action as i32,
                rules: vec![xds::Rule { clauses: vec![xds::Clause { matches: vec![matches] }] }],
                ..Default::default()
            }
        })
        .collect()
}

fn resource(name: String) -> Arc<ClientResource> {
    Arc::new(ClientResource { name, version: "1".into(), aliases: vec![], body: Bytes::new() })
}

/// A state holding `policies` and the destination workload, which lists the selector policies
/// of its namespace (in index order: evaluated last, after the namespace ones).
fn state_with(policies: &[xds::Authorization]) -> (ProxyState, Arc<Workload>) {
    let state = ProxyState::default();
    let upserts: Vec<_> =
        policies.iter().map(|p| (resource(format!("{}/{}", p.namespace, p.name)), p.clone())).collect();
    state.apply_policies(&upserts, &[]).expect("valid policies");
    let selected = policies
        .iter()
        .filter(|p| p.namespace == DST_NAMESPACE && p.scope == xds::Scope::WorkloadSelector as i32)
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    let uid = format!("Kubernetes//Pod/{DST_NAMESPACE}/server");
    let workload = wxds::Workload {
        uid: uid.clone(),
        name: "server".into(),
        namespace: DST_NAMESPACE.into(),
        addresses: vec![DST_IP.octets().to_vec()],
        tunnel_protocol: wxds::TunnelProtocol::Hbone as i32,
        trust_domain: TRUST_DOMAIN.into(),
        service_account: "server".into(),
        authorization_policies: selected,
        ..Default::default()
    };
    let address = wxds::Address { r#type: Some(wxds::address::Type::Workload(workload)) };
    state.apply_addresses(&[(resource(uid.clone()), address)], &[]).expect("valid workload");
    let dst = state.workload_by_uid(&uid).expect("the workload was applied");
    (state, dst)
}

/// How many policies apply to `dst`: what one decision walks in the worst case.
fn applicable(policies: &[xds::Authorization], dst: &Workload) -> u64 {
    let applies = |p: &&xds::Authorization| match xds::Scope::try_from(p.scope) {
        Ok(xds::Scope::Global) => true,
        Ok(xds::Scope::Namespace) => p.namespace == dst.namespace,
        _ => dst.authorization_policies.contains(&format!("{}/{}", p.namespace, p.name)),
    };
    policies.iter().filter(applies).count() as u64
}

/// An mTLS connection from client `k` to the destination.
fn connection(k: usize) -> ConnectionAttrs {
    let identity = Identity::new(TRUST_DOMAIN, &format!("client-{k}"), &format!("sa-{k}")).expect("valid identity");
    ConnectionAttrs {
        src_identity: Some(identity),
        src_ip: IpAddr::V4(client_ip(k)),
        dst_ip: IpAddr::V4(DST_IP),
        dst_port: DST_PORT,
    }
}

/// One case: the policies' spread, the client, and what the decision must be (checked before
/// measuring, so a change in semantics cannot silently turn a worst case into a cheap one).
struct Case {
    name: &'static str,
    namespaces: usize,
    client: usize,
    allowed: bool,
}

pub fn bench(c: &mut Criterion) {
    let dense = policies(1);
    let spread = policies(100);
    let block = POLICIES / 100;
    // The last ALLOW evaluated: the last selector policy of the destination's namespace.
    let last_in_dense = (0..POLICIES).rev().find(|&i| is_selector(i)).expect("a selector policy");
    // Mid-way through the destination namespace's own (non-selector) ALLOWs.
    let middle_of_spread = (block / 2..block).find(|&i| !is_deny(i) && !is_selector(i)).expect("an ALLOW policy");
    let cases = [
        Case { name: "dense/allow_by_last", namespaces: 1, client: last_in_dense, allowed: true },
        Case { name: "dense/deny_no_match", namespaces: 1, client: UNKNOWN_CLIENT, allowed: false },
        Case { name: "spread/allow_mid_namespace", namespaces: 100, client: middle_of_spread, allowed: true },
        Case { name: "spread/deny_no_match", namespaces: 100, client: UNKNOWN_CLIENT, allowed: false },
    ];

    let mut group = c.benchmark_group("authz_10k_policies");
    for case in cases {
        let policies = if case.namespaces == 1 { &dense } else { &spread };
        let (state, dst) = state_with(policies);
        let conn = connection(case.client);
        let decision = state.authorize(&dst, &conn);
        assert_eq!(decision == Decision::Allow, case.allowed, "{}: unexpected {decision:?}", case.name);
        // Policies evaluated per decision (at most): gives policies/s.
        group.throughput(Throughput::Elements(applicable(policies, &dst)));
        group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
            b.iter(|| state.authorize(black_box(&dst), black_box(&conn)))
        });
    }
    group.finish();
}
