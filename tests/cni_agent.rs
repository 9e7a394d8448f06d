//! The CNI node agent end to end: a files config, pods in network namespaces (the netns
//! fixture), a ztunnel-side ZDS client recording what it is told, and the plugin protocol on the
//! agent's socket. Needs root. Pod IPs are unique to this file (10.10.20x.x): the agent finds
//! running pods by IP among all namespaces of the machine.

mod support;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ambient::cni::agent::{self, Agent, AgentConfig};
use ambient::cni::iptables;
use ambient::cni::protocol::{AgentResponse, PluginPod, PluginRequest};
use ambient::config::SourceConfig;
use ambient::config::files::FilesConfig;
use ambient::sys::netns::Netns;
use ambient::zds::{PodHandler, PodInfo, ZdsClientConfig, ZdsStatus, run_client};
use futures::future::BoxFuture;
use support::netns::{TestNet, TestPod, in_namespace};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(15);
const NODE: &str = "node-1";

#[derive(Debug, PartialEq)]
enum Event {
    Add { uid: String, name: String, service_account: String, netns: u64 },
    Del(String),
    SnapshotDone(Vec<String>),
}

/// A ztunnel stand-in: reports every ZDS request it gets.
struct Recorder {
    events: mpsc::UnboundedSender<Event>,
}

impl PodHandler for Recorder {
    fn add(&self, pod: PodInfo, netns: Netns) -> BoxFuture<'_, Result<(), String>> {
        let _ = self.events.send(Event::Add {
            uid: pod.uid,
            name: pod.name,
            service_account: pod.service_account,
            netns: netns.inode(),
        });
        Box::pin(async { Ok(()) })
    }
    fn keep(&self, _uid: &str) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("the agent sends add, never keep".to_owned()) })
    }
    fn del(&self, uid: &str) -> BoxFuture<'_, ()> {
        let _ = self.events.send(Event::Del(uid.to_owned()));
        Box::pin(async {})
    }
    fn snapshot_done(&self, seen: &HashSet<String>) -> BoxFuture<'_, ()> {
        let mut seen: Vec<_> = seen.iter().cloned().collect();
        seen.sort();
        let _ = self.events.send(Event::SnapshotDone(seen));
        Box::pin(async {})
    }
}

struct Ztunnel {
    task: tokio::task::JoinHandle<()>,
    events: mpsc::UnboundedReceiver<Event>,
    _status: watch::Receiver<ZdsStatus>,
}

impl Drop for Ztunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Ztunnel {
    fn start(socket: &Path) -> Ztunnel {
        let (tx, events) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(ZdsStatus::default());
        let config = ZdsClientConfig {
            socket: socket.to_owned(),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
        };
        let task = tokio::spawn(run_client(config, Arc::new(Recorder { events: tx }), status_tx));
        Ztunnel { task, events, _status: status }
    }

    async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.recv()).await.expect("a ZDS request in time").expect("client alive")
    }
}

/// A files config folder, the sockets, and the agent.
struct Node {
    dir: TempDir,
}

impl Node {
    fn new() -> Node {
        let node = Node { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir(node.config_dir()).unwrap();
        node
    }
    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }
    fn zds_socket(&self) -> PathBuf {
        self.dir.path().join("zds.sock")
    }
    fn plugin_socket(&self) -> PathBuf {
        self.dir.path().join("run/plugin.sock")
    }
    fn write(&self, file: &str, yaml: &str) {
        // Through a rename, so the watcher never reads half a file.
        let temp = self.dir.path().join(format!("{file}.tmp"));
        std::fs::write(&temp, yaml).unwrap();
        std::fs::rename(temp, self.config_dir().join(file)).unwrap();
    }
    fn agent_config(&self) -> AgentConfig {
        let mut config = AgentConfig::new(SourceConfig::Files(FilesConfig::new(vec![self.config_dir()])), NODE);
        config.zds_socket = self.zds_socket();
        config.plugin_socket = self.plugin_socket();
        config.retry_interval = Duration::from_millis(500);
        config.enrolled_wait = Duration::from_millis(500);
        config
    }

