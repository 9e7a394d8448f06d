//! The local mesh's "cluster" network: one network namespace holding the pod bridge (made by the
//! CNI bridge plugin on the first ADD), the service virtual IPs as kube-proxy would make them
//! (iptables DNAT), and the pods' `/etc/hosts` files (the local stand-in for cluster DNS).
//!
//! Isolation: the cluster namespace has no uplink and no default route, so nothing a pod sends
//! can leave the machine; the machine's own namespace is never touched.
//!
//! **Service rules** (all in the cluster namespace, in chains of our own so they can be listed
//! exactly; rebuilt as a whole on every sync):
//! - `nat AMBIENT_LOCAL_SERVICES` (jumped from PREROUTING and OUTPUT): per service port a DNAT to
//!   its endpoints, spread over several with `-m statistic --mode random` as kube-proxy does.
//! - `nat AMBIENT_LOCAL_POSTROUTING` (jumped from POSTROUTING): masquerade every DNAT'd
//!   connection. All pods share one bridge, so the endpoint's reply to a client on the same
//!   bridge would be switched straight back, skipping the un-DNAT, unless `br_netfilter` makes
//!   bridged frames traverse iptables (Debian does not load it by default). Rewriting the source
//!   to the gateway makes the reply come back through the cluster namespace's IP layer. The cost:
//!   an endpoint reached through a VIP sees the gateway (10.244.0.1) as its client. This only
//!   concerns clients outside the mesh; enrolled clients' ztunnel connects to pod IPs directly.
//! - `filter AMBIENT_LOCAL_REJECT` (jumped from INPUT, FORWARD and OUTPUT): service ports without
//!   endpoints are rejected with icmp-port-unreachable, like kube-proxy, so clients get
//!   "connection refused" at once instead of waiting for a timeout. Since the namespace has no
//!   default route, a packet to a VIP with nothing to DNAT to would fail route lookup before any
//!   filter chain sees it; a `local` route for the whole service CIDR delivers it to INPUT
//!   instead, where it is rejected (or, for a port no service has, answered with a reset).
//!
//! Known limit: conntrack entries of existing connections are not flushed when endpoints change
//! (kube-proxy deletes stale UDP entries with the `conntrack` tool); a UDP flow to a VIP keeps its
//! old endpoint until its entry expires.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, btree_map};
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;

use super::LocalError;
use super::state::{ServiceState, StateDir};
use crate::sys::netns::{Netns, command_in};

/// The pod bridge in the cluster namespace.
pub const BRIDGE: &str = "amb0";
/// Pod addresses; the gateway (the bridge's address) is the first address.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
/// Service virtual IPs.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";
/// Where `ip netns add` bind-mounts named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";
/// The cluster DNS domain used in pods' hosts files.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `nat` chain with the services' DNAT rules.
pub const SERVICES_CHAIN: &str = "AMBIENT_LOCAL_SERVICES";
/// `nat` chain with the hairpin masquerade.
pub const POSTROUTING_CHAIN: &str = "AMBIENT_LOCAL_POSTROUTING";
/// `filter` chain rejecting service ports that have no endpoints.
pub const REJECT_CHAIN: &str = "AMBIENT_LOCAL_REJECT";

/// Which built-in chains jump to which of ours, per table.
const JUMPS: &[(&str, &str, &str)] = &[
    ("nat", "PREROUTING", SERVICES_CHAIN),
    ("nat", "OUTPUT", SERVICES_CHAIN),
    ("nat", "POSTROUTING", POSTROUTING_CHAIN),
    ("filter", "INPUT", REJECT_CHAIN),
    ("filter", "FORWARD", REJECT_CHAIN),
    ("filter", "OUTPUT", REJECT_CHAIN),
];

/// The cluster network namespace of one local mesh.
#[derive(Debug, Clone)]
pub struct ClusterNetwork {
    /// The namespace's name under `/var/run/netns`.
    pub name: String,
    pub netns: Netns,
    pub pod_cidr: Ipv4Net,
    /// The bridge's address and the pods' default gateway: the pod CIDR's first address.
    pub gateway: Ipv4Addr,
    pub service_cidr: Ipv4Net,
    /// Serializes `sync_services` across clones: each sync reads which jumps exist, then adds
    /// the missing ones, and two interleaved syncs would add them twice.
    sync: Arc<Mutex<()>>,
}

