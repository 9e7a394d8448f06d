//! Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN): fresh namespaces are made with unshare(2) on a
//! throwaway thread, so nothing is created in the host namespace and nothing outlives the test.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::netns::{Netns, NetnsExecutor};
use super::seqpacket::{MAX_DATAGRAM, MAX_FDS, SeqpacketListener, SeqpacketStream};
use super::socket::{
    ConnectOptions, check_capabilities, original_dst, set_mark, set_nodelay, tcp_connect_in, tcp_connect_with,
    tcp_listener_in,
};

use super::testing::fresh_netns;

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[test]
fn current_netns_is_the_process_namespace() {
    let ns = Netns::current().unwrap();
    let expected = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert_eq!(ns.inode(), expected);
    assert_eq!(ns, Netns::open("/proc/self/ns/net".as_ref()).unwrap());
    assert!(format!("{ns:?}").contains(&expected.to_string()));
}

#[test]
fn from_fd_rejects_non_network_namespaces() {
    let error = Netns::from_fd(File::open("/dev/null").unwrap().into()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("not a namespace"), "{error}");

    let error = Netns::open("/proc/self/ns/uts".as_ref()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    assert!(error.to_string().contains("not a network namespace"), "{error}");

    let error = Netns::open("/nonexistent/netns".as_ref()).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/netns"), "{error}");
}

#[tokio::test]
async fn executor_runs_jobs_inside_the_namespace() {
    let host = Netns::current().unwrap();
    let pod = fresh_netns();
    assert_ne!(host, pod);
    let exec = NetnsExecutor::start("test-netns").unwrap();

    let seen = exec.run(&pod, || Ok(Netns::current()?.inode())).await.unwrap();
    assert_eq!(seen, pod.inode());
    // Again in the same namespace (no setns), then back to the host's.
    assert_eq!(exec.run(&pod, || Ok(Netns::current()?.inode())).await.unwrap(), pod.inode());
    assert_eq!(exec.run(&host, || Ok(Netns::current()?.inode())).await.unwrap(), host.inode());

    let blocking = exec.clone();
    let pod2 = pod.clone();
    let seen = tokio::task::spawn_blocking(move || blocking.run_blocking(&pod2, || Ok(Netns::current()?.inode())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, pod.inode());

    // The caller's thread never moved.
    assert_eq!(Netns::current().unwrap(), host);
}

#[tokio::test]
async fn executor_survives_failing_and_panicking_jobs() {
    let exec = NetnsExecutor::start("test-panic").unwrap();
    let ns = fresh_netns();

    let error = exec.run(&ns, || -> io::Result<()> { panic!("boom") }).await.unwrap_err();
    assert!(error.to_string().contains("boom"), "{error}");
    let error = exec.run(&ns, || -> io::Result<()> { Err(io::Error::other("job failed")) }).await.unwrap_err();
    assert_eq!(error.to_string(), "job failed");

    // A job that waits for its own executor is refused instead of deadlocking.
    let inner = exec.clone();
    let inner_ns = ns.clone();
    let error = exec.run(&ns, move || inner.run_blocking(&inner_ns, || Ok(()))).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock, "{error}");

    assert_eq!(exec.run(&ns, || Ok(7)).await.unwrap(), 7);
}

#[tokio::test]
async fn sockets_keep_the_namespace_they_were_created_in() {
    let exec = NetnsExecutor::start("test-sockets").unwrap();
    let pod = fresh_netns();

    // The same loopback port bound in both namespaces: only possible because they are separate.
    let host_listener = tokio::net::TcpListener::bind(localhost(0)).await.unwrap();
    let port = host_listener.local_addr().unwrap().port();
    let pod_listener = tcp_listener_in(&exec, &pod, localhost(port), false).await.unwrap();
    assert_eq!(pod_listener.local_addr().unwrap(), localhost(port));

    // Connecting from the pod namespace (with a mark) reaches the pod listener...
    let mut client = tcp_connect_in(&exec, Some(&pod), localhost(port), Some(1337)).await.unwrap();
    let (mut accepted, _) = pod_listener.accept().await.unwrap();
    assert_eq!(SockRef::from(&client).mark().unwrap(), 1337);
    assert!(client.nodelay().unwrap());
    assert_eq!(original_dst(&accepted).unwrap(), localhost(port), "no NAT: the local address");
    client.write_all(b"pod").await.unwrap();
    let mut buf = [0u8; 3];
    accepted.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pod");

    // ...and from the caller's namespace the host listener.
    let _host_client = tcp_connect_in(&exec, None, localhost(port), None).await.unwrap();
    let (host_accepted, _) = host_listener.accept().await.unwrap();
    set_nodelay(&host_accepted, true).unwrap();
    set_mark(&host_accepted, 7).unwrap();
    assert_eq!(SockRef::from(&host_accepted).mark().unwrap(), 7);
}

#[tokio::test]
async fn transparent_listener_and_bound_source() {
    let exec = NetnsExecutor::start("test-transparent").unwrap();
    let pod = fresh_netns();
    let listener = tcp_listener_in(&exec, &pod, localhost(0), true).await.unwrap();
    assert!(SockRef::from(&listener).ip_transparent_v4().unwrap());
    let dst = listener.local_addr().unwrap();

    let source = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0));
    let options = ConnectOptions { bind: Some(source), transparent: true, ..ConnectOptions::default() };
    let client = tcp_connect_with(&exec, Some(&pod), dst, options).await.unwrap();
    let (_accepted, peer) = listener.accept().await.unwrap();
    assert_eq!(peer.ip(), source.ip());
    assert_eq!(client.local_addr().unwrap().ip(), source.ip());
}

