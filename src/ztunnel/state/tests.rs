use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::*;
use crate::xds::client::{Changes, ClientResource};
use crate::xds::proto::ADDRESS_TYPE;
use crate::xds::proto::workload::{
    self as xds, GatewayAddress as XdsGateway, NamespacedHostname, NetworkAddress, Port, PortList, address,
    gateway_address,
};

const WEB_SVC: &str = "shop/web.shop.svc.cluster.local";
const WP_SVC: &str = "shop/waypoint.shop.svc.cluster.local";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn waypoint_ref(key: &str) -> XdsGateway {
    let (namespace, hostname) = key.split_once('/').unwrap();
    XdsGateway {
        destination: Some(gateway_address::Destination::Hostname(NamespacedHostname {
            namespace: namespace.into(),
            hostname: hostname.into(),
        })),
        hbone_mtls_port: 15008,
    }
}

/// An HBONE, healthy pod `shop/<name>` with service account `name`, endpoint of `services`
/// (key -> [(service port, target port)]).
fn pod(name: &str, pod_ip: &str, services: &[(&str, &[(u32, u32)])]) -> xds::Workload {
    xds::Workload {
        uid: format!("Kubernetes//Pod/shop/{name}"),
        name: name.into(),
        namespace: "shop".into(),
        addresses: vec![bytes(ip(pod_ip))],
        tunnel_protocol: xds::TunnelProtocol::Hbone as i32,
        trust_domain: "cluster.local".into(),
        service_account: name.into(),
        services: services
            .iter()
            .map(|(key, ports)| {
                let ports = ports.iter().map(|(s, t)| Port { service_port: *s, target_port: *t, app_protocol: 0 });
                (key.to_string(), PortList { ports: ports.collect() })
            })
            .collect(),
        ..Default::default()
    }
}

fn service(key: &str, vip: &str, ports: &[(u32, u32)]) -> xds::Service {
    let (namespace, hostname) = key.split_once('/').unwrap();
    xds::Service {
        name: hostname.split('.').next().unwrap().into(),
        namespace: namespace.into(),
        hostname: hostname.into(),
        addresses: vec![NetworkAddress { network: String::new(), address: bytes(ip(vip)), length: None }],
        ports: ports.iter().map(|(s, t)| Port { service_port: *s, target_port: *t, app_protocol: 0 }).collect(),
        ..Default::default()
    }
}

fn resource(name: &str) -> Arc<ClientResource> {
    Arc::new(ClientResource { name: name.into(), version: "1".into(), aliases: vec![], body: Bytes::new() })
}