impl ClusterNetwork {
    /// Creates the cluster namespace (`dir.cluster_netns()`): `lo` up, IPv4 forwarding on, a
    /// `local` route for the service CIDR (see the module docs), no default route, no uplink.
    /// The bridge itself is made by the CNI bridge plugin on the first ADD. Fails, naming the
    /// namespace, if it already exists (a previous mesh in the same folder was not taken down).
    /// On failure, whatever was made is removed again.
    pub fn create(dir: &StateDir, pod_cidr: Ipv4Net, service_cidr: Ipv4Net) -> Result<Self, LocalError> {
        let name = dir.cluster_netns();
        if Path::new(NETNS_DIR).join(&name).exists() {
            return Err(LocalError::Failed(format!(
                "network namespace {name} already exists: a local mesh in {} was not taken down \
                 (run `ambient local down --state-dir {}`)",
                dir.root().display(),
                dir.root().display()
            )));
        }
        // Checked before anything is made, so that a bad CIDR leaves nothing behind.
        gateway(pod_cidr)?;
        let netns = add_netns(&name)?;
        let network = match ClusterNetwork::with(name.clone(), netns, pod_cidr, service_cidr) {
            Ok(network) => network,
            Err(error) => {
                let _ = delete_netns(&name);
                return Err(error);
            }
        };
        if let Err(error) = network.prepare() {
            let _ = delete_netns(&network.name);
            return Err(error);
        }
        Ok(network)
    }

    /// Opens the existing cluster namespace of `dir` (for a restarted runtime, or tests), and
    /// makes sure forwarding and the service route are in place.
    pub fn open(dir: &StateDir, pod_cidr: Ipv4Net, service_cidr: Ipv4Net) -> Result<Self, LocalError> {
        let name = dir.cluster_netns();
        let netns = open_netns(&name)?;
        let network = ClusterNetwork::with(name, netns, pod_cidr, service_cidr)?;
        network.prepare()?;
        Ok(network)
    }

    fn with(name: String, netns: Netns, pod_cidr: Ipv4Net, service_cidr: Ipv4Net) -> Result<Self, LocalError> {
        let gateway = gateway(pod_cidr)?;
        Ok(ClusterNetwork { name, netns, pod_cidr, gateway, service_cidr, sync: Arc::default() })
    }

    /// Forwarding and the service route; both idempotent.
    fn prepare(&self) -> Result<(), LocalError> {
        enable_ip_forward(&self.netns)
            .map_err(LocalError::io(format!("enabling IPv4 forwarding in network namespace {}", self.name)))?;
        let cidr = self.service_cidr.trunc().to_string();
        run_ip(&["-n", &self.name, "route", "replace", "local", &cidr, "dev", "lo"])
    }

    /// Removes the namespace (and with it the bridge, the pods' host-side veths and every rule).
    pub fn delete(self) -> Result<(), LocalError> {
        delete_netns(&self.name)
    }

