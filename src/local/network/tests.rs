//! Pure tests: hosts files, VIP allocation, the service rules' text. The namespace and iptables
//! side is exercised with real pods in `cni_runtime/tests.rs`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::MetadataExt;

use super::*;

fn service(namespace: &str, name: &str, ip: [u8; 4]) -> ServiceState {
    ServiceState {
        namespace: namespace.into(),
        name: name.into(),
        cluster_ip: IpAddr::from(ip),
        ports: vec![80],
        endpoints: vec![],
    }
}

fn key(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_owned(), name.to_owned())
}

const LOCALHOST_LINES: &str = "# Managed by ambient local: the pod's name and the mesh's services.\n\
    127.0.0.1\tlocalhost\n\
    ::1\tlocalhost ip6-localhost ip6-loopback\n\
    fe00::0\tip6-localnet\n\
    fe00::0\tip6-mcastprefix\n\
    fe00::1\tip6-allnodes\n\
    fe00::2\tip6-allrouters\n";

#[test]
fn hosts_name_the_pod_and_every_service_with_the_short_name_only_in_the_pods_namespace() {
    let services = [
        service("shop", "web", [10, 96, 0, 12]),
        service("billing", "ledger", [10, 96, 0, 20]),
        service("shop", "cart", [10, 96, 0, 11]),
    ];
    let text = render_hosts("shop", "client", Some(IpAddr::from([10, 244, 0, 7])), &services, CLUSTER_DOMAIN);
    let expected = format!(
        "{LOCALHOST_LINES}\
         10.244.0.7\tclient\n\
         10.96.0.20\tledger.billing.svc.cluster.local ledger.billing.svc ledger.billing\n\
         10.96.0.11\tcart.shop.svc.cluster.local cart.shop.svc cart.shop cart\n\
         10.96.0.12\tweb.shop.svc.cluster.local web.shop.svc web.shop web\n"
    );
    assert_eq!(text, expected);
    // The input order does not matter.
    let mut reversed = services.to_vec();
    reversed.reverse();
    assert_eq!(render_hosts("shop", "client", Some(IpAddr::from([10, 244, 0, 7])), &reversed, CLUSTER_DOMAIN), text);
}

#[test]
fn hosts_without_an_address_or_services_hold_only_localhost() {
    assert_eq!(render_hosts("shop", "client", None, &[], CLUSTER_DOMAIN), LOCALHOST_LINES);
    let custom = render_hosts("a", "p", None, &[service("a", "s", [10, 0, 0, 9])], "example.test");
    assert!(custom.ends_with("10.0.0.9\ts.a.svc.example.test s.a.svc s.a s\n"), "{custom}");
}