fn wl(w: xds::Workload) -> (Arc<ClientResource>, xds::Address) {
    (resource(&w.uid.clone()), xds::Address { r#type: Some(address::Type::Workload(w)) })
}

fn svc(s: xds::Service) -> (Arc<ClientResource>, xds::Address) {
    (resource(&format!("{}/{}", s.namespace, s.hostname)), xds::Address { r#type: Some(address::Type::Service(s)) })
}

fn state_with(upserts: Vec<(Arc<ClientResource>, xds::Address)>) -> ProxyState {
    let state = ProxyState::default();
    state.apply_addresses(&upserts, &[]).unwrap();
    state
}

fn uid(name: &str) -> String {
    format!("Kubernetes//Pod/shop/{name}")
}

fn hbone_target(upstream: &Upstream) -> (SocketAddr, SocketAddr, String) {
    match upstream {
        Upstream::Hbone { connect, authority, workload, .. } => (*connect, *authority, workload.uid.clone()),
        other => panic!("expected HBONE, got {other:?}"),
    }
}

#[test]
fn service_vip_resolves_to_an_endpoint_with_the_target_port() {
    let state = state_with(vec![
        svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])),
        wl(pod("web-1", "10.0.0.5", &[(WEB_SVC, &[(80, 8080)])])),
    ]);
    let upstream = state.resolve_outbound(None, addr("10.96.0.10:80")).unwrap();
    let Upstream::Hbone { connect, authority, identity, workload, service } = upstream else { panic!("{upstream:?}") };
    assert_eq!(connect, addr("10.0.0.5:15008"));
    assert_eq!(authority, addr("10.0.0.5:8080"));
    assert_eq!(identity.to_string(), "spiffe://cluster.local/ns/shop/sa/web-1");
    assert_eq!(workload.uid, uid("web-1"));
    assert_eq!(service.unwrap().key(), WEB_SVC);
}

#[test]
fn target_port_comes_from_the_endpoint_then_the_service() {
    type Case<'a> = (&'a str, u32, &'a [(u32, u32)], Result<u16, &'a str>);
    let cases: &[Case] = &[
        ("service only", 8080, &[], Ok(8080)),
        ("endpoint wins", 8080, &[(80, 9090)], Ok(9090)),
        ("named port resolved per endpoint", 0, &[(80, 9090)], Ok(9090)),
        ("named port, endpoint without it", 0, &[], Err("no endpoint of service")),
    ];
    for (case, service_target, endpoint_ports, want) in cases {
        let state = state_with(vec![
            svc(service(WEB_SVC, "10.96.0.10", &[(80, *service_target)])),
            wl(pod("web-1", "10.0.0.5", &[(WEB_SVC, endpoint_ports)])),
        ]);
        let got = state.resolve_outbound(None, addr("10.96.0.10:80"));
        match (got, want) {
            (Ok(upstream), Ok(port)) => assert_eq!(hbone_target(&upstream).1.port(), *port, "{case}"),
            (Err(error), Err(text)) => assert!(error.to_string().contains(text), "{case}: {error}"),
            (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn unknown_service_port_is_an_error() {
    let state = state_with(vec![
        svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])),
        wl(pod("web-1", "10.0.0.5", &[(WEB_SVC, &[])])),
    ]);
    let error = state.resolve_outbound(None, addr("10.96.0.10:81")).unwrap_err();
    assert_eq!(error, ResolveError::UnknownServicePort { service: WEB_SVC.into(), port: 81 });
}

#[test]
fn pod_ip_goes_direct_hbone_or_plain_tcp_by_protocol() {
    let mut plain = pod("legacy", "10.0.0.7", &[]);
    plain.tunnel_protocol = xds::TunnelProtocol::None as i32;
    let state = state_with(vec![wl(pod("web-1", "10.0.0.5", &[])), wl(plain)]);

    let (connect, authority, workload) = hbone_target(&state.resolve_outbound(None, addr("10.0.0.5:9000")).unwrap());
    assert_eq!((connect, authority, workload), (addr("10.0.0.5:15008"), addr("10.0.0.5:9000"), uid("web-1")));

    match state.resolve_outbound(None, addr("10.0.0.7:9000")).unwrap() {
        Upstream::Passthrough { connect, workload, service } => {
            assert_eq!(connect, addr("10.0.0.7:9000"));
            assert_eq!(workload.unwrap().uid, uid("legacy"));
            assert!(service.is_none());
        }
        other => panic!("expected passthrough, got {other:?}"),
    }
}

#[test]
fn a_plain_tcp_endpoint_of_a_service_is_passthrough_to_its_target_port() {
    let mut plain = pod("legacy", "10.0.0.7", &[(WEB_SVC, &[])]);
    plain.tunnel_protocol = xds::TunnelProtocol::None as i32;
    let state = state_with(vec![svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])), wl(plain)]);
    match state.resolve_outbound(None, addr("10.96.0.10:80")).unwrap() {
        Upstream::Passthrough { connect, workload, service } => {
            assert_eq!(connect, addr("10.0.0.7:8080"));
            assert_eq!(workload.unwrap().uid, uid("legacy"));
            assert_eq!(service.unwrap().key(), WEB_SVC);
        }
        other => panic!("expected passthrough, got {other:?}"),
    }
}

#[test]
fn unknown_destination_is_passthrough_to_itself() {
    let state = state_with(vec![wl(pod("web-1", "10.0.0.5", &[]))]);
    let upstream = state.resolve_outbound(None, addr("192.0.2.1:443")).unwrap();
    assert_eq!(upstream, Upstream::Passthrough { connect: addr("192.0.2.1:443"), workload: None, service: None });
}

#[test]
fn round_robin_over_healthy_endpoints_only() {
    let mut sick = pod("web-3", "10.0.0.3", &[(WEB_SVC, &[])]);
    sick.status = xds::WorkloadStatus::Unhealthy as i32;
    let state = state_with(vec![
        svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])),
        wl(pod("web-1", "10.0.0.1", &[(WEB_SVC, &[])])),
        wl(pod("web-2", "10.0.0.2", &[(WEB_SVC, &[])])),
        wl(sick),
    ]);
    let picks: Vec<String> =
        (0..6).map(|_| hbone_target(&state.resolve_outbound(None, addr("10.96.0.10:80")).unwrap()).2).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for uid in &picks {
        *counts.entry(uid.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), 2, "only healthy endpoints: {picks:?}");
    assert!(counts.values().all(|c| *c == 3), "evenly spread: {picks:?}");
    assert_ne!(picks[0], picks[1], "alternates: {picks:?}");
}

