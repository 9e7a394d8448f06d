//! `status`, `logs`, `metrics` and `down` rendering on a hand-made state; the HTTP helper against
//! a tiny server on loopback; `exec` in a namespace made here (needs root).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::Command;
use std::thread::JoinHandle;

use super::*;
use crate::local::state::{ContainerState, ServiceState};
use crate::sys::process::ProcessRecord;

fn component(name: &str, kind: ComponentKind, node: Option<&str>, port: u16) -> ComponentState {
    ComponentState {
        name: name.into(),
        kind,
        node: node.map(str::to_string),
        process: Some(ProcessRecord { pid: 4242, start_time: 1 }),
        restarts: 1,
        log: PathBuf::from("/nonexistent"),
        metrics_url: (kind != ComponentKind::Cni).then(|| format!("http://127.0.0.1:{port}/metrics")),
        ready_url: None,
        admin_url: None,
    }
}

fn container(dir: &StateDir, pod: &str, name: &str, restarts: u32) -> ContainerState {
    ContainerState {
        name: name.into(),
        process: None,
        restarts,
        last_exit: None,
        log: dir.container_log("default", pod, name),
    }
}

fn sample(dir: &StateDir) -> MeshState {
    MeshState {
        id: dir.mesh_id(),
        state_dir: dir.root().to_path_buf(),
        phase: Phase::Ready,
        runtime: Some(ProcessRecord { pid: 4141, start_time: 1 }),
        paths: vec![PathBuf::from("examples/demo")],
        nodes: vec!["node-1".into(), "node-2".into()],
        netns_prefix: dir.netns_prefix(),
        cluster_netns: dir.cluster_netns(),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/16".into(),
        components: vec![
            component("controlplane", ComponentKind::Controlplane, None, 15014),
            component("ztunnel/node-1", ComponentKind::Ztunnel, Some("node-1"), 15020),
            component("ztunnel/node-2", ComponentKind::Ztunnel, Some("node-2"), 15021),
            component("cni/node-1", ComponentKind::Cni, Some("node-1"), 0),
        ],
        pods: vec![
            PodState {
                namespace: "default".into(),
                name: "client".into(),
                node: "node-1".into(),
                ip: Some("10.244.0.5".parse().unwrap()),
                netns: Some(dir.pod_netns("default", "client")),
                enrolled: true,
                ready: true,
                phase: "Running".into(),
                message: None,
                containers: vec![container(dir, "client", "main", 0), container(dir, "client", "sidecar", 2)],
            },
            PodState {
                namespace: "default".into(),
                name: "server".into(),
                node: "node-2".into(),
                ip: None,
                netns: None,
                enrolled: false,
                ready: false,
                phase: "Pending".into(),
                message: Some("image command not found: python4".into()),
                containers: vec![container(dir, "server", "http", 0)],
            },
        ],
        services: vec![ServiceState {
            namespace: "default".into(),
            name: "server".into(),
            cluster_ip: "10.96.0.10".parse().unwrap(),
            ports: vec![80, 8080],
            endpoints: vec!["server".into()],
        }],
        problems: vec!["mesh/broken.yaml:3: expected a mapping".into()],
    }
}

fn dir() -> StateDir {
    StateDir::new(Path::new("/tmp/ambient-inspect-test")).unwrap()
}

#[test]
fn status_shows_pods_services_components_and_problems() {
    let dir = dir();
    let state = sample(&dir);
    let observed = Observed {
        runtime_alive: true,
        health: [
            ("controlplane".to_string(), Health::Healthy),
            ("ztunnel/node-1".to_string(), Health::NotReady("connection refused".into())),
            ("ztunnel/node-2".to_string(), Health::Down),
            ("cni/node-1".to_string(), Health::Running),
        ]
        .into(),
    };
    let text = render_status(&state, &observed);
    assert!(
        text.starts_with(&format!(
            "local mesh {} at /tmp/ambient-inspect-test: ready (2 nodes, 2 pods, 1 service)",
            state.id
        )),
        "{text}"
    );
    for header in [
        "POD",
        "NAMESPACE",
        "NODE",
        "IP",
        "ENROLLED",
        "READY",
        "PHASE",
        "RESTARTS",
        "COMPONENT",
        "PID",
        "HEALTH",
        "CLUSTER-IP",
    ] {
        assert!(text.contains(header), "{header} missing:\n{text}");
    }
    let client = text.lines().find(|l| l.contains("client")).expect("client row");
    for cell in ["default", "node-1", "10.244.0.5", "yes", "Running", "2"] {
        assert!(client.contains(cell), "{cell} missing from {client}");
    }
    let server = text.lines().find(|l| l.contains("server") && l.contains("Pending")).expect("server row");
    assert!(server.contains(" no ") && server.contains(" - "), "{server}");
    assert!(text.contains("default/server: image command not found: python4"), "{text}");
    assert!(text.contains("10.96.0.10") && text.contains("80,8080"), "{text}");
    assert!(text.lines().any(|l| l.contains("controlplane") && l.contains("4242") && l.contains("healthy")), "{text}");
    assert!(
        text.lines().any(|l| l.contains("ztunnel/node-1") && l.contains("not ready: connection refused")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.contains("ztunnel/node-2") && l.contains("down")), "{text}");
    assert!(text.contains("1 problem in the input files:\n  mesh/broken.yaml:3: expected a mapping"), "{text}");
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn status_warns_when_the_runtime_is_gone() {
    let dir = dir();
    let mut state = sample(&dir);
    state.phase = Phase::Failed("control plane did not start".into());
    let text = render_status(&state, &Observed::default());
    assert!(text.contains(": failed: control plane did not start ("), "{text}");
    assert!(text.contains("the runtime (pid 4141) is not running"), "{text}");
}

#[test]
fn status_json_is_the_state_with_health() {
    let dir = dir();
    let state = sample(&dir);
    let observed = Observed { runtime_alive: true, health: [("controlplane".to_string(), Health::Healthy)].into() };
    let json = serde_json::to_value(StatusView::new(&state, &observed)).unwrap();
    assert_eq!(json["pods"][0]["name"], "client");
    assert_eq!(json["runtime_alive"], true);
    assert_eq!(json["health"]["controlplane"]["health"], "healthy");
    assert_eq!(json["phase"]["phase"], "ready");
}

fn target<'a>(name: &'a str, container: Option<&'a str>, node: Option<&'a str>) -> LogTarget<'a> {
    LogTarget { name, namespace: "default", container, node }
}

