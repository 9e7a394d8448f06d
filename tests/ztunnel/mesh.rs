//! A small mesh for ztunnel tests: pods in network namespaces (the shared netns fixture), a
//! control plane on a files config, one in-process ztunnel per node, and a stand-in CNI agent
//! per node that hands the node's enrolled pods to its ztunnel over ZDS.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ambient::sys::netns::NetnsExecutor;
use ambient::sys::socket::{tcp_connect_in, tcp_listener_in};
use ambient::xds::client::TokenSource;
use ambient::zds::PodInfo;
use ambient::zds::server::ZdsListener;
use ambient::ztunnel::admin::AdminConfig;
use ambient::ztunnel::config::ZtunnelConfig;
use ambient::ztunnel::run::{Ztunnel, start};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::cp::Fixture as ControlplaneFixture;
use crate::support::netns::{TestNet, TestPod};

pub const WAIT: Duration = Duration::from_secs(15);
/// Port the test applications listen on inside their pods.
pub const APP_PORT: u16 = 8080;
pub const SERVICE_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// A pod of the test mesh.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub name: &'static str,
    pub namespace: &'static str,
    pub service_account: &'static str,
    pub node: &'static str,
    pub ip: Ipv4Addr,
    pub app: &'static str,
}

/// The default topology: a client and a server in the meshed `shop` namespace on two nodes, a
/// second server on the client's node, and an `outsider` pod in the un-meshed `ext` namespace.
pub fn default_pods() -> Vec<PodSpec> {
    vec![
        PodSpec {
            name: "client",
            namespace: "shop",
            service_account: "client",
            node: "node-a",
            ip: Ipv4Addr::new(10, 10, 1, 1),
            app: "client",
        },
        PodSpec {
            name: "server",
            namespace: "shop",
            service_account: "server",
            node: "node-b",
            ip: Ipv4Addr::new(10, 10, 2, 1),
            app: "server",
        },
        PodSpec {
            name: "local-server",
            namespace: "shop",
            service_account: "server",
            node: "node-a",
            ip: Ipv4Addr::new(10, 10, 1, 2),
            app: "local",
        },
        PodSpec {
            name: "outsider",
            namespace: "ext",
            service_account: "default",
            node: "node-b",
            ip: Ipv4Addr::new(10, 10, 2, 9),
            app: "outsider",
        },
    ]
}

pub const TOKENS: &str = "\
ztunnel-a istio-system/ztunnel node=node-a
ztunnel-b istio-system/ztunnel node=node-b
server-token shop/server
ztunnel-c istio-system/ztunnel node=node-c
";

fn mesh_yaml(pods: &[PodSpec]) -> String {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: ext}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: server, namespace: shop}\n\
         spec: {clusterIP: 10.96.0.10, selector: {app: server}, ports: [{port: 80, targetPort: 8080}]}\n",
    );
    for pod in pods {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: {}, labels: {{app: {}}}}}\n\
             spec: {{serviceAccountName: {}, nodeName: {}, containers: [{{name: app, image: app}}]}}\n\
             status: {{podIP: {}}}\n",
            pod.name, pod.namespace, pod.app, pod.service_account, pod.node, pod.ip
        ));
    }
    yaml
}

/// Commands to a node's stand-in CNI agent.
enum AgentCommand {
    Del(String),
    /// Go away for this long, then listen again (an agent restart).
    Restart(Duration),
}

pub struct Mesh {
    controlplane: Option<ControlplaneFixture>,
    /// Where the control plane listens (kept across a restart).
    xds_address: SocketAddr,
    /// The control plane's folder, kept after it is stopped.
    stopped: Option<TempDir>,
    pub net: TestNet,
    pub pods: BTreeMap<&'static str, (PodSpec, TestPod)>,
    pub ztunnels: BTreeMap<&'static str, Ztunnel>,
    pub exec: NetnsExecutor,
    agents: BTreeMap<&'static str, mpsc::UnboundedSender<AgentCommand>>,
    _sockets: TempDir,
}

impl Mesh {
    /// Starts the default topology with `extra` config files (policies) from the beginning.
    pub async fn start(extra: &[(&str, &str)]) -> Mesh {
        Self::start_with(default_pods(), extra, |_| {}).await
    }

