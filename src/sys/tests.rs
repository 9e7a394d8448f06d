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
    let options = ConnectOptions { mark: None, bind: Some(source), transparent: true };
    let client = tcp_connect_with(&exec, Some(&pod), dst, options).await.unwrap();
    let (_accepted, peer) = listener.accept().await.unwrap();
    assert_eq!(peer.ip(), source.ip());
    assert_eq!(client.local_addr().unwrap().ip(), source.ip());
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
