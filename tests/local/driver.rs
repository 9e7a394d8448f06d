//! A thin driver over the real `ambient local` commands: every action a test takes is the
//! command a user would type (`up`, `exec`, `metrics`, `status`, `down`), run as a child process
//! against the mesh's own `--state-dir`. The state file is read with the library's own types, so
//! the tests check the contract the CLI and the runtime share.
//!
//! Each [`LocalMesh`] lives in a temporary folder (`yaml/` for its input files, `state/` for the
//! mesh): meshes of tests running in parallel never share a name, a file or a namespace. Dropping
//! it runs `ambient local down`, also when the test panics, after printing the runtime's and the
//! components' logs so that a failure can be understood from the test output alone.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::{Duration, Instant};

use ambient::local::state::{MeshState, Phase, StateDir};
use ambient::sys::netns::Netns;
use ambient::sys::process::{ProcessRecord, processes_in_netns};

/// How long `up` may take before the test gives up (it returns once every pod is ready).
const UP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long any other `ambient local` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a live change (a file written or removed, a component restarted) may take to show.
pub const SETTLE: Duration = Duration::from_secs(10);
/// curl's own limit: a refused or reset connection fails at once, a black hole after this.
const CURL_MAX_TIME: &str = "3";
/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

static PREFLIGHT: Once = Once::new();

/// The `ambient` binary under test.
pub fn ambient_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ambient")
}

/// What the suite needs from the machine. A missing piece fails the test with a clear message:
/// these tests are part of the suite CI runs as root, so they must never pass by skipping.
fn preflight() {
    PREFLIGHT.call_once(|| {
        assert!(
            nix::unistd::geteuid().is_root(),
            "\n\n*** tests/local: `ambient local` creates network namespaces; run the tests as root ***\n\n"
        );
        for (tool, arg, package) in [
            ("ip", "-V", "iproute2"),
            ("iptables", "--version", "iptables"),
            ("python3", "--version", "python3"),
            ("curl", "--version", "curl"),
        ] {
            let found = Command::new(tool).arg(arg).output().is_ok_and(|out| out.status.success());
            assert!(found, "\n\n*** tests/local: `{tool}` is missing; install the Debian package {package} ***\n\n");
        }
        let plugins = ["/usr/lib/cni/bridge", "/opt/cni/bin/bridge"];
        assert!(
            plugins.iter().any(|p| Path::new(p).exists()),
            "\n\n*** tests/local: the CNI bridge plugin is missing ({plugins:?}); install containernetworking-plugins ***\n\n"
        );
    });
}

/// One local mesh, started from YAML files by `ambient local up`.
pub struct LocalMesh {
    // Kept for its Drop (removes the folder); `down` has removed `state/` by then.
    _dir: tempfile::TempDir,
    yaml_dir: PathBuf,
    state_dir: StateDir,
    /// What `up` printed (progress, problems in the input files).
    pub up_output: Output,
    down_ran: bool,
}

impl LocalMesh {
    /// Writes `files` (name, YAML) into a fresh folder and runs
    /// `ambient local up -f <folder> --nodes <nodes> --state-dir <state>`; panics (with its output
    /// and the logs) unless it succeeds.
    pub fn up(files: &[(&str, &str)], nodes: u32) -> LocalMesh {
        preflight();
        let dir = mesh_folder();
        let yaml_dir = dir.path().join("yaml");
        std::fs::create_dir(&yaml_dir).expect("create the YAML folder");
        for (name, yaml) in files {
            std::fs::write(yaml_dir.join(name), yaml).unwrap_or_else(|e| panic!("writing {name}: {e}"));
        }
        let state_dir = StateDir::new(&dir.path().join("state")).expect("absolute state dir");
        let placeholder = Output { status: ExitStatus::default(), stdout: Vec::new(), stderr: Vec::new() };
        let mut mesh = LocalMesh { _dir: dir, yaml_dir, state_dir, up_output: placeholder, down_ran: false };
        let yaml = mesh.yaml_dir.to_string_lossy().into_owned();
        let nodes = nodes.to_string();
        let output = mesh.local_with_timeout(&["up", "-f", &yaml, "--nodes", &nodes], UP_TIMEOUT);
        if !output.status.success() {
            // Drop runs `down` and prints the logs.
            panic!("`ambient local up` failed:\n{}", describe(&output));
        }
        mesh.up_output = output;
        // `up` returns once everything is ready, so what a user runs next (status, exec) must
        // already see it so.
        let state = mesh.state();
        assert_eq!(state.phase, Phase::Ready, "state.json says ready when `up` returns: {state:#?}");
        let waiting: Vec<_> = state.pods.iter().filter(|p| !p.ready && p.phase != "Succeeded").collect();
        assert!(waiting.is_empty(), "every pod is ready when `up` returns: {waiting:#?}");
        mesh
    }

