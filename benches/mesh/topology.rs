//! The benchmark's topology, made with `ambient local` exactly as a user makes one: two nodes,
//! the namespace `mesh` (enrolled) and the namespace `direct` (not enrolled), each with a
//! `client` pod on node-1 and a `server` pod on node-2. The servers are the pods' commands; the
//! clients run through `ambient local exec`. Traffic stays inside the namespaces `ambient local`
//! creates; the mesh is taken down when [`Local`] is dropped, also on a panic.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ambient::local::state::{MeshState, StateDir};

use crate::tool::{ECHO_PORT, HTTP_PORT, IPERF_PORT};

/// The two paths measured, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Direct,
    Mesh,
}

impl Route {
    pub const BOTH: [Route; 2] = [Route::Direct, Route::Mesh];
    /// The Kubernetes namespace of the route's pods.
    pub fn namespace(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Mesh => "mesh",
        }
    }
}

/// Commands the bench needs besides `ambient`, and where they come from.
const TOOLS: &[(&str, &str)] = &[("iperf3", "iperf3"), ("wrk", "wrk"), ("ss", "iproute2"), ("sh", "dash")];

/// Fails loudly if a load tool is missing or the bench is not root (`ambient local` needs it).
pub fn preflight() {
    let mut missing = Vec::new();
    for (tool, package) in TOOLS {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
        if !found {
            missing.push(format!("{tool} (Debian package {package})"));
        }
    }
    assert!(
        missing.is_empty(),
        "the mesh bench needs {}: install them with `bash install.sh --deps-only` (as root)",
        missing.join(", ")
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "the mesh bench runs `ambient local`, which needs root (network namespaces): run it as root"
    );
}

fn yaml(tool: &Path) -> String {
    let tool = tool.display();
    let mut text = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}\n\
         ---\napiVersion: v1\nkind: Namespace\nmetadata: {name: direct}\n",
    );
    for ns in ["mesh", "direct"] {
        // The server raises its own open-files limit to the hard limit: it holds 10,000
        // connections in the idle-connection test. Only the echo port is declared: the runtime
        // probes declared ports every 2 s, which would otherwise hit iperf3 mid-test.
        text += &format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: server, namespace: {ns}, labels: {{app: server}}}}\n\
             spec:\n  nodeName: node-2\n  containers:\n\
             \x20 - name: tool\n    image: none\n    command: [sh, -c, 'ulimit -n \"$(ulimit -H -n)\" && exec \"$0\" __tool serve {ECHO_PORT} {HTTP_PORT}', '{tool}']\n    ports: [{{containerPort: {ECHO_PORT}}}]\n\
             \x20 - name: iperf3\n    image: none\n    command: [iperf3, -s, -p, '{IPERF_PORT}']\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: {ns}, labels: {{app: client}}}}\n\
             spec:\n  nodeName: node-1\n  containers:\n  - name: idle\n    image: none\n    command: [sleep, infinity]\n"
        );
    }
    text
}

/// A running local mesh; dropping it runs `ambient local down`.
pub struct Local {
    binary: PathBuf,
    tool: PathBuf,
    state_dir: PathBuf,
    pub state: MeshState,
    _dir: tempfile::TempDir,
}