#[test]
fn hosts_files_are_rewritten_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pods/shop/client/hosts");
    write_hosts(&path, "first version, rather long\n").unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();
    write_hosts(&path, "second\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
    // A bind mount of the file keeps seeing it only if the inode stays the same.
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
    write_hosts(&path, "second\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
}

#[test]
fn vips_skip_the_network_first_and_broadcast_addresses_and_stay_with_their_service() {
    let mut vips = VipAllocator::new("10.96.0.0/29".parse().unwrap());
    let first = vips.allocate(&key("shop", "web")).unwrap();
    assert_eq!(first, Ipv4Addr::new(10, 96, 0, 2));
    assert_eq!(vips.allocate(&key("shop", "web")), Some(first), "stable for a key");
    assert_eq!(vips.get(&key("shop", "web")), Some(first));
    let more: Vec<Ipv4Addr> = ["a", "b", "c", "d"].iter().map(|n| vips.allocate(&key("shop", n)).unwrap()).collect();
    assert_eq!(more, [3, 4, 5, 6].map(|last| Ipv4Addr::new(10, 96, 0, last)));
    assert_eq!(vips.allocate(&key("shop", "full")), None, ".7 is the broadcast address");
    vips.release(&key("shop", "b"));
    assert_eq!(vips.get(&key("shop", "b")), None);
    assert_eq!(vips.allocate(&key("shop", "again")), Some(Ipv4Addr::new(10, 96, 0, 4)));
}

#[test]
fn released_vips_are_not_reused_before_the_rest_of_the_range() {
    let mut vips = VipAllocator::new("10.96.0.0/16".parse().unwrap());
    let web = vips.allocate(&key("shop", "web")).unwrap();
    vips.release(&key("shop", "web"));
    let next = vips.allocate(&key("shop", "cart")).unwrap();
    assert_ne!(next, web);
    assert_eq!(next, Ipv4Addr::new(10, 96, 0, 3));
}

#[test]
fn explicit_cluster_ips_are_honoured_and_never_handed_out_twice() {
    let mut vips = VipAllocator::new("10.96.0.0/16".parse().unwrap());
    assert!(vips.assign(&key("kube-system", "dns"), Ipv4Addr::new(10, 96, 0, 10)));
    assert!(vips.assign(&key("kube-system", "dns"), Ipv4Addr::new(10, 96, 0, 10)), "idempotent");
    assert!(!vips.assign(&key("shop", "web"), Ipv4Addr::new(10, 96, 0, 10)), "held by another service");
    assert!(!vips.assign(&key("shop", "web"), Ipv4Addr::new(10, 97, 0, 10)), "outside the CIDR");
    assert!(!vips.assign(&key("shop", "web"), Ipv4Addr::new(10, 96, 255, 255)), "broadcast");
    assert!(vips.reserve(Ipv4Addr::new(10, 96, 0, 2)));
    assert!(!vips.reserve(Ipv4Addr::new(10, 96, 0, 2)), "already reserved");
    assert!(!vips.reserve(Ipv4Addr::new(10, 96, 0, 0)), "network address");
    assert_eq!(vips.allocate(&key("shop", "web")), Some(Ipv4Addr::new(10, 96, 0, 3)), ".2 is reserved");
    // Moving a service to an explicit address frees its allocated one.
    assert!(vips.assign(&key("shop", "web"), Ipv4Addr::new(10, 96, 1, 1)));
    assert_eq!(vips.get(&key("shop", "web")), Some(Ipv4Addr::new(10, 96, 1, 1)));
    assert!(vips.reserve(Ipv4Addr::new(10, 96, 0, 3)), "the old address is free again");
}

#[test]
fn gateway_is_the_first_address_of_the_pod_cidr() {
    assert_eq!(gateway_of(DEFAULT_POD_CIDR.parse().unwrap()), Some(Ipv4Addr::new(10, 244, 0, 1)));
    assert_eq!(gateway_of("10.1.2.3/8".parse().unwrap()), Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(gateway_of("10.0.0.0/31".parse().unwrap()), None);
}

fn rule(vip: [u8; 4], port: u16, protocol: Protocol, endpoints: &[&str]) -> ServiceRule {
    ServiceRule {
        cluster_ip: Ipv4Addr::from(vip),
        port,
        protocol,
        endpoints: endpoints.iter().map(|e| e.parse::<SocketAddrV4>().unwrap()).collect(),
    }
}

#[test]
fn service_rules_dnat_spread_like_kube_proxy_and_reject_ports_without_endpoints() {
    let rules = [
        rule([10, 96, 0, 12], 53, Protocol::Udp, &["10.244.0.9:5353"]),
        rule([10, 96, 0, 11], 80, Protocol::Tcp, &["10.244.0.4:8080", "10.244.0.3:8080", "10.244.0.5:8080"]),
        rule([10, 96, 0, 11], 81, Protocol::Tcp, &[]),
    ];
    let expected = [
        (
            "nat",
            "-A AMBIENT_LOCAL_SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.33333333333 -j DNAT --to-destination 10.244.0.3:8080",
        ),
        (
            "nat",
            "-A AMBIENT_LOCAL_SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 10.244.0.4:8080",
        ),
        (
            "nat",
            "-A AMBIENT_LOCAL_SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.5:8080",
        ),
        (
            "filter",
            "-A AMBIENT_LOCAL_REJECT -d 10.96.0.11/32 -p tcp -m tcp --dport 81 -j REJECT --reject-with icmp-port-unreachable",
        ),
        (
            "nat",
            "-A AMBIENT_LOCAL_SERVICES -d 10.96.0.12/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.244.0.9:5353",
        ),
        ("nat", "-A AMBIENT_LOCAL_POSTROUTING -m conntrack --ctstate DNAT -j MASQUERADE"),
    ];
    let got = chain_rules(&rules);
    assert_eq!(got.iter().map(|(t, r)| (*t, r.as_str())).collect::<Vec<_>>(), expected);
    let mut shuffled = rules.to_vec();
    shuffled.reverse();
    assert_eq!(chain_rules(&shuffled), got, "deterministic whatever the input order");
}

#[test]
fn restore_input_adds_each_jump_once() {
    let rules = [rule([10, 96, 0, 11], 80, Protocol::Tcp, &["10.244.0.3:8080"])];
    let fresh = restore_input(&rules, &BTreeSet::new());
    assert_eq!(
        fresh,
        "*nat\n\
         :AMBIENT_LOCAL_SERVICES - [0:0]\n\
         :AMBIENT_LOCAL_POSTROUTING - [0:0]\n\
         -A AMBIENT_LOCAL_SERVICES -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.3:8080\n\
         -A AMBIENT_LOCAL_POSTROUTING -m conntrack --ctstate DNAT -j MASQUERADE\n\
         -I PREROUTING 1 -j AMBIENT_LOCAL_SERVICES\n\
         -I OUTPUT 1 -j AMBIENT_LOCAL_SERVICES\n\
         -I POSTROUTING 1 -j AMBIENT_LOCAL_POSTROUTING\n\
         COMMIT\n\
         *filter\n\
         :AMBIENT_LOCAL_REJECT - [0:0]\n\
         -I INPUT 1 -j AMBIENT_LOCAL_REJECT\n\
         -I FORWARD 1 -j AMBIENT_LOCAL_REJECT\n\
         -I OUTPUT 1 -j AMBIENT_LOCAL_REJECT\n\
         COMMIT\n"
    );
    let all: BTreeSet<(String, String)> =
        JUMPS.iter().map(|(table, from, _)| ((*table).to_owned(), (*from).to_owned())).collect();
    assert!(!restore_input(&rules, &all).contains("-I "), "no jump added twice");
}