#[test]
fn no_healthy_endpoint_is_an_error() {
    let mut sick = pod("web-1", "10.0.0.1", &[(WEB_SVC, &[])]);
    sick.status = xds::WorkloadStatus::Unhealthy as i32;
    for upserts in [
        vec![svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)]))],
        vec![svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])), wl(sick)],
    ] {
        let state = state_with(upserts);
        let error = state.resolve_outbound(None, addr("10.96.0.10:80")).unwrap_err();
        assert_eq!(error, ResolveError::NoHealthyEndpoint(WEB_SVC.into()));
    }
}

/// The waypoint: a service and its one pod.
fn waypoint_resources() -> Vec<(Arc<ClientResource>, xds::Address)> {
    vec![
        svc(service(WP_SVC, "10.96.0.99", &[(15008, 15008)])),
        wl(pod("waypoint-1", "10.0.0.99", &[(WP_SVC, &[(15008, 15008)])])),
    ]
}

fn expect_waypoint(upstream: Upstream, authority: &str) -> (Option<Arc<Service>>, Option<Arc<Workload>>) {
    match upstream {
        Upstream::Waypoint { connect, authority: got, identity, waypoint, service, workload } => {
            assert_eq!(connect, addr("10.0.0.99:15008"));
            assert_eq!(got, addr(authority));
            assert_eq!(identity.to_string(), "spiffe://cluster.local/ns/shop/sa/waypoint-1");
            assert_eq!(waypoint.uid, uid("waypoint-1"));
            (service, workload)
        }
        other => panic!("expected the waypoint, got {other:?}"),
    }
}

#[test]
fn service_waypoint_takes_service_traffic() {
    let mut web = service(WEB_SVC, "10.96.0.10", &[(80, 8080)]);
    web.waypoint = Some(waypoint_ref(WP_SVC));
    let mut upserts = waypoint_resources();
    upserts.extend([svc(web), wl(pod("web-1", "10.0.0.5", &[(WEB_SVC, &[])]))]);
    let state = state_with(upserts);

    let (service, workload) =
        expect_waypoint(state.resolve_outbound(None, addr("10.96.0.10:80")).unwrap(), "10.96.0.10:80");
    assert_eq!(service.unwrap().key(), WEB_SVC);
    assert!(workload.is_none());
    // The pod addressed directly has no waypoint of its own.
    assert_eq!(hbone_target(&state.resolve_outbound(None, addr("10.0.0.5:8080")).unwrap()).2, uid("web-1"));
}

#[test]
fn workload_waypoint_takes_traffic_addressed_to_the_workload_only() {
    let mut web = pod("web-1", "10.0.0.5", &[(WEB_SVC, &[])]);
    web.waypoint = Some(waypoint_ref(WP_SVC));
    let mut upserts = waypoint_resources();
    upserts.extend([svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])), wl(web)]);
    let state = state_with(upserts);

    let (service, workload) =
        expect_waypoint(state.resolve_outbound(None, addr("10.0.0.5:8080")).unwrap(), "10.0.0.5:8080");
    assert!(service.is_none());
    assert_eq!(workload.unwrap().uid, uid("web-1"));
    // As in Istio: service-addressed traffic only takes the service's waypoint.
    assert_eq!(hbone_target(&state.resolve_outbound(None, addr("10.96.0.10:80")).unwrap()).2, uid("web-1"));
}

#[test]
fn the_waypoint_itself_skips_its_waypoint() {
    let mut web = service(WEB_SVC, "10.96.0.10", &[(80, 8080)]);
    web.waypoint = Some(waypoint_ref(WP_SVC));
    let mut upserts = waypoint_resources();
    upserts.extend([svc(web), wl(pod("web-1", "10.0.0.5", &[(WEB_SVC, &[])]))]);
    let state = state_with(upserts);
    let waypoint = state.workload_by_uid(&uid("waypoint-1")).unwrap();
    let upstream = state.resolve_outbound(Some(&waypoint), addr("10.96.0.10:80")).unwrap();
    assert_eq!(hbone_target(&upstream), (addr("10.0.0.5:15008"), addr("10.0.0.5:8080"), uid("web-1")));
    // Any other source goes through it.
    let web = state.workload_by_uid(&uid("web-1")).unwrap();
    expect_waypoint(state.resolve_outbound(Some(&web), addr("10.96.0.10:80")).unwrap(), "10.96.0.10:80");
}

