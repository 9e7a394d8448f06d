//! ZDS end to end: ztunnel's client (`run_client`) against the agent side (`ZdsListener`), with
//! real network namespace descriptors from the netns fixture. Needs root.

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ambient::sys::netns::{Netns, NetnsExecutor};
use ambient::sys::seqpacket::SeqpacketStream;
use ambient::sys::socket::tcp_listener_in;
use ambient::zds::proto::{self, workload_request::Payload};
use ambient::zds::{PodHandler, PodInfo, ZdsClientConfig, ZdsConnection, ZdsError, ZdsListener, ZdsStatus, run_client};
use futures::future::BoxFuture;
use prost::Message;
use support::netns::{TestNet, TestPod};
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Event {
    Add { pod: PodInfo, netns: Netns },
    Keep(String),
    Del(String),
    SnapshotDone(BTreeSet<String>),
}

/// A PodHandler that remembers its pods like ztunnel would and reports every call.
struct Recorder {
    pods: Mutex<HashMap<String, Netns>>,
    events: mpsc::UnboundedSender<Event>,
}

impl PodHandler for Recorder {
    fn add(&self, pod: PodInfo, netns: Netns) -> BoxFuture<'_, Result<(), String>> {
        self.pods.lock().unwrap().insert(pod.uid.clone(), netns.clone());
        let _ = self.events.send(Event::Add { pod, netns });
        Box::pin(async { Ok(()) })
    }

    fn keep(&self, uid: &str) -> BoxFuture<'_, Result<(), String>> {
        let known = self.pods.lock().unwrap().contains_key(uid);
        let _ = self.events.send(Event::Keep(uid.to_owned()));
        let result = if known { Ok(()) } else { Err(format!("unknown pod {uid}")) };
        Box::pin(async move { result })
    }

    fn del(&self, uid: &str) -> BoxFuture<'_, ()> {
        self.pods.lock().unwrap().remove(uid);
        let _ = self.events.send(Event::Del(uid.to_owned()));
        Box::pin(async {})
    }

    fn snapshot_done(&self, seen: &HashSet<String>) -> BoxFuture<'_, ()> {
        self.pods.lock().unwrap().retain(|uid, _| seen.contains(uid));
        let _ = self.events.send(Event::SnapshotDone(seen.iter().cloned().collect()));
        Box::pin(async {})
    }
}

/// A running ztunnel-side client; aborted on drop.
struct Client {
    task: tokio::task::JoinHandle<()>,
    status: watch::Receiver<ZdsStatus>,
    events: mpsc::UnboundedReceiver<Event>,
    handler: Arc<Recorder>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    fn start(socket: &Path) -> Client {
        let (events_tx, events) = mpsc::unbounded_channel();
        let handler = Arc::new(Recorder { pods: Mutex::default(), events: events_tx });
        let (status_tx, status) = watch::channel(ZdsStatus::default());
        let config = ZdsClientConfig {
            socket: socket.to_owned(),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
        };
        let task = tokio::spawn(run_client(config, handler.clone(), status_tx));
        Client { task, status, events, handler }
    }

    async fn next_event(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.recv()).await.expect("handler call").expect("handler alive")
    }

    async fn wait_status(&mut self, what: &str, f: impl FnMut(&ZdsStatus) -> bool) -> ZdsStatus {
        let reached = tokio::time::timeout(WAIT, self.status.wait_for(f)).await.map(|status| status.unwrap().clone());
        reached.unwrap_or_else(|_| panic!("status never became {what}: {:?}", *self.status.borrow()))
    }

    fn pods(&self) -> BTreeSet<String> {
        self.handler.pods.lock().unwrap().keys().cloned().collect()
    }
}

async fn accept(listener: &ZdsListener) -> ZdsConnection {
    tokio::time::timeout(WAIT, listener.accept()).await.expect("ztunnel connects").expect("valid hello")
}

fn socket_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("ztunnel.sock")
}

fn pod_info(pod: &TestPod) -> PodInfo {
    PodInfo {
        uid: format!("uid-{}", pod.name),
        name: pod.name.clone(),
        namespace: "default".into(),
        service_account: format!("sa-{}", pod.name),
    }
}

fn rejection(result: Result<(), ZdsError>) -> String {
    match result {
        Err(ZdsError::Rejected(message)) => message,
        other => panic!("expected a rejection ack, got {other:?}"),
    }
}