    /// Runs `ambient local <subcommand> --state-dir <state> <args...>`.
    pub fn local(&self, subcommand_and_args: &[&str]) -> Output {
        self.local_with_timeout(subcommand_and_args, COMMAND_TIMEOUT)
    }

    fn local_with_timeout(&self, subcommand_and_args: &[&str], timeout: Duration) -> Output {
        let (subcommand, args) = subcommand_and_args.split_first().expect("a subcommand");
        let mut command = Command::new(ambient_bin());
        command.args(["local", subcommand, "--state-dir"]).arg(self.state_dir.root()).args(args);
        run(&mut command, timeout)
    }

    /// `ambient local exec <pod> -n <ns> -- <command...>`.
    pub fn exec(&self, pod: &str, namespace: &str, command: &[&str]) -> Output {
        let mut args = vec!["exec", pod, "-n", namespace, "--"];
        args.extend_from_slice(command);
        self.local(&args)
    }

    /// Starts `ambient local exec` without waiting for it (for a long-lived process in a pod).
    pub fn spawn_exec(&self, pod: &str, namespace: &str, command: &[&str]) -> Child {
        Command::new(ambient_bin())
            .args(["local", "exec", "--state-dir"])
            .arg(self.state_dir.root())
            .args([pod, "-n", namespace, "--"])
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ambient local exec")
    }