#[test]
fn missing_or_down_waypoint_is_an_error() {
    let mut web = service(WEB_SVC, "10.96.0.10", &[(80, 8080)]);
    web.waypoint = Some(waypoint_ref(WP_SVC));
    let state = state_with(vec![svc(web.clone()), wl(pod("web-1", "10.0.0.5", &[(WEB_SVC, &[])]))]);
    let error = state.resolve_outbound(None, addr("10.96.0.10:80")).unwrap_err();
    assert!(matches!(error, ResolveError::WaypointNotFound { .. }), "{error:?}");

    let mut sick = pod("waypoint-1", "10.0.0.99", &[(WP_SVC, &[])]);
    sick.status = xds::WorkloadStatus::Unhealthy as i32;
    state.apply_addresses(&[svc(service(WP_SVC, "10.96.0.99", &[])), wl(sick)], &[]).unwrap();
    let error = state.resolve_outbound(None, addr("10.96.0.10:80")).unwrap_err();
    assert!(matches!(error, ResolveError::WaypointUnavailable { .. }), "{error:?}");
    assert!(error.to_string().contains(WP_SVC), "{error}");
}

#[test]
fn order_of_arrival_does_not_matter() {
    let all = || {
        vec![
            svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])),
            wl(pod("web-1", "10.0.0.1", &[(WEB_SVC, &[])])),
            wl(pod("web-2", "10.0.0.2", &[(WEB_SVC, &[])])),
        ]
    };
    let forward = state_with(all());
    let backward = ProxyState::default();
    for item in all().into_iter().rev() {
        backward.apply_addresses(&[item], &[]).unwrap();
    }
    assert_eq!(forward.snapshot(), backward.snapshot());
    assert_eq!(backward.endpoints(WEB_SVC).len(), 2);
    assert!(backward.resolve_outbound(None, addr("10.96.0.10:80")).is_ok());
}

#[test]
fn updates_and_removals_keep_the_indexes_consistent() {
    let state = state_with(vec![
        svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])),
        wl(pod("web-1", "10.0.0.1", &[(WEB_SVC, &[])])),
    ]);
    let web = WEB_SVC.to_string();

    // The service goes away and comes back: its endpoints are still known.
    state.apply_addresses(&[], std::slice::from_ref(&web)).unwrap();
    assert!(state.service_by_vip("", ip("10.96.0.10")).is_none());
    assert_eq!(state.endpoints(WEB_SVC).len(), 1);
    state.apply_addresses(&[svc(service(WEB_SVC, "10.96.0.11", &[(80, 8080)]))], &[]).unwrap();
    assert!(state.service_by_vip("", ip("10.96.0.10")).is_none(), "old VIP unindexed");
    assert_eq!(hbone_target(&state.resolve_outbound(None, addr("10.96.0.11:80")).unwrap()).2, uid("web-1"));

    // The pod changes IP and leaves the service.
    state.apply_addresses(&[wl(pod("web-1", "10.0.0.9", &[]))], &[]).unwrap();
    assert!(state.workload_by_ip("", ip("10.0.0.1")).is_none());
    assert_eq!(state.workload_by_ip("", ip("10.0.0.9")).unwrap().uid, uid("web-1"));
    assert!(state.endpoints(WEB_SVC).is_empty());
    assert_eq!(state.resolve_outbound(None, addr("10.96.0.11:80")), Err(ResolveError::NoHealthyEndpoint(web.clone())));

    // Removed and re-added.
    state.apply_addresses(&[], &[uid("web-1")]).unwrap();
    assert!(state.workload_by_uid(&uid("web-1")).is_none());
    state.apply_addresses(&[wl(pod("web-1", "10.0.0.1", &[(WEB_SVC, &[])]))], &[]).unwrap();
    assert_eq!(state.endpoints(WEB_SVC).len(), 1);

    // Everything removed: every index is empty.
    state.apply_addresses(&[], &[uid("web-1"), web]).unwrap();
    assert_eq!(state.read().index_sizes(), (0, 0, 0, 0));
}

#[test]
fn a_shared_ip_falls_back_to_the_remaining_workload() {
    let state = state_with(vec![wl(pod("old", "10.0.0.1", &[])), wl(pod("new", "10.0.0.1", &[]))]);
    assert_eq!(state.workload_by_ip("", ip("10.0.0.1")).unwrap().uid, uid("new"));
    state.apply_addresses(&[], &[uid("new")]).unwrap();
    assert_eq!(state.workload_by_ip("", ip("10.0.0.1")).unwrap().uid, uid("old"));
}

#[test]
fn lookups_respect_the_network() {
    let mut remote = pod("remote", "10.0.0.1", &[]);
    remote.network = "net-b".into();
    let state = state_with(vec![wl(remote)]);
    assert!(state.workload_by_ip("", ip("10.0.0.1")).is_none());
    assert_eq!(state.workload_by_ip("net-b", ip("10.0.0.1")).unwrap().uid, uid("remote"));
}

