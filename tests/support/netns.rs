//! Network namespace fixture: an isolated "cluster" namespace with a bridge, and pod namespaces
//! wired to it with veth pairs. Needs root plus iproute2 (`ip`) and `iptables-restore`; panics
//! loudly otherwise.
//!
//! Isolation: nothing is created in the host namespace. The cluster namespace holds only `lo` and
//! `br0` (10.10.0.1/16) with the pods' veth ends: no uplink, so no packet can leave the machine.
//! Every namespace is deleted on drop (pods before their cluster), also while a test panics.
//! Names are `ambt-<pid>-<counter>-<name>` (`ambt-`, so never mistaken for a local mesh's `amb-<id>-`), unique per process and fixture.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

use ambient::sys::netns::Netns;

/// The bridge address in the cluster namespace, the pods' default gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 1);
/// Prefix length of the pod network 10.10.0.0/16.
pub const PREFIX: u8 = 16;
/// Outbound capture port of the in-pod redirect stand-in.
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
/// Inbound plaintext capture port of the in-pod redirect stand-in.
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
/// Inbound HBONE port, never redirected.
pub const HBONE_PORT: u16 = 15008;
/// Connections from sockets with this mark bypass the outbound capture.
pub const BYPASS_MARK: u32 = 1337;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Leftovers of killed test processes are swept only when at least this old.
const STALE_AFTER: Duration = Duration::from_secs(60);

static COUNTER: AtomicU64 = AtomicU64::new(0);
static PREFLIGHT: Once = Once::new();

/// A fresh, process-unique namespace name, and the counter value that makes it unique.
fn unique_name(suffix: &str) -> (String, u64) {
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    (format!("ambt-{}-{counter}-{suffix}", std::process::id()), counter)
}

/// Checks root and the tools once per process, and removes namespaces left by killed test runs.
fn preflight() {
    PREFLIGHT.call_once(|| {
        assert!(
            nix::unistd::geteuid().is_root(),
            "\n\n*** tests/support/netns: these tests create network namespaces and must run as root ***\n\n"
        );
        for (tool, arg) in [("ip", "-V"), ("iptables-restore", "--version")] {
            let found = Command::new(tool).arg(arg).output().is_ok_and(|out| out.status.success());
            assert!(found, "\n\n*** tests/support/netns: `{tool}` is missing; install iproute2 and iptables ***\n\n");
        }
        sweep_stale_namespaces();
    });
}

/// Deletes `ambt-<pid>-*` namespaces whose process is gone (a test killed before its Drop ran).
fn sweep_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("ambt-").and_then(|rest| rest.split('-').next()) else { continue };
        let (Ok(pid), Ok(meta)) = (pid.parse::<u32>(), entry.metadata()) else { continue };
        let age = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64))
            .unwrap_or_default();
        if !PathBuf::from(format!("/proc/{pid}")).exists() && age >= STALE_AFTER {
            eprintln!("tests/support/netns: removing stale namespace {name} of dead process {pid}");
            delete_namespace(&name);
        }
    }
}

/// Runs `ip <args>`; panics with its stderr on failure (setup errors must be loud).
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run `ip`");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
}

fn delete_namespace(name: &str) {
    // Never panic here: this runs in Drop, possibly during a panic (a second one would abort).
    match Command::new("ip").args(["netns", "del", name]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!("tests/support/netns: ip netns del {name}: {}", String::from_utf8_lossy(&out.stderr).trim())
        }
        Err(e) => eprintln!("tests/support/netns: ip netns del {name}: {e}"),
    }
}

/// Owns one named namespace; deletes it on drop.
#[derive(Debug)]
struct NamespaceGuard {
    name: String,
}

impl NamespaceGuard {
    fn create(name: String) -> Self {
        ip(&["netns", "add", &name]);
        let guard = NamespaceGuard { name };
        // From here on a failing setup step still removes the namespace.
        ip(&["-n", &guard.name, "link", "set", "lo", "up"]);
        guard
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        delete_namespace(&self.name);
    }
}

/// Runs `f` on a short-lived thread inside namespace `ns_name` (the calling thread never moves).
pub fn in_namespace<T: Send>(ns_name: &str, f: impl FnOnce() -> T + Send) -> T {
    let netns = open_named(ns_name);
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns into {ns_name}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn open_named(ns_name: &str) -> Netns {
    let path = PathBuf::from("/run/netns").join(ns_name);
    Netns::open(&path).unwrap_or_else(|e| panic!("open namespace {}: {e}", path.display()))
}

fn exec_in(ns_name: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns_name])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip netns exec {ns_name} {}: {e}", args.join(" ")))
}

/// The isolated cluster network: a namespace with bridge `br0` (10.10.0.1/16) and no uplink.
pub struct TestNet {
    cluster: Arc<NamespaceGuard>,
}

