//! The cluster network and the CNI runtime together, with real namespaces and Debian's plugins
//! (needs root, iproute2, iptables and containernetworking-plugins): two pods get addresses from
//! the bridge and reach each other, a service VIP is DNAT'd to one of them, DEL frees addresses.
//! `ambient-cni` is the built binary (target/debug/ambient) talking to a stand-in node agent that
//! enrolls nobody, so the plugin passes the pods through.
//!
//! Network safety: every namespace is created here, named with the prefix of a temporary state
//! folder, and deleted on drop (also when a test panics); traffic stays between them.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::cni::protocol::{AgentResponse, PluginRequest};
use crate::local::network::{
    self, ClusterNetwork, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, Protocol, ServiceRule, add_netns, delete_netns,
};
use crate::sys::netns::NetnsExecutor;

const NODE: &str = "node-1";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Our binary, acting as `ambient-cni` through the symlink: next to the test executable's
/// `deps/` folder.
fn ambient_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let binary = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").join("ambient");
    assert!(
        binary.exists(),
        "\n\n*** local::cni_runtime tests: {} is missing; run `cargo build` first (the tests exec it as ambient-cni) ***\n\n",
        binary.display()
    );
    binary
}

fn preflight() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "\n\n*** local::cni_runtime tests create network namespaces: run as root ***\n\n"
    );
    assert!(
        Path::new(DEBIAN_CNI_DIR).join("bridge").exists(),
        "\n\n*** install Debian's containernetworking-plugins ({DEBIAN_CNI_DIR}/bridge) ***\n\n"
    );
}

/// A node agent stand-in: enrolls nobody, refuses pods whose name starts with `refused`.
struct StandInAgent {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StandInAgent {
    fn start(socket: &Path) -> StandInAgent {
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = UnixListener::bind(socket).expect("bind the stand-in agent socket");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let mut line = String::new();
                if BufReader::new(&stream).read_line(&mut line).is_err() {
                    continue;
                }
                let answer = match serde_json::from_str::<PluginRequest>(&line) {
                    Ok(PluginRequest::Enrolled { name, .. }) if name.starts_with("refused") => {
                        AgentResponse::Error { message: format!("stand-in agent refuses {name}") }
                    }
                    Ok(PluginRequest::Enrolled { .. }) => AgentResponse::Enrolled { enrolled: false },
                    Ok(_) => AgentResponse::Ok,
                    Err(e) => AgentResponse::Error { message: format!("bad request: {e}") },
                };
                let reply = format!("{}\n", serde_json::to_string(&answer).unwrap());
                let _ = (&stream).write_all(reply.as_bytes());
            }
        });
        StandInAgent { socket: socket.to_owned(), stop, thread: Some(thread) }
    }
}

impl Drop for StandInAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::os::unix::net::UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Deletes the namespaces it was given on drop, pods before the cluster.
#[derive(Default)]
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.0.iter().rev() {
            if let Err(e) = delete_netns(name) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

fn pod(dir: &StateDir, name: &str) -> CniPod {
    CniPod {
        namespace: "shop".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        container_id: format!("sandbox-{name}"),
        netns: dir.pod_netns("shop", name),
    }
}

fn ipv4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => panic!("expected IPv4, got {ip}"),
    }
}

/// The addresses host-local has handed out (one file per address in its dataDir).
fn allocated(dir: &StateDir) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.ipam_dir().join(NETWORK_NAME)) else { return Vec::new() };
    let mut ips: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.parse::<Ipv4Addr>().is_ok())
        .collect();
    ips.sort();
    ips
}

fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Connects from inside `from` and says hello; the connection's outcome.
fn connect(exec: &NetnsExecutor, from: &Netns, to: SocketAddr) -> std::io::Result<()> {
    exec.run_blocking(from, move || {
        let mut stream = TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)?;
        stream.write_all(b"hello")
    })
}

/// The peer of the next connection on `listener` (which must arrive within 5 s).
fn accept_peer(listener: &TcpListener) -> SocketAddr {
    listener.set_nonblocking(false).unwrap();
    let (mut stream, peer) = listener.accept().expect("accept");
    let mut hello = [0u8; 5];
    stream.set_read_timeout(Some(CONNECT_TIMEOUT)).unwrap();
    stream.read_exact(&mut hello).expect("read hello");
    assert_eq!(&hello, b"hello");
    peer
}

