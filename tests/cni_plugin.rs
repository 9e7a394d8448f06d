//! The ambient CNI plugin under Debian's real CNI plugins: a conflist of `bridge` + `host-local`
//! with `ambient-cni` chained last, invoked as a container runtime does (CNI_* environment, the
//! network configuration on stdin, plugins found in CNI_PATH, each one's result passed on as the
//! next one's `prevResult`), against a stand-in node agent. Needs root.
//!
//! Network safety: every plugin runs with the fixture's cluster namespace as its host namespace
//! (`ip netns exec <cluster>`), so the bridge, the veths and host-local's state (a temp dir) are
//! all inside things this test created and removes.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ambient::cni::protocol::{AgentResponse, PluginRequest};
use serde_json::{Value, json};
use support::netns::{TestNet, TestPod, in_namespace};

/// The bridge plugin's gateway on the pod subnet (in the cluster namespace).
const CNI_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const SUBNET: &str = "10.88.0.0/24";
const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";

/// A node agent stand-in: answers `Enrolled` from a fixed list of enrolled pod names, `Added`
/// and `Deleted` with `Ok` (or, with `refuse_added`, an error), and records every request.
struct StandInAgent {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<PluginRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StandInAgent {
    fn start(socket: &Path, enrolled: &[&str], refuse_added: bool) -> StandInAgent {
        let listener = UnixListener::bind(socket).expect("bind stand-in agent socket");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let enrolled: Vec<String> = enrolled.iter().map(|s| s.to_string()).collect();
        let (recorded, stopping) = (requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let stream = stream.expect("accept plugin connection");
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line).expect("read plugin request");
                let request: PluginRequest = serde_json::from_str(&line).expect("plugin request is protocol JSON");
                let answer = match &request {
                    PluginRequest::Enrolled { name, .. } => {
                        AgentResponse::Enrolled { enrolled: enrolled.contains(name) }
                    }
                    PluginRequest::Added { .. } if refuse_added => {
                        AgentResponse::Error { message: "stand-in agent refuses Added".into() }
                    }
                    PluginRequest::Added { .. } | PluginRequest::Deleted { .. } => AgentResponse::Ok,
                };
                recorded.lock().unwrap().push(request);
                let mut reply = serde_json::to_string(&answer).unwrap();
                reply.push('\n');
                let _ = (&stream).write_all(reply.as_bytes());
            }
        });
        StandInAgent { socket: socket.to_owned(), requests, stop, thread: Some(thread) }
    }

    fn take_requests(&self) -> Vec<PluginRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

impl Drop for StandInAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::os::unix::net::UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one plugin invocation printed.
#[derive(Debug)]
struct Invocation {
    success: bool,
    stdout: Value,
    stderr: String,
}

/// A minimal container runtime for one conflist, with the cluster namespace as its host.
struct Runtime {
    net: TestNet,
    dir: tempfile::TempDir,
    conflist: Value,
}