fn uids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn add_keep_del_and_snapshot_are_acked_and_reach_the_handler() {
    let net = TestNet::new();
    let web = net.add_pod("web", Ipv4Addr::new(10, 10, 3, 1));
    let db = net.add_pod("db", Ipv4Addr::new(10, 10, 3, 2));
    let dir = tempfile::tempdir().unwrap();
    let listener = ZdsListener::bind(socket_path(&dir)).unwrap();
    let mut client = Client::start(&socket_path(&dir));
    let mut conn = accept(&listener).await;
    client.wait_status("connected", |s| s.connected && !s.snapshot_received).await;

    conn.add(&pod_info(&web), web.netns().as_fd()).await.unwrap();
    let Event::Add { pod, netns } = client.next_event().await else { panic!("expected add") };
    assert_eq!(pod, pod_info(&web));
    assert_eq!(netns.inode(), web.netns().inode(), "the pod's own namespace arrived");
    // The received descriptor is usable: the pod's address can only be bound inside its namespace.
    let exec = NetnsExecutor::start("zds-test").unwrap();
    let inside = tcp_listener_in(&exec, &netns, web.addr(15001), false).await.unwrap();
    assert_eq!(inside.local_addr().unwrap(), web.addr(15001));

    conn.add(&pod_info(&db), db.netns().as_fd()).await.unwrap();
    assert!(matches!(client.next_event().await, Event::Add { pod, .. } if pod.uid == "uid-db"));

    conn.keep("uid-web").await.unwrap();
    assert!(matches!(client.next_event().await, Event::Keep(uid) if uid == "uid-web"));
    let error = rejection(conn.keep("uid-ghost").await);
    assert_eq!(error, "keep uid-ghost: unknown pod uid-ghost");
    assert!(matches!(client.next_event().await, Event::Keep(uid) if uid == "uid-ghost"));

    conn.del("uid-db").await.unwrap();
    assert!(matches!(client.next_event().await, Event::Del(uid) if uid == "uid-db"));

    conn.snapshot_sent().await.unwrap();
    let Event::SnapshotDone(seen) = client.next_event().await else { panic!("expected snapshot_done") };
    assert_eq!(seen, uids(&["uid-web"]), "added or kept, minus deleted");
    let status = client.wait_status("synced", |s| s.snapshot_received).await;
    assert!(status.connected);
    assert_eq!(status.last_error.as_deref(), Some(error.as_str()));
    assert_eq!(client.pods(), uids(&["uid-web"]));
}

#[tokio::test]
async fn malformed_requests_get_error_acks_and_the_connection_survives() {
    let net = TestNet::new();
    let web = net.add_pod("web", Ipv4Addr::new(10, 10, 4, 1));
    let dir = tempfile::tempdir().unwrap();
    let listener = ZdsListener::bind(socket_path(&dir)).unwrap();
    let mut client = Client::start(&socket_path(&dir));
    let mut conn = accept(&listener).await;

    let add = proto::WorkloadRequest {
        payload: Some(Payload::Add(proto::AddWorkload {
            uid: "uid-web".into(),
            workload_info: Some(proto::WorkloadInfo {
                name: "web".into(),
                namespace: "default".into(),
                service_account: "web".into(),
            }),
        })),
    }
    .encode_to_vec();
    let error = rejection(conn.send_raw(&add, &[]).await);
    assert_eq!(error, "add uid-web: expected 1 network namespace descriptor, got 0");

    let not_a_netns = std::fs::File::open("/dev/null").unwrap();
    let error = rejection(conn.send_raw(&add, &[not_a_netns.as_fd()]).await);
    assert!(error.starts_with("add uid-web: descriptor is not a namespace"), "{error}");

    let keep = proto::WorkloadRequest { payload: Some(Payload::Keep(proto::KeepWorkload { uid: "uid-web".into() })) };
    let error = rejection(conn.send_raw(&keep.encode_to_vec(), &[web.netns().as_fd()]).await);
    assert_eq!(error, "keep uid-web: unexpected descriptors (1), only add carries one");

    let error = rejection(conn.send_raw(&[0xff; 16], &[]).await);
    assert!(error.starts_with("malformed WorkloadRequest"), "{error}");
    let status = client.wait_status("errored", |s| s.last_error.is_some()).await;
    assert!(status.connected, "a bad request does not drop the connection");

    // None of that reached the handler, and the connection still works.
    conn.add(&pod_info(&web), web.netns().as_fd()).await.unwrap();
    assert!(matches!(client.next_event().await, Event::Add { pod, .. } if pod.uid == "uid-web"));
    conn.snapshot_sent().await.unwrap();
    assert!(matches!(client.next_event().await, Event::SnapshotDone(seen) if seen == uids(&["uid-web"])));
}