impl TestNet {
    pub fn new() -> TestNet {
        preflight();
        let cluster = NamespaceGuard::create(unique_name("c").0);
        let ns = cluster.name.as_str();
        ip(&["-n", ns, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", ns, "addr", "add", &format!("{GATEWAY}/{PREFIX}"), "dev", "br0"]);
        ip(&["-n", ns, "link", "set", "br0", "up"]);
        TestNet { cluster: Arc::new(cluster) }
    }

    /// The cluster namespace's name.
    pub fn ns_name(&self) -> &str {
        &self.cluster.name
    }

    /// A pod namespace with `eth0` at `ip`/16 bridged into the cluster, `lo` up, default route
    /// via [`GATEWAY`]. `name`: lowercase letters, digits and dashes.
    pub fn add_pod(&self, name: &str, ip_addr: Ipv4Addr) -> TestPod {
        check_pod_name(name);
        let (ns_name, counter) = unique_name(name);
        let ns = NamespaceGuard::create(ns_name);
        let pod = ns.name.as_str();
        let cluster = self.cluster.name.as_str();
        // Interface names are limited to 15 bytes; the counter makes this one unique in the cluster.
        let host_end = format!("v{counter}");
        ip(&["-n", cluster, "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", pod]);
        ip(&["-n", cluster, "link", "set", &host_end, "master", "br0"]);
        ip(&["-n", cluster, "link", "set", &host_end, "up"]);
        ip(&["-n", pod, "addr", "add", &format!("{ip_addr}/{PREFIX}"), "dev", "eth0"]);
        ip(&["-n", pod, "link", "set", "eth0", "up"]);
        ip(&["-n", pod, "route", "add", "default", "via", &GATEWAY.to_string()]);
        TestPod { name: name.to_owned(), ip: ip_addr, ns_name: ns.name.clone(), ns, _cluster: self.cluster.clone() }
    }

    /// A pod namespace with only `lo` up and no link to the cluster, for tests that let CNI
    /// plugins wire it (run with the cluster namespace as their host namespace, so whatever they
    /// create stays in test namespaces). `ip` is unspecified until the test sets it from the
    /// plugins' result.
    pub fn add_unwired_pod(&self, name: &str) -> TestPod {
        check_pod_name(name);
        let ns = NamespaceGuard::create(unique_name(name).0);
        TestPod {
            name: name.to_owned(),
            ip: Ipv4Addr::UNSPECIFIED,
            ns_name: ns.name.clone(),
            ns,
            _cluster: self.cluster.clone(),
        }
    }

    /// Runs a command inside the cluster namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        exec_in(&self.cluster.name, args)
    }

    /// The cluster namespace, e.g. to run a node-level component there.
    pub fn netns(&self) -> Netns {
        open_named(&self.cluster.name)
    }
}

impl Default for TestNet {
    fn default() -> Self {
        TestNet::new()
    }
}

fn check_pod_name(name: &str) {
    assert!(
        !name.is_empty()
            && name.len() <= 32
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "pod name {name:?}: use 1-32 lowercase letters, digits and dashes"
    );
}

/// A pod namespace on the test network. Dropping it deletes the namespace (its veth pair goes
/// with it); the cluster namespace lives until its last pod is gone.
pub struct TestPod {
    pub name: String,
    pub ip: Ipv4Addr,
    pub ns_name: String,
    // Field order matters: the pod namespace is deleted before the cluster reference is released.
    ns: NamespaceGuard,
    _cluster: Arc<NamespaceGuard>,
}

impl TestPod {
    /// `ip:port` of this pod.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip, port))
    }

    /// An open handle on the pod's namespace.
    pub fn netns(&self) -> Netns {
        open_named(&self.ns.name)
    }

    /// Installs a minimal stand-in for in-pod traffic capture (nat table, chains `AMB-TEST-*`):
    /// outbound TCP not to 127.0.0.0/8 and not marked [`BYPASS_MARK`] goes to 15001, inbound TCP
    /// except to 15008 goes to 15006.
    pub fn redirect(&self) {
        let rules = format!(
            "*nat\n\
             :AMB-TEST-OUTPUT - [0:0]\n\
             :AMB-TEST-PREROUTING - [0:0]\n\
             -A OUTPUT -j AMB-TEST-OUTPUT\n\
             -A PREROUTING -j AMB-TEST-PREROUTING\n\
             -A AMB-TEST-OUTPUT -p tcp ! -d 127.0.0.0/8 -m mark ! --mark {BYPASS_MARK} -j REDIRECT --to-ports {OUTBOUND_CAPTURE_PORT}\n\
             -A AMB-TEST-PREROUTING -p tcp ! --dport {HBONE_PORT} -j REDIRECT --to-ports {INBOUND_CAPTURE_PORT}\n\
             COMMIT\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns.name, "iptables-restore"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run iptables-restore");
        child.stdin.take().expect("stdin").write_all(rules.as_bytes()).expect("write iptables rules");
        let out = child.wait_with_output().expect("wait for iptables-restore");
        assert!(
            out.status.success(),
            "iptables-restore in {}: {}\nrules:\n{rules}",
            self.ns.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// A listener on 0.0.0.0:`port` created inside the pod namespace.
    pub fn listen(&self, port: u16) -> TcpListener {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        in_namespace(&self.ns.name, || TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("listen on {addr} in {}: {e}", self.ns.name))
    }

    /// A connection to `addr` from a socket created inside the pod namespace (5 s timeout).
    pub fn connect(&self, addr: SocketAddr) -> TcpStream {
        in_namespace(&self.ns.name, || TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT))
            .unwrap_or_else(|e| panic!("connect to {addr} from {}: {e}", self.ns.name))
    }

    /// Runs a command inside the pod namespace (`ip netns exec`).
    pub fn exec(&self, args: &[&str]) -> Output {
        exec_in(&self.ns.name, args)
    }
}