    /// Replaces all service rules with `rules` in one `iptables-restore --noflush --wait` run
    /// inside the cluster namespace. The same input always gives the same rules.
    pub fn sync_services(&self, rules: &[ServiceRule]) -> Result<(), LocalError> {
        let _one_at_a_time = self.sync.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let present = self.present_jumps()?;
        let input = restore_input(rules, &present);
        let mut child = command_in(&self.netns, "iptables-restore")
            .args(["--noflush", "--wait"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(LocalError::io(format!("running iptables-restore in network namespace {}", self.name)))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(LocalError::io(format!("writing service rules to iptables-restore in {}", self.name)))?;
        }
        let output = child
            .wait_with_output()
            .map_err(LocalError::io(format!("waiting for iptables-restore in network namespace {}", self.name)))?;
        if !output.status.success() {
            return Err(LocalError::Failed(format!(
                "iptables-restore of the service rules in network namespace {} failed ({}): {}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(())
    }

    /// The jumps to our chains that exist already, so that a sync adds each one only once.
    fn present_jumps(&self) -> Result<BTreeSet<(String, String)>, LocalError> {
        let mut present = BTreeSet::new();
        for table in ["nat", "filter"] {
            for line in self.saved_table(table)?.lines() {
                for (t, from, to) in JUMPS {
                    if *t == table && line == format!("-A {from} -j {to}") {
                        present.insert((table.to_owned(), (*from).to_owned()));
                    }
                }
            }
        }
        Ok(present)
    }

    /// One table of the cluster namespace as `iptables-save` prints it.
    pub fn saved_table(&self, table: &str) -> Result<String, LocalError> {
        let output = command_in(&self.netns, "iptables-save")
            .args(["-t", table])
            .stdin(Stdio::null())
            .output()
            .map_err(LocalError::io(format!("running iptables-save in network namespace {}", self.name)))?;
        if !output.status.success() {
            return Err(LocalError::Failed(format!(
                "iptables-save -t {table} in network namespace {} failed ({}): {}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn gateway(pod_cidr: Ipv4Net) -> Result<Ipv4Addr, LocalError> {
    gateway_of(pod_cidr)
        .ok_or_else(|| LocalError::Failed(format!("pod CIDR {pod_cidr} is too small to hold a gateway and pods")))
}

/// The first address of `cidr` (the bridge's), if the CIDR has room for it and pods.
pub fn gateway_of(cidr: Ipv4Net) -> Option<Ipv4Addr> {
    if cidr.prefix_len() > 30 {
        return None;
    }
    Some(Ipv4Addr::from(u32::from(cidr.network()) + 1))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One service port: connections to `cluster_ip:port` go to one of `endpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRule {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
    pub endpoints: Vec<SocketAddrV4>,
}

/// The rules of our chains, in `iptables-save`'s own spelling (so that a saved table can be
/// compared line by line): `(table, rule)`. Sorted by VIP, protocol and port, endpoints sorted
/// and deduplicated, so the output depends only on the set of rules.
pub fn chain_rules(rules: &[ServiceRule]) -> Vec<(&'static str, String)> {
    let mut ports: BTreeMap<(Ipv4Addr, Protocol, u16), BTreeSet<SocketAddrV4>> = BTreeMap::new();
    for rule in rules {
        ports.entry((rule.cluster_ip, rule.protocol, rule.port)).or_default().extend(rule.endpoints.iter().copied());
    }
    let mut out = Vec::new();
    for ((ip, protocol, port), endpoints) in &ports {
        let matches = format!("-d {ip}/32 -p {protocol} -m {protocol} --dport {port}");
        if endpoints.is_empty() {
            out.push(("filter", format!("-A {REJECT_CHAIN} {matches} -j REJECT --reject-with icmp-port-unreachable")));
            continue;
        }
        // kube-proxy's spread: endpoint i of n is taken with probability 1/(n-i) among the ones
        // left, the last one unconditionally, which makes every endpoint equally likely.
        let count = endpoints.len();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let statistic = if i + 1 < count {
                format!(" -m statistic --mode random --probability {:.11}", 1.0 / (count - i) as f64)
            } else {
                String::new()
            };
            out.push(("nat", format!("-A {SERVICES_CHAIN} {matches}{statistic} -j DNAT --to-destination {endpoint}")));
        }
    }
    out.push(("nat", format!("-A {POSTROUTING_CHAIN} -m conntrack --ctstate DNAT -j MASQUERADE")));
    out
}

/// The `iptables-restore --noflush` input: declaring a chain of ours creates it or empties it,
/// so the rules below replace the previous sync's; the jumps not yet `present` are added first in
/// their built-in chains.
fn restore_input(rules: &[ServiceRule], present: &BTreeSet<(String, String)>) -> String {
    let rules = chain_rules(rules);
    let mut text = String::new();
    for (table, chains) in [("nat", &[SERVICES_CHAIN, POSTROUTING_CHAIN][..]), ("filter", &[REJECT_CHAIN][..])] {
        text += &format!("*{table}\n");
        for chain in chains {
            text += &format!(":{chain} - [0:0]\n");
        }
        for (_, rule) in rules.iter().filter(|(t, _)| *t == table) {
            text += rule;
            text.push('\n');
        }
        for (t, from, to) in JUMPS {
            if *t == table && !present.contains(&(table.to_owned(), (*from).to_owned())) {
                text += &format!("-I {from} 1 -j {to}\n");
            }
        }
        text += "COMMIT\n";
    }
    text
}

/// Allocates service virtual IPs from the service CIDR. An allocation is stable for its key (a
/// service's namespace and name) until released. Fresh addresses are handed out round-robin from
/// after the last one given, so a deleted service's VIP is not reused right away (clients and
/// hosts files may still point at it).
#[derive(Debug, Clone)]
pub struct VipAllocator {
    cidr: Ipv4Net,
    by_key: BTreeMap<(String, String), Ipv4Addr>,
    /// Taken addresses, with the key holding each (`None`: reserved without a key).
    taken: BTreeMap<Ipv4Addr, Option<(String, String)>>,
    /// Where `allocate` looks first: an offset from the first allocatable address.
    next: u32,
}

impl VipAllocator {
    pub fn new(cidr: Ipv4Net) -> Self {
        let cidr = cidr.trunc();
        VipAllocator { cidr, by_key: BTreeMap::new(), taken: BTreeMap::new(), next: 0 }
    }

    /// Whether `ip` may be a VIP: in the CIDR, and neither its network nor broadcast address.
    pub fn is_valid(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(&ip) && ip != self.cidr.network() && ip != self.cidr.broadcast()
    }

    /// Marks `ip` as taken without a key, so `allocate` never hands it out. False when the
    /// address is not valid for this CIDR or already taken.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        if !self.is_valid(ip) || self.taken.contains_key(&ip) {
            return false;
        }
        self.taken.insert(ip, None);
        true
    }

    /// Gives `key` the address `ip` (a service's `spec.clusterIP`), releasing any other address
    /// it held. False (and nothing changed) when `ip` is invalid or held by someone else.
    pub fn assign(&mut self, key: &(String, String), ip: Ipv4Addr) -> bool {
        match self.taken.get(&ip) {
            Some(Some(holder)) if holder == key => return true,
            Some(_) => return false,
            None if !self.is_valid(ip) => return false,
            None => {}
        }
        self.release(key);
        self.taken.insert(ip, Some(key.clone()));
        self.by_key.insert(key.clone(), ip);
        true
    }

    /// The address of `key`: the one it already has, else the next free one (never the network
    /// address, the first host address or the broadcast address). `None` when the CIDR is full.
    pub fn allocate(&mut self, key: &(String, String)) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_key.get(key) {
            return Some(*ip);
        }
        let first = u32::from(self.cidr.network()).checked_add(2)?;
        let last = u32::from(self.cidr.broadcast()).checked_sub(1)?;
        if last < first {
            return None;
        }
        let size = last - first + 1;
        for step in 0..size {
            let offset = (self.next + step) % size;
            let ip = Ipv4Addr::from(first + offset);
            if let btree_map::Entry::Vacant(free) = self.taken.entry(ip) {
                free.insert(Some(key.clone()));
                self.by_key.insert(key.clone(), ip);
                self.next = (offset + 1) % size;
                return Some(ip);
            }
        }
        None
    }

    /// The address `key` holds, if any.
    pub fn get(&self, key: &(String, String)) -> Option<Ipv4Addr> {
        self.by_key.get(key).copied()
    }

    /// Frees the address of `key` (nothing if it has none).
    pub fn release(&mut self, key: &(String, String)) {
        if let Some(ip) = self.by_key.remove(key) {
            self.taken.remove(&ip);
        }
    }
}

/// The `/etc/hosts` of a pod: the localhost lines, the pod's own `IP name`, then one line per
/// service, `VIP <svc>.<ns>.svc.<domain> <svc>.<ns>.svc <svc>.<ns>`, plus the bare `<svc>` for
/// services in the pod's own namespace (what Kubernetes' DNS search path resolves). Services are
/// sorted by namespace and name, so the text depends only on the input set.
pub fn render_hosts(
    pod_namespace: &str,
    pod_name: &str,
    pod_ip: Option<IpAddr>,
    services: &[ServiceState],
    domain: &str,
) -> String {
    let mut text = String::from(
        "# Managed by ambient local: the pod's name and the mesh's services.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = pod_ip {
        text += &format!("{ip}\t{pod_name}\n");
    }
    let mut sorted: Vec<&ServiceState> = services.iter().collect();
    sorted.sort_by(|a, b| (&a.namespace, &a.name, a.cluster_ip).cmp(&(&b.namespace, &b.name, b.cluster_ip)));
    sorted.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
    for service in sorted {
        let (svc, ns) = (&service.name, &service.namespace);
        text += &format!("{}\t{svc}.{ns}.svc.{domain} {svc}.{ns}.svc {svc}.{ns}", service.cluster_ip);
        if ns == pod_namespace {
            text += &format!(" {svc}");
        }
        text.push('\n');
    }
    text
}

/// Writes `text` to `path` in place (truncate and write, never rename: the file is bind-mounted
/// over the pods' `/etc/hosts`, and a renamed-over file would leave them with the old inode).
/// Unchanged content is not rewritten, so readers see no needless empty moment. Creates the
/// parent folders.
/// The `/etc/resolv.conf` of a pod: Kubernetes' search path, and no reachable name server (there
/// is no cluster DNS; names resolve from the hosts file), so a lookup that misses fails at once
/// instead of waiting for the host's name servers, which a pod cannot reach.
pub fn render_resolv(pod_namespace: &str, domain: &str) -> String {
    format!(
        "# ambient local: names come from /etc/hosts; no name server is reachable from a pod\nnameserver 127.0.0.1\nsearch {pod_namespace}.svc.{domain} svc.{domain} {domain}\noptions ndots:5 timeout:1 attempts:1\n"
    )
}

pub fn write_hosts(path: &Path, text: &str) -> Result<(), LocalError> {
    if std::fs::read(path).is_ok_and(|current| current == text.as_bytes()) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(LocalError::io(format!("creating folder {}", parent.display())))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(LocalError::io(format!("opening hosts file {}", path.display())))?;
    file.write_all(text.as_bytes()).map_err(LocalError::io(format!("writing hosts file {}", path.display())))
}

/// `ip netns add NAME`, then `lo` up inside it (a pod needs its loopback, and no CNI plugin of
/// the conflist brings it up). Errors name the namespace.
pub fn add_netns(name: &str) -> Result<Netns, LocalError> {
    run_ip(&["netns", "add", name])?;
    let opened = run_ip(&["-n", name, "link", "set", "lo", "up"]).and_then(|()| open_netns(name));
    if opened.is_err() {
        let _ = delete_netns(name);
    }
    opened
}

/// `ip netns delete NAME`. A namespace that does not exist is not an error (deleting is part of
/// cleanups that may run twice).
pub fn delete_netns(name: &str) -> Result<(), LocalError> {
    if !Path::new(NETNS_DIR).join(name).exists() {
        return Ok(());
    }
    run_ip(&["netns", "delete", name])
}

/// Opens the named namespace `/var/run/netns/NAME`.
pub fn open_netns(name: &str) -> Result<Netns, LocalError> {
    let path = Path::new(NETNS_DIR).join(name);
    Netns::open(&path).map_err(LocalError::io(format!("opening network namespace {name}")))
}

/// Runs `ip ARGS`; a failure carries the command line and `ip`'s own message.
fn run_ip(args: &[&str]) -> Result<(), LocalError> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(LocalError::io(format!("running `ip {}` (is iproute2 installed?)", args.join(" "))))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LocalError::Failed(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Sets `net.ipv4.ip_forward=1` in `netns`. `/proc/sys/net` shows the namespace of the thread
/// that opens it, so a short-lived thread enters the namespace and writes it there; no other
/// thread changes namespace, and no external `sysctl` tool is needed.
fn enable_ip_forward(netns: &Netns) -> std::io::Result<()> {
    let netns = netns.clone();
    std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
    })
    .join()
    .map_err(|_| std::io::Error::other("the thread setting ip_forward panicked"))?
}