    /// `curl` from inside a pod: the body, or curl's exit code (7 refused, 52 empty reply,
    /// 56 reset, 28 timed out).
    pub fn curl(&self, from: &str, namespace: &str, url: &str) -> Result<String, i32> {
        let output = self.exec(from, namespace, &["curl", "-sS", "--max-time", CURL_MAX_TIME, url]);
        match output.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            Some(code) => Err(code),
            None => panic!("curl in {namespace}/{from} was killed:\n{}", describe(&output)),
        }
    }

    /// Waits until `curl from -> url` succeeds with a body containing `expect`; returns the body.
    pub fn wait_reachable(&self, from: &str, namespace: &str, url: &str, expect: &str) -> String {
        let mut last = Err(-1);
        wait_until(SETTLE, &format!("{namespace}/{from} reaches {url}"), || {
            last = self.curl(from, namespace, url);
            matches!(&last, Ok(body) if body.contains(expect))
        });
        last.expect("checked above")
    }

    /// Waits until `curl from -> url` fails (a policy or STRICT refuses it); returns curl's code.
    pub fn wait_refused(&self, from: &str, namespace: &str, url: &str) -> i32 {
        let mut last = Ok(String::new());
        wait_until(SETTLE, &format!("{namespace}/{from} is refused at {url}"), || {
            last = self.curl(from, namespace, url);
            last.is_err()
        });
        last.expect_err("checked above")
    }

    /// `ambient local metrics <component>` (`controlplane`, `ztunnel/node-1`).
    pub fn metrics(&self, component: &str) -> String {
        let output = self.local(&["metrics", component]);
        assert!(output.status.success(), "`ambient local metrics {component}` failed:\n{}", describe(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until `component`'s `metric` summed over the series with `labels` is at least
    /// `at_least`; returns the metrics text.
    pub fn wait_metric(&self, component: &str, metric: &str, labels: &[(&str, &str)], at_least: f64) -> String {
        let mut text = String::new();
        let what = format!("{component}: {metric}{labels:?} >= {at_least}");
        wait_until_or(SETTLE, &what, || {
            text = self.metrics(component);
            (sample(&text, metric, labels) >= at_least).then_some(()).ok_or_else(|| text.clone())
        });
        text
    }

    /// The state file, parsed with the library's types.
    pub fn state(&self) -> MeshState {
        self.state_dir.load().expect("a readable state file").expect("a state file")
    }

    /// Writes (or replaces) an input file: the runtime applies it live.
    pub fn write_file(&self, name: &str, yaml: &str) {
        // Write-then-rename, as an editor does, so the runtime never reads half a file.
        let tmp = self.yaml_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).unwrap_or_else(|e| panic!("writing {name}: {e}"));
        std::fs::rename(&tmp, self.yaml_dir.join(name)).unwrap_or_else(|e| panic!("renaming {name}: {e}"));
    }

    /// Deletes an input file: its objects go away live.
    pub fn remove_file(&self, name: &str) {
        std::fs::remove_file(self.yaml_dir.join(name)).unwrap_or_else(|e| panic!("removing {name}: {e}"));
    }

    /// Runs `ambient local down` now (Drop does nothing more afterwards).
    pub fn down(&mut self) -> Output {
        self.down_ran = true;
        self.local(&["down"])
    }

    /// Runs `ambient local down` and checks that it left nothing behind: no network namespace
    /// of the mesh, no process it recorded or that ran in one of its namespaces (also ones it
    /// did not start, like a `local exec` still running), no host rule for its address ranges,
    /// no state folder; and that a second `down` is fine.
    pub fn down_leaving_nothing(&mut self) {
        let state = self.state();
        let namespaces = netns_with_prefix(&state.netns_prefix);
        assert!(namespaces.contains(&state.cluster_netns), "the cluster namespace exists before down: {namespaces:?}");
        let mut processes: Vec<ProcessRecord> = state.runtime.into_iter().collect();
        processes.extend(state.components.iter().filter_map(|c| c.process));
        processes.extend(state.pods.iter().flat_map(|p| &p.containers).filter_map(|c| c.process));
        for name in &namespaces {
            // Only the inode is kept: an open handle would keep the namespace alive.
            let inode = Netns::open(&Path::new("/var/run/netns").join(name)).map(|ns| ns.inode());
            processes.extend(inode.map(processes_in_netns).unwrap_or_default());
        }

        let output = self.down();
        assert!(output.status.success(), "`ambient local down` failed:\n{}", describe(&output));
        let left = netns_with_prefix(&state.netns_prefix);
        assert!(left.is_empty(), "network namespaces left behind: {left:?}\n{}", describe(&output));
        let alive: Vec<String> = processes
            .iter()
            .filter(|p| p.is_alive())
            .map(|p| {
                let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid)).unwrap_or_default();
                format!("{} ({})", p.pid, String::from_utf8_lossy(&cmdline).replace('\0', " ").trim_end())
            })
            .collect();
        assert!(alive.is_empty(), "processes left running: {alive:?}\n{}", describe(&output));
        assert!(!self.state_dir.root().exists(), "the state folder is removed");
        let host_rules = run(&mut Command::new("iptables-save"), COMMAND_TIMEOUT);
        let host_rules = String::from_utf8_lossy(&host_rules.stdout);
        for range in [&state.pod_cidr, &state.service_cidr, &state.netns_prefix] {
            assert!(!host_rules.contains(range.as_str()), "a host rule mentions {range}:\n{host_rules}");
        }

        let host_links = run(Command::new("ip").args(["-o", "link", "show"]), COMMAND_TIMEOUT);
        let host_links = String::from_utf8_lossy(&host_links.stdout);
        assert!(!host_links.contains("amb0"), "no bridge of a local mesh in the host namespace:\n{host_links}");

        let again = self.local(&["down"]);
        assert!(again.status.success(), "a second `down` is fine:\n{}", describe(&again));
        let said = format!("{}{}", String::from_utf8_lossy(&again.stdout), String::from_utf8_lossy(&again.stderr));
        assert!(said.contains("no local mesh"), "the second `down` says there is nothing to do:\n{said}");
    }

    /// A recorded component process (panics if the component is missing or being restarted).
    pub fn component_process(&self, name: &str) -> ProcessRecord {
        let state = self.state();
        let component = state.component(name).unwrap_or_else(|| panic!("no component {name} in {state:#?}"));
        component.process.unwrap_or_else(|| panic!("{name} has no process: {component:#?}"))
    }

    /// The ends of every log of the mesh: the runtime's, each component's and each container's.
    pub fn logs(&self) -> String {
        let mut files = Vec::new();
        collect_files(&self.state_dir.logs_dir(), &mut files);
        files.sort();
        let mut out = String::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| format!("(unreadable: {e})"));
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!("----- {} (last {} lines) -----\n", file.display(), tail.len()));
            for line in tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for LocalMesh {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n===== the test failed; state and logs of the mesh at {} =====",
                self.state_dir.root().display()
            );
            match std::fs::read_to_string(self.state_dir.state_file()) {
                Ok(state) => eprintln!("----- state.json -----\n{state}"),
                Err(e) => eprintln!("----- state.json: {e}"),
            }
            eprintln!("{}", self.logs());
        }
        if !self.down_ran {
            let output = self.local(&["down"]);
            if !output.status.success() {
                eprintln!("`ambient local down` failed while cleaning up:\n{}", describe(&output));
            }
        }
    }
}