impl Runtime {
    fn new() -> Runtime {
        assert!(
            Path::new(DEBIAN_CNI_DIR).join("bridge").exists(),
            "\n\n*** tests/cni_plugin: install Debian's containernetworking-plugins ({DEBIAN_CNI_DIR}/bridge) ***\n\n"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        // The binary under test, found by its CNI type in CNI_PATH and run under that name.
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ambient"), dir.path().join("bin/ambient-cni")).unwrap();
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": "ambient-test",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": dir.path().join("ipam"),
                    },
                },
                {
                    "type": "ambient-cni",
                    "agentSocket": dir.path().join("agent.sock"),
                    "agentTimeoutSeconds": 3,
                },
            ],
        });
        Runtime { net: TestNet::new(), dir, conflist }
    }

    fn agent_socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn cni_path(&self) -> String {
        format!("{}:{DEBIAN_CNI_DIR}", self.dir.path().join("bin").display())
    }

    fn find_plugin(&self, plugin_type: &str) -> PathBuf {
        self.cni_path()
            .split(':')
            .map(|dir| Path::new(dir).join(plugin_type))
            .find(|path| path.exists())
            .unwrap_or_else(|| panic!("plugin {plugin_type} not in CNI_PATH {}", self.cni_path()))
    }

    /// Runs one plugin with `stdin` exactly as a runtime does, inside the cluster namespace.
    fn exec(&self, plugin_type: &str, command: &str, pod: &TestPod, netns: &str, stdin: &[u8]) -> Invocation {
        let plugin = self.find_plugin(plugin_type);
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.net.ns_name()])
            .arg(&plugin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", format!("container-{}", pod.name))
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={};K8S_POD_UID=uid-{}",
                    pod.name, pod.name
                ),
            )
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", plugin.display()));
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = if out.stdout.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!("{plugin_type} {command} printed non-JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
            })
        };
        Invocation { success: out.status.success(), stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    }

    /// The runtime's view of one plugin's configuration: its entry plus name, cniVersion and prevResult.
    fn plugin_conf(&self, index: usize, prev_result: Option<&Value>) -> Value {
        let mut conf = self.conflist["plugins"][index].clone();
        conf["name"] = self.conflist["name"].clone();
        conf["cniVersion"] = self.conflist["cniVersion"].clone();
        if let Some(prev) = prev_result {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    /// ADD through the whole chain; the last result, or the first failing plugin's error.
    fn add(&self, pod: &TestPod) -> Result<Value, Invocation> {
        let mut prev: Option<Value> = None;
        for index in 0..self.conflist["plugins"].as_array().unwrap().len() {
            let conf = self.plugin_conf(index, prev.as_ref());
            let plugin_type = conf["type"].as_str().unwrap().to_owned();
            let run = self.exec(&plugin_type, "ADD", pod, &netns_path(pod), conf.to_string().as_bytes());
            if !run.success {
                return Err(run);
            }
            prev = Some(run.stdout);
        }
        Ok(prev.unwrap())
    }

    /// DEL through the chain in reverse order, each with the ADD result as prevResult.
    fn del(&self, pod: &TestPod, result: Option<&Value>) {
        for index in (0..self.conflist["plugins"].as_array().unwrap().len()).rev() {
            let conf = self.plugin_conf(index, result);
            let plugin_type = conf["type"].as_str().unwrap().to_owned();
            let run = self.exec(&plugin_type, "DEL", pod, &netns_path(pod), conf.to_string().as_bytes());
            assert!(run.success, "{plugin_type} DEL failed: {} {}", run.stdout, run.stderr);
        }
    }

    /// CHECK of the ambient plugin alone.
    fn check(&self, pod: &TestPod, result: &Value) -> Invocation {
        let conf = self.plugin_conf(1, Some(result));
        self.exec("ambient-cni", "CHECK", pod, &netns_path(pod), conf.to_string().as_bytes())
    }
}

fn netns_path(pod: &TestPod) -> String {
    format!("/run/netns/{}", pod.ns_name)
}

/// The pod's IPv4 address from a CNI result.
fn result_ip(result: &Value) -> Ipv4Addr {
    let address = result["ips"][0]["address"].as_str().unwrap_or_else(|| panic!("no ips in result {result}"));
    match address.split('/').next().unwrap().parse::<IpAddr>().unwrap() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => panic!("expected IPv4, got {ip}"),
    }
}

/// The `nat` table of the pod (both families) as `iptables-save` prints it, minus comments and counters.
fn nat_rules(pod: &TestPod) -> String {
    let mut text = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let out = pod.exec(&[tool, "-t", "nat"]);
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')) {
            // Counters like `[0:0]` on chain lines vary; keep the chain name and policy.
            text.push_str(line.split(" [").next().unwrap());
            text.push('\n');
        }
    }
    text
}

/// Our rules: any line naming our chains.
fn ambient_rules(pod: &TestPod) -> Vec<String> {
    nat_rules(pod).lines().filter(|l| l.contains("AMBIENT")).map(str::to_owned).collect()
}