/// A proxy that closes first leaves TIME_WAIT on its side of (pod IP, app port). With explicitly
/// bound ports (SO_REUSEADDR) the kernel takes TIME_WAIT entries over, so the same four ports
/// serve connection after connection; left to choose among them itself, it runs out.
#[tokio::test]
async fn bound_source_ports_reuse_time_wait() {
    let exec = NetnsExecutor::start("test-time-wait").unwrap();
    let pod = fresh_netns();
    let status = super::netns::command_in(&pod, "ip").args(["addr", "add", "10.99.0.1/32", "dev", "lo"]).status();
    assert!(status.unwrap().success(), "ip addr add");
    let status =
        super::netns::command_in(&pod, "sysctl").args(["-qw", "net.ipv4.ip_local_port_range=40000 40003"]).status();
    assert!(status.unwrap().success(), "sysctl ip_local_port_range");
    let pod_ip = Ipv4Addr::new(10, 99, 0, 1);
    let listener = tcp_listener_in(&exec, &pod, SocketAddr::from((pod_ip, 7000)), false).await.unwrap();

    let bound = |i: u16| ConnectOptions { bind: Some(SocketAddr::from((pod_ip, 40000 + i % 4))), ..Default::default() };
    for round in 0..3 {
        let results = close_first_connections(&exec, &pod, &listener, bound).await;
        assert!(results.iter().all(Result::is_ok), "round {round}: TIME_WAIT ports are taken over: {results:?}");
    }
    // Left to the kernel, the same ports are refused while their TIME_WAIT lasts.
    let kernel_chosen = close_first_connections(&exec, &pod, &listener, |_| ConnectOptions::default()).await;
    let error = kernel_chosen.iter().find_map(|r| r.as_ref().err()).expect("kernel-chosen ports stay taken");
    assert_eq!(error.kind(), io::ErrorKind::AddrNotAvailable, "{error}");
}

#[test]
fn source_ports_cycle_through_the_range() {
    let ports = super::socket::SourcePorts::new();
    let first = ports.next();
    assert!((super::socket::SourcePorts::FIRST..=super::socket::SourcePorts::LAST).contains(&first));
    let span = usize::from(super::socket::SourcePorts::LAST - super::socket::SourcePorts::FIRST) + 1;
    let mut seen = std::collections::HashSet::new();
    seen.insert(first);
    for _ in 1..span {
        assert!(seen.insert(ports.next()), "a port came back before the range was used up");
    }
    assert_eq!(ports.next(), first, "then it starts over");
}

/// Four connections to `listener` (the i-th with `options(i)`), each closed by the connecting
/// side first (so TIME_WAIT stays on it); the result of each connect.
async fn close_first_connections(
    exec: &NetnsExecutor,
    pod: &Netns,
    listener: &tokio::net::TcpListener,
    options: impl Fn(u16) -> ConnectOptions,
) -> Vec<io::Result<()>> {
    let dst = listener.local_addr().unwrap();
    let mut results = Vec::new();
    for i in 0..4 {
        let mut client = match tcp_connect_with(exec, Some(pod), dst, options(i)).await {
            Ok(client) => client,
            Err(error) => {
                results.push(Err(error));
                continue;
            }
        };
        let (mut accepted, _) = listener.accept().await.unwrap();
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        accepted.read_to_end(&mut rest).await.unwrap();
        drop(accepted);
        client.read_to_end(&mut rest).await.unwrap();
        results.push(Ok(()));
    }
    results
}