/// A temporary folder for one mesh (its id, which names its network namespaces, is a hash of
/// the path, so parallel tests never share names).
fn mesh_folder() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("ambient-local-").tempdir().expect("a temporary folder")
}

fn collect_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, into);
        } else {
            into.push(path);
        }
    }
}

/// Runs `command` to completion with its output captured, killing it (it is our own child) if
/// it outlives `timeout`.
pub fn run(command: &mut Command, timeout: Duration) -> Output {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {shown}: {e}"));
    let stdout = Drain::start(child.stdout.take().expect("piped"));
    let stderr = Drain::start(child.stderr.take().expect("piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let output = Output { status: ExitStatus::default(), stdout: stdout.finish(), stderr: stderr.finish() };
            panic!("{shown} did not finish within {timeout:?}:\n{}", describe(&output));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: stdout.finish(), stderr: stderr.finish() }
}

/// A pipe read on its own thread, so a chatty child never blocks on a full pipe.
struct Drain {
    bytes: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drain {
    fn start(mut pipe: impl Read + Send + 'static) -> Drain {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let sink = bytes.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock().expect("not poisoned").extend_from_slice(&chunk[..n]);
            }
            let _ = tx.send(());
        });
        Drain { bytes, done }
    }

    /// What was read, once the pipe is closed — or after a short grace if a process the child
    /// left behind (the mesh's runtime is one) still holds it open.
    fn finish(self) -> Vec<u8> {
        let _ = self.done.recv_timeout(Duration::from_secs(2));
        std::mem::take(&mut *self.bytes.lock().expect("not poisoned"))
    }
}

/// A command's status, stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Polls `condition` every 200 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_until_or(timeout, what, || if condition() { Ok(()) } else { Err(String::new()) });
}

/// Like [`wait_until`]; the last `Err` explains the failure in the panic message.
pub fn wait_until_or(timeout: Duration, what: &str, mut condition: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match condition() {
            Ok(()) => return,
            Err(why) => why,
        };
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting until {what}\n{last}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The sum of `metric`'s series whose labels include all of `labels`, in Prometheus text.
pub fn sample(metrics: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.strip_prefix(metric).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Whether a network namespace of that name exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/var/run/netns").join(name).exists()
}

/// Every network namespace whose name starts with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else { return Vec::new() };
    entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(prefix)).collect()
}