#[test]
fn logs_resolve_pods_containers_components_and_the_runtime() {
    let dir = dir();
    let state = sample(&dir);
    let resolve = |t: LogTarget| resolve_logs(&dir, Some(&state), &t);
    let one = |path: PathBuf| vec![LogSource { header: None, path }];

    assert_eq!(resolve(target("server", None, None)).unwrap(), one(dir.container_log("default", "server", "http")));
    assert_eq!(
        resolve(target("client", None, None)).unwrap(),
        vec![
            LogSource {
                header: Some("==> container main <==".into()),
                path: dir.container_log("default", "client", "main")
            },
            LogSource {
                header: Some("==> container sidecar <==".into()),
                path: dir.container_log("default", "client", "sidecar")
            },
        ]
    );
    assert_eq!(
        resolve(target("client", Some("sidecar"), None)).unwrap(),
        one(dir.container_log("default", "client", "sidecar"))
    );
    let error = resolve(target("client", Some("nope"), None)).unwrap_err().to_string();
    assert!(error.contains("no container nope") && error.contains("main, sidecar"), "{error}");

    assert_eq!(resolve(target("runtime", None, None)).unwrap(), one(dir.runtime_log()));
    assert_eq!(resolve(target("controlplane", None, None)).unwrap(), one(dir.component_log("controlplane")));
    assert_eq!(resolve(target("ztunnel", None, Some("node-2"))).unwrap(), one(dir.component_log("ztunnel/node-2")));
    assert_eq!(resolve(target("cni/node-1", None, None)).unwrap(), one(dir.component_log("cni/node-1")));

    let error = resolve(target("ztunnel", None, None)).unwrap_err().to_string();
    assert!(error.contains("pick one with --node") && error.contains("node-1, node-2"), "{error}");
    let error = resolve(target("ztunnel/node-1", None, Some("node-2"))).unwrap_err().to_string();
    assert!(error.contains("different nodes"), "{error}");
    let error = resolve(target("ztunnel/node-9", None, None)).unwrap_err().to_string();
    assert!(error.contains("no node node-9"), "{error}");
    let error = resolve(target("ghost", None, None)).unwrap_err().to_string();
    assert!(
        error.contains("no pod ghost in namespace default")
            && error.contains("default/client, default/server")
            && error.contains("ztunnel/node-1")
            && error.contains("runtime"),
        "{error}"
    );
}

#[test]
fn logs_without_a_state_file_still_find_components() {
    let dir = dir();
    let resolved = resolve_logs(&dir, None, &target("ztunnel", None, Some("node-1"))).unwrap();
    assert_eq!(resolved, vec![LogSource { header: None, path: dir.component_log("ztunnel/node-1") }]);
    let error = resolve_logs(&dir, None, &target("client", None, None)).unwrap_err().to_string();
    assert!(error.contains("pods: none"), "{error}");
}

#[test]
fn metrics_urls_by_component() {
    let state = sample(&dir());
    assert_eq!(metrics_url(&state, "controlplane").unwrap(), "http://127.0.0.1:15014/metrics");
    assert_eq!(metrics_url(&state, "ztunnel/node-2").unwrap(), "http://127.0.0.1:15021/metrics");
    let error = metrics_url(&state, "cni/node-1").unwrap_err().to_string();
    assert!(error.contains("CNI agent serves no metrics") && error.contains("controlplane, ztunnel/node-1"), "{error}");
    let error = metrics_url(&state, "prometheus").unwrap_err().to_string();
    assert!(error.contains("no component prometheus") && error.contains("ztunnel/node-2"), "{error}");
    let error = metrics_url(&state, "ztunnel").unwrap_err().to_string();
    assert!(error.contains("node-1, node-2"), "{error}");

    let mut one_node = state.clone();
    one_node.nodes.truncate(1);
    assert_eq!(metrics_url(&one_node, "ztunnel").unwrap(), "http://127.0.0.1:15020/metrics");
}