    async fn start_agent(&self) -> Agent {
        agent::start(self.agent_config()).await.expect("agent starts")
    }
    async fn ask(&self, request: &PluginRequest) -> AgentResponse {
        let stream = tokio::net::UnixStream::connect(self.plugin_socket()).await.expect("connect to the agent");
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(request).unwrap();
        line.push('\n');
        write.write_all(line.as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(read).read_line(&mut answer).await.unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("response {answer:?}: {e}"))
    }
}

/// The `shop/web` pod as the plugin reports it during ADD.
fn plugin_pod(web: &TestPod) -> PluginPod {
    PluginPod {
        namespace: "shop".into(),
        name: "web".into(),
        uid: Some("uid-web".into()),
        container_id: "c0ffee".into(),
        netns: PathBuf::from("/run/netns").join(&web.ns_name),
        ips: vec![web.ip.into()],
    }
}

fn namespace_yaml(name: &str, ambient: bool) -> String {
    let labels = if ambient { "{istio.io/dataplane-mode: ambient}" } else { "{}" };
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {labels}}}\n")
}

fn pod_yaml(name: &str, namespace: &str, ip: Ipv4Addr, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, uid: uid-{name}}}\n\
         spec: {{serviceAccountName: sa-{name}, nodeName: {node}, containers: [{{name: app, image: app}}]}}\n\
         status: {{podIP: {ip}}}\n"
    )
}

fn rules_installed(pod: &TestPod) -> bool {
    iptables::installed(&pod.netns()).expect("inspect the pod's rules")
}

fn add_of(pod: &TestPod) -> Event {
    Event::Add {
        uid: format!("uid-{}", pod.name),
        name: pod.name.clone(),
        service_account: format!("sa-{}", pod.name),
        netns: pod.netns().inode(),
    }
}

#[tokio::test]
async fn pod_enrolled_after_start_reaches_ztunnel_and_one_unenrolled_later_loses_its_rules() {
    let net = TestNet::new();
    let web = net.add_pod("web", Ipv4Addr::new(10, 10, 201, 1));
    let node = Node::new();
    node.write("ns.yaml", &namespace_yaml("shop", false));
    node.write("pods.yaml", &pod_yaml("web", "shop", web.ip, NODE));
    let agent = node.start_agent().await;
    let mut ztunnel = Ztunnel::start(&node.zds_socket());
    assert_eq!(ztunnel.next().await, Event::SnapshotDone(vec![]));
    assert!(!rules_installed(&web), "not enrolled yet: untouched");

    node.write("ns.yaml", &namespace_yaml("shop", true));
    assert_eq!(ztunnel.next().await, add_of(&web));
    assert!(rules_installed(&web));
    iptables::check(&web.netns(), &Default::default()).expect("the redirection as configured");
    assert_eq!(agent.active_pods().len(), 1);

    node.write("ns.yaml", &namespace_yaml("shop", false));
    assert_eq!(ztunnel.next().await, Event::Del("uid-web".into()));
    assert!(!rules_installed(&web), "un-enrolled: rules removed");
    assert!(agent.active_pods().is_empty());
    agent.shutdown().await.unwrap();
}