/// Our rules in one table of the cluster namespace, as iptables-save prints them.
fn our_rules(cluster: &ClusterNetwork, table: &str) -> Vec<String> {
    cluster.saved_table(table).unwrap().lines().filter(|l| l.contains("AMBIENT_LOCAL")).map(str::to_owned).collect()
}

#[test]
fn pods_get_addresses_reach_each_other_and_services_through_the_cluster_namespace() {
    preflight();
    let temp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(&temp.path().join("state")).unwrap();
    let mut namespaces = Namespaces::default();
    let (pod_cidr, service_cidr) = (DEFAULT_POD_CIDR.parse().unwrap(), DEFAULT_SERVICE_CIDR.parse().unwrap());

    let cluster = ClusterNetwork::create(&dir, pod_cidr, service_cidr).unwrap();
    namespaces.0.push(cluster.name.clone());
    assert_eq!(cluster.gateway, Ipv4Addr::new(10, 244, 0, 1));
    let again = ClusterNetwork::create(&dir, pod_cidr, service_cidr).unwrap_err().to_string();
    assert!(again.contains(&dir.cluster_netns()) && again.contains("local down"), "{again}");
    let forwarding = command_in(&cluster.netns, "cat").arg("/proc/sys/net/ipv4/ip_forward").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&forwarding.stdout).trim(), "1", "forwarding on in the cluster namespace");
    let local_routes = ip_output(&["-n", &cluster.name, "route", "show", "table", "local"]);
    assert!(local_routes.contains("local 10.96.0.0/16 dev lo"), "{local_routes}");
    // As on a stock Debian machine, where bridged frames skip iptables: the service rules must
    // not rely on br_netfilter (on kernels that have it, the switch is per namespace).
    let bridge_nf = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    if Path::new(bridge_nf).exists() {
        let off = command_in(&cluster.netns, "sh").args(["-c", &format!("echo 0 > {bridge_nf}")]).status().unwrap();
        assert!(off.success(), "turning bridge-nf-call-iptables off in the cluster namespace");
    }
    let reopened = ClusterNetwork::open(&dir, pod_cidr, service_cidr).unwrap();
    assert_eq!(reopened.netns, cluster.netns);

    let _agent = StandInAgent::start(&dir.plugin_socket(NODE));
    let cni = CniRuntime::new(&dir, NODE, cluster.netns.clone(), pod_cidr, cluster.gateway, &ambient_binary()).unwrap();
    assert!(cni.conflist_path().exists());

    let (a, b) = (pod(&dir, "client"), pod(&dir, "server"));
    let ns_a = add_netns(&a.netns).unwrap();
    namespaces.0.push(a.netns.clone());
    let ns_b = add_netns(&b.netns).unwrap();
    namespaces.0.push(b.netns.clone());

    let rt = tokio::runtime::Runtime::new().unwrap();
    // Concurrently, as the runtime starts pods.
    let (added_a, added_b) = rt.block_on(async { tokio::join!(cni.add(&a), cni.add(&b)) });
    let (ip_a, ip_b) = (ipv4(added_a.unwrap().ip), ipv4(added_b.unwrap().ip));
    assert_ne!(ip_a, ip_b);
    for ip in [ip_a, ip_b] {
        assert!(pod_cidr.contains(&ip) && ip != cluster.gateway, "{ip}");
    }
    assert_eq!(allocated(&dir), {
        let mut ips = vec![ip_a.to_string(), ip_b.to_string()];
        ips.sort();
        ips
    });

    // No way out of the cluster namespace; the pods route everything via the gateway.
    let cluster_routes = ip_output(&["-n", &cluster.name, "route"]);
    assert!(!cluster_routes.contains("default"), "cluster namespace has a default route:\n{cluster_routes}");
    assert!(cluster_routes.contains(network::BRIDGE), "{cluster_routes}");
    let pod_routes = ip_output(&["-n", &a.netns, "route"]);
    assert!(pod_routes.contains("default via 10.244.0.1 dev eth0"), "{pod_routes}");

    let exec = NetnsExecutor::start("test-local-net").unwrap();
    let listener = exec.run_blocking(&ns_b, || TcpListener::bind("0.0.0.0:8080")).unwrap();

    // Pod to pod, straight over the bridge.
    connect(&exec, &ns_a, SocketAddr::from((ip_b, 8080))).unwrap();
    assert_eq!(accept_peer(&listener).ip(), IpAddr::V4(ip_a));

    // A service VIP, DNAT'd in the cluster namespace and masqueraded (the hairpin rule).
    let vip = Ipv4Addr::new(10, 96, 0, 10);
    let rules = [
        ServiceRule {
            cluster_ip: vip,
            port: 80,
            protocol: Protocol::Tcp,
            endpoints: vec![SocketAddrV4::new(ip_b, 8080)],
        },
        ServiceRule { cluster_ip: vip, port: 81, protocol: Protocol::Tcp, endpoints: vec![] },
    ];
    cluster.sync_services(&rules).unwrap();
    connect(&exec, &ns_a, SocketAddr::from((vip, 80))).unwrap();
    assert_eq!(accept_peer(&listener).ip(), IpAddr::V4(cluster.gateway));
    // The endpoint itself through the VIP.
    connect(&exec, &ns_b, SocketAddr::from((vip, 80))).unwrap();
    assert_eq!(accept_peer(&listener).ip(), IpAddr::V4(cluster.gateway));
    // A port without endpoints is refused at once, and so is a port no service has.
    for port in [81, 82] {
        let refused = connect(&exec, &ns_a, SocketAddr::from((vip, port))).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "port {port}: {refused}");
    }

    let expected_nat = [
        "-A PREROUTING -j AMBIENT_LOCAL_SERVICES".to_owned(),
        "-A OUTPUT -j AMBIENT_LOCAL_SERVICES".to_owned(),
        "-A POSTROUTING -j AMBIENT_LOCAL_POSTROUTING".to_owned(),
        "-A AMBIENT_LOCAL_POSTROUTING -m conntrack --ctstate DNAT -j MASQUERADE".to_owned(),
        format!(
            "-A AMBIENT_LOCAL_SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {ip_b}:8080"
        ),
    ];
    let expected_filter = [
        "-A INPUT -j AMBIENT_LOCAL_REJECT",
        "-A FORWARD -j AMBIENT_LOCAL_REJECT",
        "-A OUTPUT -j AMBIENT_LOCAL_REJECT",
        "-A AMBIENT_LOCAL_REJECT -d 10.96.0.10/32 -p tcp -m tcp --dport 81 -j REJECT --reject-with icmp-port-unreachable",
    ];
    let sorted = |mut lines: Vec<String>| {
        lines.retain(|l| !l.starts_with(':'));
        lines.sort();
        lines
    };
    assert_eq!(sorted(our_rules(&cluster, "nat")), sorted(expected_nat.to_vec()));
    assert_eq!(sorted(our_rules(&cluster, "filter")), sorted(expected_filter.map(str::to_owned).to_vec()));
    let before = (cluster.saved_table("nat").unwrap(), cluster.saved_table("filter").unwrap());
    cluster.sync_services(&rules).unwrap();
    let strip_counters = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" [").next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let after = (cluster.saved_table("nat").unwrap(), cluster.saved_table("filter").unwrap());
    assert_eq!(strip_counters(&after.0), strip_counters(&before.0), "syncing twice changes nothing");
    assert_eq!(strip_counters(&after.1), strip_counters(&before.1));

    // Two endpoints: spread half and half (0.5 is exact in the kernel's fixed point).
    let both = [ServiceRule {
        cluster_ip: vip,
        port: 80,
        protocol: Protocol::Tcp,
        endpoints: vec![SocketAddrV4::new(ip_b, 8080), SocketAddrV4::new(ip_a, 8080)],
    }];
    cluster.sync_services(&both).unwrap();
    let (first, second) = if ip_a < ip_b { (ip_a, ip_b) } else { (ip_b, ip_a) };
    let services: Vec<String> =
        our_rules(&cluster, "nat").into_iter().filter(|l| l.starts_with("-A AMBIENT_LOCAL_SERVICES")).collect();
    assert_eq!(
        services,
        [
            format!(
                "-A AMBIENT_LOCAL_SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination {first}:8080"
            ),
            format!(
                "-A AMBIENT_LOCAL_SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {second}:8080"
            ),
        ]
    );
    assert!(our_rules(&cluster, "filter").iter().all(|l| !l.contains("REJECT --reject")), "port 81 is gone");

    // DEL frees the address and takes the pod off the bridge.
    rt.block_on(cni.del(&a)).unwrap();
    assert_eq!(allocated(&dir), [ip_b.to_string()]);
    let links = ip_output(&["-n", &a.netns, "link"]);
    assert!(!links.contains("eth0"), "{links}");
    // A second DEL is fine (the spec asks plugins to tolerate it).
    rt.block_on(cni.del(&a)).unwrap();
}