#[test]
fn down_says_what_it_removed() {
    let dir = dir();
    assert_eq!(render_down(&dir, &TeardownReport::default()), "no local mesh at /tmp/ambient-inspect-test");
    let report = TeardownReport {
        found: true,
        runtime_stopped: true,
        processes: 1,
        namespaces: vec!["a".into(), "b".into()],
        state_dir_removed: true,
        warnings: vec![],
    };
    assert_eq!(
        render_down(&dir, &report),
        "stopped the runtime; removed 2 network namespaces, 1 process, state dir /tmp/ambient-inspect-test"
    );
}

#[test]
fn down_on_nothing_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let args = StateDirArgs { state_dir: tmp.path().join("nothing") };
    assert_eq!(down(args).unwrap(), ExitCode::SUCCESS);
}

/// Answers each of `replies` to one connection on loopback, in order.
fn serve(replies: Vec<&'static str>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        for reply in replies {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    (format!("http://{addr}"), handle)
}

#[test]
fn http_get_reads_status_and_body() {
    let (base, server) = serve(vec![
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n# TYPE up gauge\nup 1\n",
        "HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready",
    ]);
    let (code, body) = http_get(&format!("{base}/metrics"), Duration::from_secs(5)).unwrap();
    assert_eq!((code, body.as_slice()), (200, b"# TYPE up gauge\nup 1\n".as_slice()));
    let (code, body) = http_get(&format!("{base}/healthz/ready"), Duration::from_secs(5)).unwrap();
    assert_eq!((code, body.as_slice()), (503, b"not ready".as_slice()));
    server.join().unwrap();
}

#[test]
fn http_get_gives_up_on_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz/ready", listener.local_addr().unwrap());
    let started = std::time::Instant::now();
    let error = http_get(&url, Duration::from_millis(300)).unwrap_err().to_string();
    assert!(error.contains("no answer within"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(listener);
}

#[test]
fn health_asks_the_ready_url_of_a_live_process() {
    let (base, server) = serve(vec!["HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.0 500 Oops\r\n\r\n"]);
    let mut live = component("controlplane", ComponentKind::Controlplane, None, 1);
    live.process = Some(ProcessRecord::of(std::process::id()).unwrap());
    live.ready_url = Some(format!("{base}/ready"));
    assert_eq!(component_health(&live), Health::Healthy);
    assert!(matches!(component_health(&live), Health::NotReady(why) if why.contains("HTTP 500")));
    server.join().unwrap();

    live.ready_url = None;
    assert_eq!(component_health(&live), Health::Running);
    live.process = None;
    assert_eq!(component_health(&live), Health::Down);
}

#[test]
fn exit_codes_pass_through() {
    let status = |script: &str| Command::new("sh").args(["-c", script]).status().unwrap();
    assert_eq!(exit_code(status("exit 7")), ExitCode::from(7));
    assert_eq!(exit_code(status("kill -TERM $$")), ExitCode::from(128 + 15));
}

/// A pod namespace made here with `ip netns add`, deleted on drop.
struct PodNetns(String);

impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

#[test]
fn exec_runs_in_the_pods_namespace_with_its_hosts_and_passes_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(tmp.path()).unwrap();
    let mut state = sample(&dir);
    let netns = dir.pod_netns("default", "client");
    let status = Command::new("ip").args(["netns", "add", &netns]).status().unwrap();
    assert!(status.success(), "ip netns add {netns}");
    let _guard = PodNetns(netns.clone());
    state.pods[0].netns = Some(netns.clone());
    dir.save(&state).unwrap();
    let hosts = dir.hosts_file("default", "client");
    std::fs::create_dir_all(hosts.parent().unwrap()).unwrap();
    std::fs::write(&hosts, "10.96.0.10 server server.default server.default.svc.cluster.local\n").unwrap();

    let args = |pod: &str, script: &str| LocalExecArgs {
        pod: pod.into(),
        namespace: "default".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        state: StateDirArgs { state_dir: tmp.path().to_path_buf() },
    };
    // Only `lo` in a fresh namespace, and the pod's hosts file on /etc/hosts.
    let script = "test \"$(ip -o link | wc -l)\" = 1 && grep -q server.default.svc /etc/hosts && exit 7";
    assert_eq!(exec(args("client", script)).unwrap(), ExitCode::from(7));

    let error = exec(args("server", "true")).unwrap_err().to_string();
    assert!(error.contains("pod default/server has no network namespace yet (phase Pending: image"), "{error}");
    let error = exec(args("ghost", "true")).unwrap_err().to_string();
    assert!(error.contains("no pod ghost in namespace default (pods: default/client, default/server)"), "{error}");
}