/// Waits up to 5 s for a connection on `listener`.
fn accept_within(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match listener.accept() {
            Ok(accepted) => return Some(accepted),
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn nothing_pending(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

fn original_destination(stream: TcpStream) -> SocketAddr {
    stream.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let stream = tokio::net::TcpStream::from_std(stream).unwrap();
        ambient::sys::socket::original_dst(&stream).unwrap()
    })
}

#[test]
fn enrolled_pod_gets_its_address_and_the_redirection_and_del_removes_it() {
    let runtime = Runtime::new();
    let agent = StandInAgent::start(&runtime.agent_socket(), &["cart"], false);
    let mut pod = runtime.net.add_unwired_pod("cart");
    let before = nat_rules(&pod);

    let result = runtime.add(&pod).unwrap_or_else(|run| panic!("ADD failed: {} {}", run.stdout, run.stderr));
    pod.ip = result_ip(&result);
    assert!(result["ips"][0]["address"].as_str().unwrap().starts_with("10.88.0."), "{result}");
    assert_eq!(result["cniVersion"], "1.0.0");
    assert!(result["interfaces"].as_array().is_some_and(|i| !i.is_empty()), "bridge's result passed on: {result}");
    let ours = ambient_rules(&pod);
    assert!(ours.iter().any(|l| l.contains("AMBIENT_OUTPUT") && l.contains("--to-ports 15001")), "{ours:#?}");
    assert!(ours.iter().any(|l| l.contains("AMBIENT_PREROUTING") && l.contains("--to-ports 15006")), "{ours:#?}");
    let requests = agent.take_requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0], PluginRequest::Enrolled { namespace: "shop".into(), name: "cart".into() });
    let PluginRequest::Added { pod: added } = &requests[1] else { panic!("second request: {:?}", requests[1]) };
    assert_eq!(added.ips, vec![IpAddr::V4(pod.ip)]);
    assert_eq!(added.uid.as_deref(), Some("uid-cart"));
    assert_eq!(added.netns, PathBuf::from(netns_path(&pod)));

    // Outbound: anything the pod connects to lands on 15001 inside the pod.
    let outbound = pod.listen(15001);
    let _client = pod.connect(SocketAddr::from((CNI_GATEWAY, 80)));
    let (captured, _) = accept_within(&outbound).expect("pod's outbound connection captured on 15001");
    assert_eq!(original_destination(captured), SocketAddr::from((CNI_GATEWAY, 80)));

    // Inbound: a connection to the pod lands on 15006, except HBONE on 15008.
    let inbound = pod.listen(15006);
    let hbone = pod.listen(15008);
    let pod_addr = pod.addr(8080);
    let _to_app = in_namespace(runtime.net.ns_name(), || TcpStream::connect_timeout(&pod_addr, Duration::from_secs(5)))
        .expect("connect to the pod from the cluster");
    let (_, peer) = accept_within(&inbound).expect("inbound connection captured on 15006");
    assert_eq!(peer.ip(), IpAddr::V4(CNI_GATEWAY));
    let hbone_addr = pod.addr(15008);
    let _to_hbone =
        in_namespace(runtime.net.ns_name(), || TcpStream::connect_timeout(&hbone_addr, Duration::from_secs(5)))
            .expect("connect to the pod's 15008");
    assert!(accept_within(&hbone).is_some(), "15008 reached directly");
    assert!(nothing_pending(&inbound), "15008 must not be redirected to 15006");

    // ADD twice (a runtime retrying our plugin; the bridge itself refuses a second ADD of the
    // same interface): same rules, same result.
    let installed = nat_rules(&pod);
    let conf = runtime.plugin_conf(1, Some(&result)).to_string();
    let again = runtime.exec("ambient-cni", "ADD", &pod, &netns_path(&pod), conf.as_bytes());
    assert!(again.success, "second ADD failed: {} {}", again.stdout, again.stderr);
    assert_eq!(nat_rules(&pod), installed, "second ADD changed the rules");
    assert_eq!(again.stdout, result, "second ADD prints the same result");

    // CHECK passes with the rules, fails naming what is missing without them.
    let check = runtime.check(&pod, &result);
    assert!(check.success, "CHECK: {} {}", check.stdout, check.stderr);

    // DEL: every rule gone, the agent told.
    agent.take_requests();
    runtime.del(&pod, Some(&result));
    assert_eq!(nat_rules(&pod), before, "DEL must leave the pod's nat table as before ADD");
    assert!(
        agent.take_requests().iter().any(|r| matches!(r, PluginRequest::Deleted { pod } if pod.name == "cart")),
        "agent told about DEL"
    );
    let check = runtime.check(&pod, &result);
    assert!(!check.success, "CHECK after DEL must fail for an enrolled pod");
    assert_eq!(check.stdout["code"], 102, "{}", check.stdout);
}