#[test]
fn a_failing_plugin_is_named_and_what_came_before_it_is_undone() {
    preflight();
    let temp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(&temp.path().join("state")).unwrap();
    let mut namespaces = Namespaces::default();
    let pod_cidr = "10.245.0.0/24".parse().unwrap();
    let cluster = ClusterNetwork::create(&dir, pod_cidr, DEFAULT_SERVICE_CIDR.parse().unwrap()).unwrap();
    namespaces.0.push(cluster.name.clone());
    let _agent = StandInAgent::start(&dir.plugin_socket(NODE));
    let cni = CniRuntime::new(&dir, NODE, cluster.netns.clone(), pod_cidr, cluster.gateway, &ambient_binary()).unwrap();
    let refused = pod(&dir, "refused-one");
    add_netns(&refused.netns).unwrap();
    namespaces.0.push(refused.netns.clone());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let error = rt.block_on(cni.add(&refused)).unwrap_err().to_string();
    assert!(error.contains("shop/refused-one") && error.contains("plugin ambient-cni"), "{error}");
    assert!(error.contains("stand-in agent refuses refused-one"), "{error}");
    assert!(error.contains("exit status: 1"), "{error}");
    assert_eq!(allocated(&dir), Vec::<String>::new(), "bridge's DEL released the address");

    // A pod whose namespace does not exist fails in the first plugin.
    let ghost = pod(&dir, "ghost");
    let error = rt.block_on(cni.add(&ghost)).unwrap_err().to_string();
    assert!(error.contains("plugin bridge"), "{error}");
    assert_eq!(allocated(&dir), Vec::<String>::new());
}