impl Local {
    pub fn up(binary: &Path) -> Local {
        let tool = std::env::current_exe().expect("the bench executable's path");
        let dir = tempfile::Builder::new().prefix("ambient-bench-").tempdir().expect("a temporary folder");
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        std::fs::write(config.join("bench.yaml"), yaml(&tool)).unwrap();
        let state_dir = dir.path().join("state");
        // The guard exists before `up` runs: a half-made mesh is taken down too.
        let mut local = Local { binary: binary.to_path_buf(), tool, state_dir, state: empty_state(), _dir: dir };
        let started = Instant::now();
        let output = Command::new(&local.binary)
            .args(["local", "up", "--nodes", "2", "-f"])
            .arg(&config)
            .arg("--state-dir")
            .arg(&local.state_dir)
            .stdin(Stdio::null())
            .output()
            .expect("running ambient local up");
        assert!(
            output.status.success(),
            "ambient local up failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("local mesh up in {:.1} s (state in {})", started.elapsed().as_secs_f64(), local.state_dir.display());
        local.reload();
        // The load generator closes first, so its own TIME_WAIT sockets pile up in the client
        // pods; by default (tcp_tw_reuse=2: loopback only) connect() cannot reuse their ports,
        // and about 14,000 connections in a minute exhaust the even half of the port range
        // that connect() prefers, on either path. Reuse (after 1 s, with timestamps) in the
        // client pods only, so that the figures show the mesh, and the server pods, where
        // ztunnel connects to the server, keep the kernel's default.
        for route in Route::BOTH {
            let write = "echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse";
            run(local.exec(route, "client", &["sh", "-c", write]), "setting tcp_tw_reuse in the client pod");
        }
        local
    }

    /// Re-reads the state file (PIDs change if a component restarts).
    pub fn reload(&mut self) {
        let dir = StateDir::new(&self.state_dir).unwrap();
        self.state = dir.load().expect("the state file is readable").expect("ambient local up wrote a state file");
    }

    pub fn server_ip(&self, route: Route) -> IpAddr {
        let pod = self.state.pod(route.namespace(), "server").expect("the server pod exists");
        pod.ip.expect("the server pod has an IP")
    }

    /// Both ztunnels: name, PID.
    pub fn ztunnels(&self) -> Vec<(String, u32)> {
        let mut found: Vec<(String, u32)> = self
            .state
            .components
            .iter()
            .filter(|c| c.name.starts_with("ztunnel/"))
            .map(|c| (c.name.clone(), c.process.as_ref().expect("ztunnel is running").pid))
            .collect();
        found.sort();
        assert_eq!(found.len(), 2, "expected two ztunnels in the state file");
        found
    }

    /// Both ztunnels' log files.
    pub fn ztunnel_logs(&self) -> Vec<PathBuf> {
        self.state.components.iter().filter(|c| c.name.starts_with("ztunnel/")).map(|c| c.log.clone()).collect()
    }

    /// `ambient local exec POD -n NS -- CMD...`, prepared but not started.
    pub fn exec(&self, route: Route, pod: &str, command: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["local", "exec", pod, "-n", route.namespace(), "--state-dir"])
            .arg(&self.state_dir)
            .arg("--")
            .args(command)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command in the route's client pod; its stdout, or a panic with its output.
    pub fn run_in_client(&self, route: Route, command: &[&str]) -> String {
        run(self.exec(route, "client", command), &command.join(" "))
    }

    /// Runs a load tool in the route's client pod and returns its JSON line.
    pub fn tool(&self, route: Route, args: &[&str]) -> serde_json::Value {
        let stdout = run(self.tool_command(route, args), &format!("__tool {}", args.join(" ")));
        last_json(&stdout)
    }

    fn tool_command(&self, route: Route, args: &[&str]) -> Command {
        // The client raises its own open-files limit to the hard limit, as the server does.
        let tool = self.tool.display().to_string();
        let mut command = vec!["sh", "-c", "ulimit -n \"$(ulimit -H -n)\" && exec \"$0\" __tool \"$@\"", &tool];
        command.extend_from_slice(args);
        self.exec(route, "client", &command)
    }

    /// Starts `hold` in the client pod: returns once `count` connections are open.
    pub fn hold(&self, route: Route, count: usize) -> Held {
        let target = format!("{}:{ECHO_PORT}", self.server_ip(route));
        let mut command = self.tool_command(route, &["hold", &target, &count.to_string()]);
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("starting hold");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("reading hold's report");
        let holder = Holder { child };
        let report = serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("hold did not report (got {line:?})"));
        Held { _holder: holder, report }
    }

    /// TIME_WAIT sockets in the route's client and server pods' network namespaces.
    pub fn time_wait(&self, route: Route) -> usize {
        ["client", "server"]
            .iter()
            .map(|pod| {
                let out = run(self.exec(route, pod, &["ss", "-Htan", "state", "time-wait"]), "ss");
                out.lines().filter(|l| !l.trim().is_empty()).count()
            })
            .sum()
    }

    /// Waits (at most `bound`) until the route's pods hold at most `threshold` TIME_WAIT
    /// sockets; returns how many are left (more than `threshold` only when the bound was hit).
    pub fn drain(&self, route: Route, threshold: usize, bound: Duration) -> usize {
        let started = Instant::now();
        loop {
            let left = self.time_wait(route);
            if left <= threshold || started.elapsed() >= bound {
                if left > threshold {
                    eprintln!("  {}: {left} TIME_WAIT sockets still there after {bound:?}", route.namespace());
                }
                return left;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let status = Command::new(&self.binary)
            .args(["local", "down", "--state-dir"])
            .arg(&self.state_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "ambient local down --state-dir {} failed ({status:?}): run it by hand",
                self.state_dir.display()
            );
        }
    }
}

/// The `hold` tool's process: its connections close when it is dropped (stdin closes).
pub struct Holder {
    child: Child,
}

/// Open idle connections: the tool's report, and the tool, which holds them until dropped.
pub struct Held {
    _holder: Holder,
    pub report: serde_json::Value,
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Closing its stdin tells the tool to close the connections and exit.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Only the process this bench started (`ambient local exec`), by its own handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(mut command: Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in {stdout:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

fn empty_state() -> MeshState {
    serde_json::from_value(serde_json::json!({
        "id": "", "state_dir": "", "phase": {"phase": "starting"}, "runtime": null, "paths": [], "nodes": [],
        "netns_prefix": "", "cluster_netns": "", "pod_cidr": "", "service_cidr": "", "components": [],
        "pods": [], "services": [], "problems": []
    }))
    .expect("an empty state")
}

/// CPU time (user + system, in clock ticks) of each process.
pub fn cpu_ticks(pids: &[(String, u32)]) -> u64 {
    pids.iter()
        .map(|(name, pid)| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_else(|e| panic!("{name} (pid {pid}) is gone: {e}"));
            // Fields after the command name, which is in parentheses and may hold spaces.
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
            fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
        })
        .sum()
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf (libc-bin) is installed");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("getconf CLK_TCK prints a number")
}