    pub async fn start_with(pods: Vec<PodSpec>, extra: &[(&str, &str)], tune: impl Fn(&mut ZtunnelConfig)) -> Mesh {
        let yaml = mesh_yaml(&pods);
        let mut files: Vec<(&str, &str)> = vec![("mesh.yaml", &yaml)];
        files.extend_from_slice(extra);
        let controlplane = ControlplaneFixture::start_with_tokens(&files, TOKENS).await;
        let net = TestNet::new();
        let exec = NetnsExecutor::start("test-netns").unwrap();
        let mut test_pods = BTreeMap::new();
        for spec in &pods {
            let pod = net.add_pod(spec.name, spec.ip);
            if spec.namespace == "shop" {
                pod.redirect();
            }
            test_pods.insert(spec.name, (spec.clone(), pod));
        }
        let sockets = tempfile::tempdir().unwrap();
        let mut ztunnels = BTreeMap::new();
        let mut agents = BTreeMap::new();
        for (node, token) in [("node-a", "ztunnel-a"), ("node-b", "ztunnel-b")] {
            let socket = sockets.path().join(format!("{node}.sock"));
            let mut config = ZtunnelConfig::new(
                node,
                format!("https://127.0.0.1:{}", controlplane.controlplane.xds_address.port()),
                controlplane.controlplane.root_cert_pem.as_bytes().to_vec(),
            );
            config.server_name = Some("localhost".to_string());
            config.token = Some(TokenSource::Value(token.to_string()));
            config.zds_socket = socket.clone();
            config.worker_threads = 2;
            config.admin = AdminConfig {
                admin: "127.0.0.1:0".parse().unwrap(),
                metrics: "127.0.0.1:0".parse().unwrap(),
                readiness: "127.0.0.1:0".parse().unwrap(),
            };
            tune(&mut config);
            let node_pods: Vec<(PodInfo, ambient::sys::netns::Netns)> = test_pods
                .values()
                .filter(|(spec, _): &&(PodSpec, TestPod)| spec.node == node && spec.namespace == "shop")
                .map(|(spec, pod)| (pod_info(spec), pod.netns()))
                .collect();
            agents.insert(node, spawn_agent(&socket, node_pods));
            let ztunnel = start(config).expect("ztunnel starts");
            ztunnels.insert(node, ztunnel);
        }
        let xds_address = controlplane.controlplane.xds_address;
        let mesh = Mesh {
            controlplane: Some(controlplane),
            xds_address,
            stopped: None,
            net,
            pods: test_pods,
            ztunnels,
            exec,
            agents,
            _sockets: sockets,
        };
        for (node, ztunnel) in &mesh.ztunnels {
            let mut ready = ztunnel.ready();
            tokio::time::timeout(WAIT, ready.wait_for(|r| *r))
                .await
                .unwrap_or_else(|_| panic!("{node} ready"))
                .unwrap();
            let expected = mesh.pods.values().filter(|(s, _)| s.node == *node && s.namespace == "shop").count();
            let mut count = ztunnel.pods.count();
            tokio::time::timeout(WAIT, count.wait_for(|c| *c == expected))
                .await
                .unwrap_or_else(|_| panic!("{node} serves its {expected} pods"))
                .unwrap();
        }
        mesh
    }

    pub fn controlplane(&self) -> &ControlplaneFixture {
        self.controlplane.as_ref().expect("the control plane is running")
    }

    /// Stops the control plane (xDS and CA): an outage.
    pub async fn stop_controlplane(&mut self) {
        let ControlplaneFixture { dir, controlplane } = self.controlplane.take().expect("running");
        controlplane.shutdown().await;
        self.stopped = Some(dir);
    }

    pub fn ztunnel(&self, node: &str) -> &Ztunnel {
        &self.ztunnels[node]
    }

    pub fn pod(&self, name: &str) -> &TestPod {
        &self.pods[name].1
    }

    pub fn spec(&self, name: &str) -> &PodSpec {
        &self.pods[name].0
    }