#[tokio::test]
async fn listener_errors_name_the_address() {
    let exec = NetnsExecutor::start("test-errors").unwrap();
    let pod = fresh_netns();
    // 192.0.2.1 (TEST-NET-1) is not configured in the empty namespace: nothing is sent anywhere.
    let addr = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 15001));
    let error = tcp_listener_in(&exec, &pod, addr, false).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrNotAvailable, "{error}");
    assert!(error.to_string().contains("192.0.2.1:15001"), "{error}");
}

#[test]
fn capabilities_are_present_as_root() {
    check_capabilities().unwrap();
}

#[tokio::test]
async fn seqpacket_carries_datagrams_and_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zds.sock");
    let listener = SeqpacketListener::bind(&path).unwrap();
    assert_eq!(listener.path(), path);
    let (client, server) = tokio::join!(SeqpacketStream::connect(&path), listener.accept());
    let (client, server) = (client.unwrap(), server.unwrap());

    let mut file = tempfile::tempfile().unwrap();
    file.write_all(b"passed").unwrap();
    client.send(b"first", &[file.as_fd()]).await.unwrap();
    client.send(b"second", &[]).await.unwrap();

    let (data, fds) = server.recv().await.unwrap().unwrap();
    assert_eq!(data, b"first");
    assert_eq!(fds.len(), 1);
    let mut received = File::from(fds.into_iter().next().unwrap());
    assert_eq!(received.metadata().unwrap().ino(), file.metadata().unwrap().ino());
    let mut text = String::new();
    std::io::Seek::rewind(&mut received).unwrap();
    received.read_to_string(&mut text).unwrap();
    assert_eq!(text, "passed");

    let (data, fds) = server.recv().await.unwrap().unwrap();
    assert_eq!(data, b"second");
    assert!(fds.is_empty());

    // Datagram boundaries hold both ways.
    server.send(&[1; 100], &[]).await.unwrap();
    server.send(&[2; 3], &[]).await.unwrap();
    assert_eq!(client.recv().await.unwrap().unwrap().0, vec![1; 100]);
    assert_eq!(client.recv().await.unwrap().unwrap().0, vec![2; 3]);

    drop(client);
    assert!(server.recv().await.unwrap().is_none(), "EOF after the peer closed");
}

#[tokio::test]
async fn seqpacket_rejects_oversized_datagrams_and_keeps_going() {
    let (a, b) = SeqpacketStream::pair().unwrap();

    let error = a.send(&[], &[]).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);

    a.send(&vec![9; MAX_DATAGRAM + 1], &[]).await.unwrap();
    let error = b.recv().await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");

    let files: Vec<File> = (0..=MAX_FDS).map(|_| tempfile::tempfile().unwrap()).collect();
    let fds: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
    a.send(b"too many", &fds).await.unwrap();
    let error = b.recv().await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");

    a.send(b"fine", &fds[..MAX_FDS]).await.unwrap();
    let (data, received) = b.recv().await.unwrap().unwrap();
    assert_eq!(data, b"fine");
    assert_eq!(received.len(), MAX_FDS);
}

#[tokio::test]
async fn seqpacket_connect_to_missing_socket_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let error = SeqpacketStream::connect(&path).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(error.to_string().contains("absent.sock"), "{error}");
}

#[test]
fn code_mappings_are_the_executable_text_only() {
    let maps = "\
555d6e946000-555d6e948000 r--p 00000000 fe:00 247030                     /usr/bin/cat
555d6e948000-555d6e94d000 r-xp 00002000 fe:00 247030                     /usr/bin/cat
555d6e94d000-555d6e950000 r--p 00007000 fe:00 247030                     /usr/bin/cat
7f0000000000-7f0000001000 r-xp 00000000 fe:00 1111                       /usr/lib/libc.so.6
7f0000002000-7f0000003000 rw-p 00000000 00:00 0
7f0000004000-7f0000005000 r-xp 00009000 fe:00 247030                     /usr/bin/cat
";
    let found = super::memory::code_mappings(maps, "/usr/bin/cat");
    assert_eq!(found, vec![(0x555d6e948000, 0x555d6e94d000), (0x7f0000004000, 0x7f0000005000)]);
    assert!(super::memory::code_mappings(maps, "/usr/bin/ca").is_empty());
}

/// Releasing the code pages of the running test binary: something is released, and code keeps
/// running (pages come back from the page cache on the next access).
#[test]
fn releasing_code_pages_keeps_the_process_running() {
    super::memory::tune_allocator().unwrap();
    let released = super::memory::release_startup_code_pages().unwrap();
    assert!(released > 0, "the test binary has executable mappings");
    let text: String = (0..1000).map(|i| format!("{i}")).collect();
    assert!(text.len() > 1000);
}