#[test]
fn non_enrolled_pod_is_untouched() {
    let runtime = Runtime::new();
    let agent = StandInAgent::start(&runtime.agent_socket(), &[], false);
    let pod = runtime.net.add_unwired_pod("billing");
    let before = nat_rules(&pod);
    let result = runtime.add(&pod).unwrap_or_else(|run| panic!("ADD failed: {} {}", run.stdout, run.stderr));
    assert!(result["ips"][0]["address"].as_str().unwrap().starts_with("10.88.0."), "{result}");
    assert_eq!(nat_rules(&pod), before, "a non-enrolled pod's nat table is untouched");
    assert_eq!(
        agent.take_requests(),
        vec![PluginRequest::Enrolled { namespace: "shop".into(), name: "billing".into() }]
    );
    runtime.del(&pod, Some(&result));
}

#[test]
fn refused_hand_off_fails_add_and_leaves_no_rules() {
    let runtime = Runtime::new();
    let _agent = StandInAgent::start(&runtime.agent_socket(), &["cart"], true);
    let pod = runtime.net.add_unwired_pod("cart");
    let before = nat_rules(&pod);
    let failed = runtime.add(&pod).expect_err("ADD must fail when the agent refuses the pod");
    assert_eq!(failed.stdout["code"], 101, "{}", failed.stdout);
    assert!(failed.stdout["msg"].as_str().unwrap().contains("refuses Added"), "{}", failed.stdout);
    assert_eq!(nat_rules(&pod), before, "no half-configured pod");
    runtime.del(&pod, None);
}

/// The ambient plugin alone, with the bridge's result faked, for the error cases.
fn ambient_add(runtime: &Runtime, pod: &TestPod, netns: &str, stdin: &[u8]) -> Invocation {
    runtime.exec("ambient-cni", "ADD", pod, netns, stdin)
}

fn fake_chained_conf(runtime: &Runtime, version: &str) -> Value {
    let prev = json!({"cniVersion": version, "ips": [{"address": "10.88.0.9/24"}], "interfaces": []});
    let mut conf = runtime.plugin_conf(1, Some(&prev));
    conf["cniVersion"] = json!(version);
    conf
}

fn assert_cni_error(run: &Invocation, code: u64, says: &str) {
    assert!(!run.success, "expected failure, got {}", run.stdout);
    assert_eq!(run.stdout["code"], code, "{}", run.stdout);
    let text = format!("{} {}", run.stdout["msg"], run.stdout["details"]);
    assert!(text.contains(says), "error should say {says:?}: {}", run.stdout);
    assert!(run.stdout["cniVersion"].is_string(), "{}", run.stdout);
}

#[test]
fn clear_cni_errors_for_garbage_missing_netns_unknown_version_and_dead_agent() {
    let runtime = Runtime::new();
    let pod = runtime.net.add_unwired_pod("web");
    let netns = netns_path(&pod);

    assert_cni_error(&ambient_add(&runtime, &pod, &netns, b"GET / HTTP/1.1\r\n"), 6, "not JSON");

    let conf = fake_chained_conf(&runtime, "1.0.0").to_string();
    assert_cni_error(
        &ambient_add(&runtime, &pod, "/run/netns/amb-no-such-pod", conf.as_bytes()),
        100,
        "/run/netns/amb-no-such-pod",
    );

    let mut unknown = fake_chained_conf(&runtime, "1.0.0");
    unknown["cniVersion"] = json!("2.7.0");
    assert_cni_error(&ambient_add(&runtime, &pod, &netns, unknown.to_string().as_bytes()), 1, "2.7.0");

    // No agent listening at all.
    let dead = ambient_add(&runtime, &pod, &netns, conf.as_bytes());
    assert_cni_error(&dead, 11, &runtime.agent_socket().display().to_string());
    assert!(ambient_rules(&pod).is_empty(), "nothing installed without the agent");
}

#[test]
fn version_lists_supported_versions_as_ambient_cni_and_as_cni_plugin() {
    let runtime = Runtime::new();
    let pod = runtime.net.add_unwired_pod("any");
    let by_name = runtime.exec("ambient-cni", "VERSION", &pod, "", br#"{"cniVersion":"1.0.0"}"#);
    assert!(by_name.success, "{}", by_name.stderr);
    assert_eq!(
        by_name.stdout,
        json!({"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]})
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_ambient"))
        .args(["cni", "plugin"])
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(br#"{"cniVersion":"0.4.0"}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["cniVersion"], "0.4.0");
    assert_eq!(answer["supportedVersions"], by_name.stdout["supportedVersions"]);
}