#[tokio::test]
async fn restarted_agent_finds_running_pods_and_a_reconnecting_ztunnel_gets_the_full_snapshot() {
    let net = TestNet::new();
    let a = net.add_pod("a", Ipv4Addr::new(10, 10, 202, 1));
    let b = net.add_pod("b", Ipv4Addr::new(10, 10, 202, 2));
    let elsewhere = net.add_pod("elsewhere", Ipv4Addr::new(10, 10, 202, 3));
    let node = Node::new();
    node.write("ns.yaml", &namespace_yaml("shop", true));
    node.write(
        "pods.yaml",
        &[
            pod_yaml("a", "shop", a.ip, NODE),
            pod_yaml("b", "shop", b.ip, NODE),
            pod_yaml("elsewhere", "shop", elsewhere.ip, "node-2"),
        ]
        .join("---\n"),
    );
    let mut ztunnel = Ztunnel::start(&node.zds_socket());
    let agent = node.start_agent().await;
    // The first snapshot may be taken before discovery finished: collect until both are in.
    let mut added = Vec::new();
    while added.len() < 2 {
        match ztunnel.next().await {
            event @ Event::Add { .. } => added.push(event),
            Event::SnapshotDone(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(added.contains(&add_of(&a)) && added.contains(&add_of(&b)), "{added:?}");
    assert!(rules_installed(&a) && rules_installed(&b));
    assert!(!rules_installed(&elsewhere), "a pod of another node is untouched");

    // Agent restart: the pods keep their rules and are found again, by IP.
    drop(agent);
    let agent = node.start_agent().await;
    let mut snapshot = Vec::new();
    loop {
        match ztunnel.next().await {
            Event::SnapshotDone(uids) if snapshot.len() == 2 => {
                assert_eq!(uids, ["uid-a", "uid-b"]);
                break;
            }
            Event::SnapshotDone(_) => {}
            event @ Event::Add { .. } => snapshot.push(event),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(snapshot.contains(&add_of(&a)) && snapshot.contains(&add_of(&b)), "{snapshot:?}");

    // ztunnel restart: the full snapshot again, adds before SnapshotSent.
    drop(ztunnel);
    let mut ztunnel = Ztunnel::start(&node.zds_socket());
    let first = [ztunnel.next().await, ztunnel.next().await];
    assert!(first.contains(&add_of(&a)) && first.contains(&add_of(&b)), "{first:?}");
    assert_eq!(ztunnel.next().await, Event::SnapshotDone(vec!["uid-a".into(), "uid-b".into()]));

    // A pod that is gone from the store is deleted from ztunnel.
    node.write("pods.yaml", &pod_yaml("a", "shop", a.ip, NODE));
    assert_eq!(ztunnel.next().await, Event::Del("uid-b".into()));
    agent.shutdown().await.unwrap();
    for pod in [&a, &b] {
        iptables::remove(&pod.netns()).unwrap();
    }
}

#[tokio::test]
async fn plugin_requests_are_answered_per_protocol() {
    let net = TestNet::new();
    let web = net.add_pod("web", Ipv4Addr::new(10, 10, 203, 1));
    let node = Node::new();
    node.write("ns.yaml", &[namespace_yaml("shop", true), namespace_yaml("ext", false)].join("---\n"));
    // No IP in the store yet, as during ADD: the plugin's Added is what brings the pod in.
    node.write(
        "pods.yaml",
        &format!(
            "{}---\n{}",
            pod_yaml("web", "shop", web.ip, NODE).replace(&format!("status: {{podIP: {}}}\n", web.ip), ""),
            pod_yaml("out", "ext", Ipv4Addr::new(10, 10, 203, 2), NODE)
        ),
    );
    let agent = node.start_agent().await;
    let mut ztunnel = Ztunnel::start(&node.zds_socket());
    assert_eq!(ztunnel.next().await, Event::SnapshotDone(vec![]));

    let enrolled =
        |namespace: &str, name: &str| PluginRequest::Enrolled { namespace: namespace.into(), name: name.into() };
    assert_eq!(node.ask(&enrolled("shop", "web")).await, AgentResponse::Enrolled { enrolled: true });
    assert_eq!(node.ask(&enrolled("ext", "out")).await, AgentResponse::Enrolled { enrolled: false });
    match node.ask(&enrolled("shop", "nobody")).await {
        AgentResponse::Error { message } => {
            assert!(message.contains("shop/nobody is not in the agent's config store"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }

    let pod = plugin_pod(&web);
    // The plugin installs the rules before Added.
    iptables::install(&web.netns(), &Default::default()).unwrap();
    assert_eq!(node.ask(&PluginRequest::Added { pod: pod.clone() }).await, AgentResponse::Ok);
    assert_eq!(ztunnel.next().await, add_of(&web));
    let missing = PluginPod { netns: "/run/netns/amb-no-such-namespace".into(), ..pod.clone() };
    match node.ask(&PluginRequest::Added { pod: missing }).await {
        AgentResponse::Error { message } => assert!(message.contains("amb-no-such-namespace"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }

    assert_eq!(node.ask(&PluginRequest::Deleted { pod }).await, AgentResponse::Ok);
    assert_eq!(ztunnel.next().await, Event::Del("uid-web".into()));
    assert!(agent.active_pods().is_empty());

    let stream = tokio::net::UnixStream::connect(node.plugin_socket()).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(b"not json\n").await.unwrap();
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await.unwrap();
    assert!(answer.contains("\"response\":\"error\"") && answer.contains("malformed request"), "{answer}");

    agent.shutdown().await.unwrap();
    iptables::remove(&web.netns()).unwrap();
    assert!(!node.plugin_socket().exists() && !node.zds_socket().exists(), "sockets removed");
}

/// Added is answered only once ztunnel has taken the pod: with no ztunnel on the node it fails
/// (the plugin then fails ADD and takes its rules out), and the pod is not left in the mesh.
#[tokio::test]
async fn added_fails_while_no_ztunnel_takes_the_pod() {
    let net = TestNet::new();
    let web = net.add_pod("web", Ipv4Addr::new(10, 10, 204, 1));
    let node = Node::new();
    node.write("ns.yaml", &namespace_yaml("shop", true));
    node.write(
        "pods.yaml",
        &pod_yaml("web", "shop", web.ip, NODE).replace(&format!("status: {{podIP: {}}}\n", web.ip), ""),
    );
    let agent = node.start_agent().await;
    let pod = plugin_pod(&web);
    match node.ask(&PluginRequest::Added { pod }).await {
        AgentResponse::Error { message } => {
            assert!(message.contains("ztunnel on this node has not taken pod shop/web"), "{message}")
        }
        other => panic!("Added must fail without a ztunnel, got {other:?}"),
    }
    assert!(agent.active_pods().is_empty(), "the pod is not left in the mesh");
    agent.shutdown().await.unwrap();
}

/// Health probes from the node reach an enrolled pod's application directly: the agent makes
/// node-originated TCP to its pods come from 169.254.7.127 (here the fixture's cluster namespace
/// plays the node), and the pod's rules let that source past the capture.
#[tokio::test]
async fn node_probes_reach_an_enrolled_pods_application_past_the_capture() {
    let net = TestNet::new();
    let web = net.add_pod("web", Ipv4Addr::new(10, 10, 205, 1));
    let node = Node::new();
    node.write("ns.yaml", &namespace_yaml("shop", true));
    node.write("pods.yaml", &pod_yaml("web", "shop", web.ip, NODE));
    let mut ztunnel = Ztunnel::start(&node.zds_socket());
    let mut config = node.agent_config();
    config.probe_snat = Some(net.netns());
    let agent = agent::start(config).await.expect("agent starts");
    loop {
        match ztunnel.next().await {
            event @ Event::Add { .. } => {
                assert_eq!(event, add_of(&web));
                break;
            }
            Event::SnapshotDone(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(rules_installed(&web));
    let app = web.listen(8080);
    let _capture = web.listen(15006);
    let probe_rule = format!(
        "-A AMBIENT_POSTROUTING -d {}/32 -p tcp -m owner --socket-exists -j SNAT --to-source 169.254.7.127",
        web.ip
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let saved = String::from_utf8_lossy(&net.exec(&["iptables-save", "-t", "nat"]).stdout).into_owned();
        if saved.lines().any(|line| line == probe_rule) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the node's probe rule appears: {saved}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let target = std::net::SocketAddr::from((web.ip, 8080));
    let _probe = in_namespace(net.ns_name(), || std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5)))
        .expect("the probe connects");
    let (_, peer) = app.accept().expect("the application accepts the probe itself");
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::from(Ipv4Addr::new(169, 254, 7, 127)),
        "the probe comes from the probe source"
    );

    agent.shutdown().await.unwrap();
    iptables::remove(&web.netns()).unwrap();
    iptables::remove_probe_snat(&net.netns()).unwrap();
    let saved = String::from_utf8_lossy(&net.exec(&["iptables-save", "-t", "nat"]).stdout).into_owned();
    assert!(!saved.contains("AMBIENT_POSTROUTING"), "removed: {saved}");
}