#[test]
fn a_pod_cidr_without_room_is_refused_before_anything_is_made() {
    preflight();
    let temp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(temp.path()).unwrap();
    let error = ClusterNetwork::create(&dir, "10.9.0.0/31".parse().unwrap(), DEFAULT_SERVICE_CIDR.parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(error.contains("10.9.0.0/31"), "{error}");
    assert!(!Path::new(network::NETNS_DIR).join(dir.cluster_netns()).exists());
}

#[test]
fn the_conflist_chains_bridge_and_ambient_cni_and_links_our_binary() {
    let temp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(temp.path()).unwrap();
    let list = conflist(&dir, NODE, "10.244.0.0/16".parse().unwrap(), Ipv4Addr::new(10, 244, 0, 1));
    assert_eq!(
        list,
        json!({
            "cniVersion": "1.0.0",
            "name": "ambient-local",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "amb0",
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.244.0.0/16", "gateway": "10.244.0.1"}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": dir.ipam_dir(),
                    },
                },
                {"type": "ambient-cni", "agentSocket": dir.plugin_socket(NODE)},
            ],
        })
    );
    let bin_dir = dir.cni_bin_dir();
    link_plugin(&bin_dir, Path::new("/bin/true")).unwrap();
    link_plugin(&bin_dir, Path::new("/bin/false")).unwrap();
    assert_eq!(std::fs::read_link(bin_dir.join("ambient-cni")).unwrap(), Path::new("/bin/false"));
}

#[test]
fn plugin_failures_quote_the_cni_error_or_the_output() {
    let status = Command::new("false").status().unwrap();
    let error = json!({"cniVersion": "1.0.0", "code": 11, "msg": "agent down", "details": "start it"}).to_string();
    let text = describe_failure(Path::new("/x/ambient-cni"), "ADD", status, &error, "log line");
    assert_eq!(text, "(/x/ambient-cni) failed ADD with exit status: 1: agent down (start it) [CNI error code 11]");
    let text = describe_failure(Path::new("/x/bridge"), "DEL", status, "", "panic: oops\n");
    assert_eq!(text, "(/x/bridge) failed DEL with exit status: 1: panic: oops");
}

#[test]
fn the_pod_address_is_the_first_ipv4_of_the_result() {
    let result = json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.244.0.5/16", "gateway": "10.244.0.1"}]});
    assert_eq!(result_ipv4(&result), Some(Ipv4Addr::new(10, 244, 0, 5)));
    assert_eq!(result_ipv4(&json!({"ips": []})), None);
    let args = cni_args(&CniPod {
        namespace: "shop".into(),
        name: "web".into(),
        uid: "u1".into(),
        container_id: "c1".into(),
        netns: "n".into(),
    });
    assert_eq!(
        args,
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u1"
    );
}