#[tokio::test]
async fn client_reconnects_after_the_agent_restarts_and_reconciles_the_new_snapshot() {
    let net = TestNet::new();
    let web = net.add_pod("web", Ipv4Addr::new(10, 10, 5, 1));
    let db = net.add_pod("db", Ipv4Addr::new(10, 10, 5, 2));
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    let listener = ZdsListener::bind(&path).unwrap();
    let mut client = Client::start(&path);
    let mut conn = accept(&listener).await;
    conn.add(&pod_info(&web), web.netns().as_fd()).await.unwrap();
    conn.add(&pod_info(&db), db.netns().as_fd()).await.unwrap();
    conn.snapshot_sent().await.unwrap();
    client.wait_status("synced", |s| s.snapshot_received).await;

    // The agent goes away: ztunnel keeps its pods and keeps trying (socket file gone meanwhile).
    drop(conn);
    drop(listener);
    assert!(!path.exists(), "the listener removes its socket file");
    let status = client.wait_status("disconnected", |s| !s.connected).await;
    assert!(!status.snapshot_received);
    client.wait_status("failing to connect", |s| s.last_error.as_deref().is_some_and(|e| e.contains("connect"))).await;
    assert_eq!(client.pods(), uids(&["uid-db", "uid-web"]));

    // The agent is back: a new hello, then a fresh snapshot that no longer has db.
    let listener = ZdsListener::bind(&path).unwrap();
    let mut conn = accept(&listener).await;
    client.wait_status("reconnected", |s| s.connected && !s.snapshot_received).await;
    while let Ok(event) = client.events.try_recv() {
        assert!(matches!(event, Event::Add { .. } | Event::SnapshotDone(_)), "from the first connection: {event:?}");
    }
    conn.keep("uid-web").await.unwrap();
    assert!(matches!(client.next_event().await, Event::Keep(uid) if uid == "uid-web"));
    conn.snapshot_sent().await.unwrap();
    assert!(matches!(client.next_event().await, Event::SnapshotDone(seen) if seen == uids(&["uid-web"])));
    client.wait_status("synced again", |s| s.connected && s.snapshot_received).await;
    assert_eq!(client.pods(), uids(&["uid-web"]));
    assert_eq!(rejection(conn.keep("uid-db").await), "keep uid-db: unknown pod uid-db");
}

#[tokio::test]
async fn accept_checks_the_hello() {
    let dir = tempfile::tempdir().unwrap();
    let listener = ZdsListener::bind(socket_path(&dir)).unwrap();

    let future = proto::ZdsHello { version: 2 }.encode_to_vec();
    let peer = SeqpacketStream::connect(socket_path(&dir)).await.unwrap();
    peer.send(&future, &[]).await.unwrap();
    assert!(matches!(listener.accept().await, Err(ZdsError::UnsupportedVersion { version: 2, .. })));

    let peer = SeqpacketStream::connect(socket_path(&dir)).await.unwrap();
    peer.send(&[0xff; 8], &[]).await.unwrap();
    let error = listener.accept().await.unwrap_err();
    assert!(matches!(error, ZdsError::Protocol { what: "hello", .. }), "{error}");

    let peer = SeqpacketStream::connect(socket_path(&dir)).await.unwrap();
    drop(peer);
    let error = listener.accept().await.unwrap_err();
    assert!(matches!(error, ZdsError::Closed { .. }), "{error}");
    assert!(error.to_string().contains("ztunnel.sock"), "{error}");
}

#[tokio::test]
async fn bind_replaces_a_stale_socket_but_no_other_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    // A socket file left by a dead agent: nothing listens on it any more.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listener = ZdsListener::bind(&path).unwrap();
    let _client = Client::start(&path);
    accept(&listener).await;
    drop(listener);
    assert!(!path.exists());

    std::fs::write(&path, "not a socket").unwrap();
    let error = ZdsListener::bind(&path).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists, "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}
