//! The network namespace fixture itself: connectivity over the bridge, the redirect stand-in with
//! SO_ORIGINAL_DST, and cleanup (also when a test panics). Needs root.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::thread;

use ambient::sys::netns::NetnsExecutor;
use ambient::sys::socket::{original_dst, tcp_connect_in};
use support::netns::{BYPASS_MARK, GATEWAY, HBONE_PORT, INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, TestNet, TestPod};

const POD_A: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 1);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 2);

/// Accepts one connection, answers what it reads with "echo:" prepended, returns the peer.
fn echo_once(listener: TcpListener) -> thread::JoinHandle<SocketAddr> {
    thread::spawn(move || {
        let (mut stream, peer) = listener.accept().expect("accept");
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).expect("read");
        stream.write_all(&[b"echo:", &buf[..n]].concat()).expect("write");
        peer
    })
}

fn round_trip(stream: &mut std::net::TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    reply
}

/// The original destination of a captured connection, through the library under test.
fn original_destination(stream: std::net::TcpStream) -> SocketAddr {
    stream.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { original_dst(&tokio::net::TcpStream::from_std(stream).unwrap()).unwrap() })
}

fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn pods_talk_over_the_bridge() {
    let net = TestNet::new();
    let a = net.add_pod("a", POD_A);
    let b = net.add_pod("b", POD_B);
    assert_ne!(a.ns_name, b.ns_name);
    assert!(a.ns_name.starts_with(&format!("ambt-{}-", std::process::id())), "{}", a.ns_name);
    assert!(a.ns_name.ends_with("-a"), "{}", a.ns_name);

    let server = echo_once(a.listen(8080));
    let mut client = b.connect(a.addr(8080));
    assert_eq!(round_trip(&mut client, b"hi"), b"echo:hi");
    assert_eq!(server.join().unwrap().ip(), POD_B);

    // Pod routing goes to the bridge; the cluster namespace has nowhere else to send anything.
    let routes = String::from_utf8(b.exec(&["ip", "route"]).stdout).unwrap();
    assert!(routes.contains(&format!("default via {GATEWAY}")), "{routes}");
    let cluster_routes = String::from_utf8(net.exec(&["ip", "route"]).stdout).unwrap();
    assert!(!cluster_routes.contains("default"), "cluster namespace must have no uplink:\n{cluster_routes}");
    let ports = String::from_utf8(net.exec(&["ip", "-o", "link", "show", "master", "br0"]).stdout).unwrap();
    assert_eq!(ports.lines().count(), 2, "{ports}");
}

#[test]
fn redirect_captures_outbound_to_15001_with_original_destination() {
    let net = TestNet::new();
    let a = net.add_pod("a", POD_A);
    let b = net.add_pod("b", POD_B);
    a.redirect();

    let capture = a.listen(OUTBOUND_CAPTURE_PORT);
    let _client = a.connect(b.addr(9090));
    let (captured, _) = capture.accept().unwrap();
    assert_eq!(original_destination(captured), b.addr(9090));

    // The proxy's own marked connections go through to the real destination.
    let real = b.listen(9090);
    let exec = NetnsExecutor::start("fixture-test").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bypass = rt.block_on(tcp_connect_in(&exec, Some(&a.netns()), b.addr(9090), Some(BYPASS_MARK))).unwrap();
    let (_, peer) = real.accept().unwrap();
    assert_eq!(peer, bypass.local_addr().unwrap());

    // Loopback is never captured.
    let local = echo_once(a.listen(7070));
    let mut client = a.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, 7070)));
    assert_eq!(round_trip(&mut client, b"lo"), b"echo:lo");
    local.join().unwrap();
}

#[test]
fn redirect_captures_inbound_to_15006_but_not_hbone() {
    let net = TestNet::new();
    let a = net.add_pod("a", POD_A);
    let b = net.add_pod("b", POD_B);
    a.redirect();

    let capture = a.listen(INBOUND_CAPTURE_PORT);
    let _client = b.connect(a.addr(80));
    let (captured, peer) = capture.accept().unwrap();
    assert_eq!(peer.ip(), POD_B);
    assert_eq!(original_destination(captured), a.addr(80));

    let hbone = a.listen(HBONE_PORT);
    let _client = b.connect(a.addr(HBONE_PORT));
    let (direct, _) = hbone.accept().unwrap();
    assert_eq!(original_destination(direct), a.addr(HBONE_PORT), "not NATed: the local address");
}

#[test]
fn cleanup_removes_every_namespace() {
    // Normal drop, pods first.
    let net = TestNet::new();
    let pods: Vec<TestPod> = (1..=3).map(|i| net.add_pod(&format!("p{i}"), Ipv4Addr::new(10, 10, 2, i))).collect();
    let mut names: Vec<String> = pods.iter().map(|p| p.ns_name.clone()).collect();
    names.push(net.ns_name().to_owned());
    assert!(names.iter().all(|n| namespace_exists(n)));
    drop(pods);
    drop(net);

    // A pod outliving its TestNet keeps the cluster namespace until the pod goes.
    let pod = {
        let net = TestNet::new();
        names.push(net.ns_name().to_owned());
        net.add_pod("orphan", POD_A)
    };
    assert!(namespace_exists(names.last().unwrap()), "cluster deleted while a pod still uses it");
    names.push(pod.ns_name.clone());
    drop(pod);

    // A panicking test.
    let (tx, rx) = std::sync::mpsc::channel();
    let panicked = thread::spawn(move || {
        let net = TestNet::new();
        let pod = net.add_pod("doomed", POD_B);
        tx.send(vec![net.ns_name().to_owned(), pod.ns_name.clone()]).unwrap();
        panic!("test failure inside the fixture");
    })
    .join();
    assert!(panicked.is_err());
    names.extend(rx.recv().unwrap());

    for name in &names {
        assert!(!namespace_exists(name), "{name} left behind");
    }
    let listed =
        String::from_utf8(std::process::Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    for name in &names {
        assert!(!listed.lines().any(|line| line.split_whitespace().next() == Some(name)), "{name} still listed");
    }
    // Under nextest every test has its own process, so nothing of this pid may remain at all.
    if std::env::var_os("NEXTEST_EXECUTION_MODE").is_some_and(|mode| mode == "process-per-test") {
        let prefix = format!("ambt-{}-", std::process::id());
        assert!(!listed.contains(&prefix), "namespaces of this process left behind:\n{listed}");
    }
}