    /// Runs an echo server on `port` inside `pod`; returns when it listens.
    pub async fn serve_echo(&self, pod: &str, port: u16) {
        let listener =
            tcp_listener_in(&self.exec, &self.pod(pod).netns(), SocketAddr::from(([0, 0, 0, 0], port)), false)
                .await
                .expect("echo server listens in the pod");
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                    let _ = writer.shutdown().await;
                });
            }
        });
    }

    /// A TCP connection from inside `pod` (captured by its redirect rules when enrolled).
    pub async fn connect(&self, pod: &str, dst: SocketAddr) -> std::io::Result<TcpStream> {
        tokio::time::timeout(WAIT, tcp_connect_in(&self.exec, Some(&self.pod(pod).netns()), dst, None))
            .await
            .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))
    }

    /// Connects from `pod` to `dst`, sends `message`, half-closes, and returns what came back.
    pub async fn exchange(&self, pod: &str, dst: SocketAddr, message: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut stream = self.connect(pod, dst).await?;
        stream.write_all(message).await?;
        stream.shutdown().await?;
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))??;
        Ok(answer)
    }

    /// Writes (or replaces) a config file of the control plane and waits for both ztunnels to
    /// have the policy named `ns/name` (or to lose it when `present` is false).
    pub async fn set_policy(&self, file: &str, yaml: &str, policy: &str, present: bool) {
        self.controlplane().write(file, yaml);
        self.wait_policy(policy, present).await;
    }

    pub async fn wait_policy(&self, policy: &str, present: bool) {
        for (node, ztunnel) in &self.ztunnels {
            let deadline = tokio::time::Instant::now() + WAIT;
            while ztunnel.proxy.state.policy(policy).is_some() != present {
                assert!(tokio::time::Instant::now() < deadline, "{node}: policy {policy} present={present} in time");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Tells `pod`'s node agent that the pod is gone.
    pub fn delete_pod(&self, pod: &str) {
        let spec = self.spec(pod);
        self.agents[spec.node].send(AgentCommand::Del(pod_info(spec).uid)).unwrap();
    }

    /// Restarts `node`'s agent: it is gone for `down_for`, then serves a fresh snapshot.
    pub fn restart_agent(&self, node: &str, down_for: Duration) {
        self.agents[node].send(AgentCommand::Restart(down_for)).unwrap();
    }

    /// Restarts the stopped control plane on its old address, with its old files and root.
    pub async fn restart_controlplane(&mut self) {
        let dir = self.stopped.take().expect("the control plane was stopped");
        let address = self.xds_address;
        let controlplane = ControlplaneFixture::start_in(dir.path(), address).await;
        self.controlplane = Some(ControlplaneFixture { dir, controlplane });
    }

    /// Prometheus text of `node`'s ztunnel.
    pub async fn metrics(&self, node: &str) -> String {
        let (status, body) = crate::cp::get(self.ztunnel(node).metrics_address(), "/metrics").await;
        assert_eq!(status, 200, "metrics endpoint answers");
        body
    }
}

pub fn pod_info(spec: &PodSpec) -> PodInfo {
    PodInfo {
        uid: format!("uid-{}-{}", spec.namespace, spec.name),
        name: spec.name.to_string(),
        namespace: spec.namespace.to_string(),
        service_account: spec.service_account.to_string(),
    }
}

/// A stand-in CNI node agent: on each ztunnel connection, the snapshot of `pods`, then deletions
/// as commanded; a restart drops the connection and the socket for a while, then listens again.
fn spawn_agent(
    socket: &std::path::Path,
    pods: Vec<(PodInfo, ambient::sys::netns::Netns)>,
) -> mpsc::UnboundedSender<AgentCommand> {
    let socket = socket.to_path_buf();
    // Bound before ztunnel starts, so its first connect finds the socket.
    let mut listener = Some(ZdsListener::bind(&socket).expect("agent socket binds"));
    let (sender, mut commands) = mpsc::unbounded_channel();
    let mut pods = pods;
    tokio::spawn(async move {
        loop {
            let bound = match listener.take() {
                Some(bound) => bound,
                None => ZdsListener::bind(&socket).expect("agent socket binds again"),
            };
            let Ok(mut connection) = bound.accept().await else {
                listener = Some(bound);
                continue;
            };
            for (info, netns) in &pods {
                connection.add(info, netns.as_fd()).await.expect("ztunnel acks the pod");
            }
            connection.snapshot_sent().await.expect("ztunnel acks the snapshot");
            loop {
                match commands.recv().await {
                    Some(AgentCommand::Del(uid)) => {
                        pods.retain(|(info, _)| info.uid != uid);
                        connection.del(&uid).await.expect("ztunnel acks the deletion");
                    }
                    Some(AgentCommand::Restart(down_for)) => {
                        drop(connection);
                        drop(bound);
                        tokio::time::sleep(down_for).await;
                        break;
                    }
                    None => return,
                }
            }
        }
    });
    sender
}

/// Value of the sample of `metric` whose labels include every `labels` pair; 0 when absent.
pub fn sample(metrics: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(metric) && line[metric.len()..].starts_with('{'))
        .filter(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