#[test]
fn invalid_resources_are_rejected_by_field_and_the_rest_applies() {
    let state = state_with(vec![wl(pod("web-1", "10.0.0.1", &[]))]);
    let mut bad_ip = pod("web-1", "10.0.0.2", &[]);
    bad_ip.addresses.push(vec![1, 2, 3]);
    let mut bad_protocol = pod("web-2", "10.0.0.3", &[]);
    bad_protocol.tunnel_protocol = 7;
    let mut bad_port = service(WEB_SVC, "10.96.0.10", &[(80, 8080)]);
    bad_port.ports[0].target_port = 70000;
    let mut bad_waypoint = pod("web-4", "10.0.0.4", &[]);
    bad_waypoint.waypoint = Some(XdsGateway { destination: None, hbone_mtls_port: 15008 });
    let empty = (resource("nothing"), xds::Address { r#type: None });

    let rejections = state
        .apply_addresses(
            &[wl(bad_ip), wl(bad_protocol), svc(bad_port), wl(bad_waypoint), empty, wl(pod("ok", "10.0.0.8", &[]))],
            &[],
        )
        .unwrap_err();
    let got: Vec<(String, String)> = rejections.into_iter().map(|r| (r.name, r.reason)).collect();
    let want = [
        (uid("web-1"), "workload.addresses[1]: 3 bytes is not an IPv4 (4) or IPv6 (16) address"),
        (uid("web-2"), "workload.tunnel_protocol: unknown value 7"),
        (WEB_SVC.to_string(), "service.ports[0].target_port: 70000 is not a port (0-65535)"),
        (uid("web-4"), "workload.waypoint.destination: neither hostname nor address is set"),
        ("nothing".to_string(), "type: the Address is neither a workload nor a service"),
    ];
    assert_eq!(got, want.map(|(n, r)| (n, r.to_string())));
    // The rejected update left the previous version; the valid one applied.
    assert_eq!(state.workload_by_uid(&uid("web-1")).unwrap().addresses, vec![ip("10.0.0.1")]);
    assert!(state.workload_by_uid(&uid("ok")).is_some());
    assert!(state.workload_by_uid(&uid("web-2")).is_none());
}

#[test]
fn the_handler_rejects_undecodable_bodies_and_applies_the_rest() {
    let state = ProxyState::default();
    let (addresses, _) = state.handlers();
    let good = pod("web-1", "10.0.0.1", &[]);
    let good_body = xds::Address { r#type: Some(address::Type::Workload(good)) }.encode_to_vec();
    let upserts = [
        Arc::new(ClientResource { name: uid("web-1"), version: "1".into(), aliases: vec![], body: good_body.into() }),
        Arc::new(ClientResource {
            name: "garbage".into(),
            version: "1".into(),
            aliases: vec![],
            body: Bytes::from_static(&[0xff, 0xff, 0xff]),
        }),
    ];
    let rejections =
        addresses.apply(&Changes { type_url: ADDRESS_TYPE, upserts: &upserts, removals: &[] }).unwrap_err();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].name, "garbage");
    assert!(rejections[0].reason.contains("cannot decode"), "{}", rejections[0].reason);
    assert!(state.workload_by_uid(&uid("web-1")).is_some());
}

#[test]
fn snapshot_lists_workloads_services_and_policies() {
    let mut sick = pod("web-2", "10.0.0.2", &[(WEB_SVC, &[])]);
    sick.status = xds::WorkloadStatus::Unhealthy as i32;
    let state = state_with(vec![
        svc(service(WEB_SVC, "10.96.0.10", &[(80, 8080)])),
        wl(pod("web-1", "10.0.0.1", &[(WEB_SVC, &[])])),
        wl(sick),
    ]);
    let snapshot = state.snapshot();
    assert_eq!(snapshot["workloads"][0]["uid"], uid("web-1"));
    assert_eq!(snapshot["workloads"][0]["identity"], "spiffe://cluster.local/ns/shop/sa/web-1");
    assert_eq!(snapshot["workloads"][0]["protocol"], "HBONE");
    assert_eq!(snapshot["services"][0]["service"]["hostname"], "web.shop.svc.cluster.local");
    assert_eq!(snapshot["services"][0]["endpoints"], serde_json::json!([uid("web-1")]));
    assert_eq!(snapshot["services"][0]["unhealthyEndpoints"], serde_json::json!([uid("web-2")]));
    assert_eq!(snapshot["policies"], serde_json::json!([]));
}
