//! The in-pod redirection: rules inside an enrolled pod's network namespace that send its TCP
//! through ztunnel's in-pod listeners.
//!
//! - outbound TCP -> 15001, except connections ztunnel itself opens (they carry its mark) and
//!   loopback;
//! - inbound TCP -> 15006, except HBONE (15008, which ztunnel terminates itself), loopback, and
//!   node health probes (see below).
//!
//! Everything lives in two chains of our own in the `nat` table (`AMBIENT_PREROUTING`,
//! `AMBIENT_OUTPUT`), jumped to from the built-in chains, so the rules can be listed and removed
//! exactly. Each change is one `iptables-restore --noflush` transaction (Debian's iptables is the
//! nftables backend), for IPv4 and IPv6 alike, so a pod never has half of it. Installing twice
//! gives the same rules; removing restores the namespace's previous rules.
//!
//! **Health probes.** The kubelet probes a pod from the node. Like Istio, the node side rewrites
//! the source of those probes to the link-local address 169.254.7.127 (SNAT), and the pod's
//! rules let that source through untouched, so probes reach the application directly and keep
//! working whatever the mesh policy. The SNAT belongs to the node agent; this module only knows
//! the address.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Output, Stdio};

use crate::sys::netns::{Netns, command_in};

pub const PREROUTING_CHAIN: &str = "AMBIENT_PREROUTING";
pub const OUTPUT_CHAIN: &str = "AMBIENT_OUTPUT";
/// Source of node health probes as rewritten on the node (Istio's address).
pub const PROBE_SOURCE: Ipv4Addr = Ipv4Addr::new(169, 254, 7, 127);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectConfig {
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub hbone_port: u16,
    /// Mark of ztunnel's own connections (`ztunnel --packet-mark`).
    pub mark: u32,
    pub probe_source: Ipv4Addr,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            outbound_port: 15001,
            inbound_port: 15006,
            hbone_port: 15008,
            mark: 1337,
            probe_source: PROBE_SOURCE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("cannot run {tool} in the pod's network namespace: {source} (is the iptables package installed?)")]
    Spawn { tool: &'static str, source: std::io::Error },
    #[error("{tool} failed in the pod's network namespace: {stderr}")]
    Failed { tool: &'static str, stderr: String },
    #[error("the pod's redirection is not as expected: {0}")]
    Mismatch(String),
}

/// IP family: which tools and which loopback range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    const ALL: [Family; 2] = [Family::V4, Family::V6];

    fn restore(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }

    fn save(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }
}

/// The rules of our two chains for one family (without the `*nat` header or jumps).
fn chain_rules(config: &RedirectConfig, family: Family) -> Vec<String> {
    let (pre, out) = (PREROUTING_CHAIN, OUTPUT_CHAIN);
    let mut rules = Vec::new();
    rules.push(format!("-A {pre} -i lo -j RETURN"));
    if family == Family::V4 {
        rules.push(format!("-A {pre} -s {}/32 -p tcp -j RETURN", config.probe_source));
    }
    rules.push(format!("-A {pre} -p tcp -m tcp --dport {} -j RETURN", config.hbone_port));
    rules.push(format!("-A {pre} -p tcp -j REDIRECT --to-ports {}", config.inbound_port));
    rules.push(format!("-A {out} -m mark --mark {:#x} -j RETURN", config.mark));
    rules.push(format!("-A {out} -d {} -j RETURN", family.loopback()));
    rules.push(format!("-A {out} -p tcp -j REDIRECT --to-ports {}", config.outbound_port));
    rules
}

/// The `iptables-restore` input that installs the IPv4 redirection into an empty `nat` table;
/// what [`install`] applies, shown for documentation and tests.
pub fn rules(config: &RedirectConfig) -> String {
    restore_input(config, Family::V4, &NatState::default())
}

/// What the namespace's `nat` table already has of ours.
#[derive(Debug, Default)]
struct NatState {
    has_chains: bool,
    prerouting_jumps: usize,
    output_jumps: usize,
    /// Our chains' rules as `-S`-style lines.
    chain_rules: Vec<String>,
}

fn parse_nat(saved: &str) -> NatState {
    let mut state = NatState::default();
    for line in saved.lines() {
        if line.starts_with(&format!(":{PREROUTING_CHAIN} ")) || line.starts_with(&format!(":{OUTPUT_CHAIN} ")) {
            state.has_chains = true;
        }
        if line == format!("-A PREROUTING -j {PREROUTING_CHAIN}") {
            state.prerouting_jumps += 1;
        }
        if line == format!("-A OUTPUT -j {OUTPUT_CHAIN}") {
            state.output_jumps += 1;
        }
        if line.starts_with(&format!("-A {PREROUTING_CHAIN} ")) || line.starts_with(&format!("-A {OUTPUT_CHAIN} ")) {
            state.chain_rules.push(line.to_string());
        }
    }
    state
}

fn restore_input(config: &RedirectConfig, family: Family, current: &NatState) -> String {
    let mut text = String::from("*nat\n");
    // Declaring a chain in --noflush mode creates it, or empties it when it exists: the rules
    // below then replace whatever an earlier install left.
    text += &format!(":{PREROUTING_CHAIN} - [0:0]\n:{OUTPUT_CHAIN} - [0:0]\n");
    for rule in chain_rules(config, family) {
        text += &rule;
        text.push('\n');
    }
    // Jumps first in the built-in chains, once.
    if current.prerouting_jumps == 0 {
        text += &format!("-I PREROUTING 1 -j {PREROUTING_CHAIN}\n");
    }
    if current.output_jumps == 0 {
        text += &format!("-I OUTPUT 1 -j {OUTPUT_CHAIN}\n");
    }
    text += "COMMIT\n";
    text
}

fn removal_input(current: &NatState) -> String {
    let mut text = String::from("*nat\n");
    for _ in 0..current.prerouting_jumps {
        text += &format!("-D PREROUTING -j {PREROUTING_CHAIN}\n");
    }
    for _ in 0..current.output_jumps {
        text += &format!("-D OUTPUT -j {OUTPUT_CHAIN}\n");
    }
    text += &format!("-F {PREROUTING_CHAIN}\n-X {PREROUTING_CHAIN}\n-F {OUTPUT_CHAIN}\n-X {OUTPUT_CHAIN}\n");
    text += "COMMIT\n";
    text
}

fn checked(tool: &'static str, output: std::io::Result<Output>) -> Result<Output, IptablesError> {
    let output = output.map_err(|source| IptablesError::Spawn { tool, source })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(IptablesError::Failed { tool, stderr: String::from_utf8_lossy(&output.stderr).trim().to_string() })
    }
}

/// The `nat` table of `netns` as `iptables-save` prints it.
fn saved_nat_text(netns: &Netns, family: Family) -> Result<String, IptablesError> {
    let output = command_in(netns, family.save()).args(["-t", "nat"]).stdin(Stdio::null()).output();
    Ok(String::from_utf8_lossy(&checked(family.save(), output)?.stdout).into_owned())
}

fn saved_nat(netns: &Netns, family: Family) -> Result<NatState, IptablesError> {
    Ok(parse_nat(&saved_nat_text(netns, family)?))
}

fn restore(netns: &Netns, family: Family, input: &str) -> Result<(), IptablesError> {
    let tool = family.restore();
    let mut child = command_in(netns, tool)
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| IptablesError::Spawn { tool, source })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(|source| IptablesError::Spawn { tool, source })?;
    }
    checked(tool, child.wait_with_output())?;
    Ok(())
}

/// Installs (or refreshes) the redirection in `netns`, IPv4 then IPv6. Each family is one
/// transaction; when IPv6 fails, the IPv4 rules are taken out again, so the pod is never left
/// with half of it.
pub fn install(netns: &Netns, config: &RedirectConfig) -> Result<(), IptablesError> {
    for (done, family) in Family::ALL.into_iter().enumerate() {
        let applied = saved_nat(netns, family)
            .and_then(|current| restore(netns, family, &restore_input(config, family, &current)));
        if let Err(error) = applied {
            for undo in &Family::ALL[..done] {
                let _ = remove_family(netns, *undo);
            }
            return Err(error);
        }
    }
    Ok(())
}

fn remove_family(netns: &Netns, family: Family) -> Result<(), IptablesError> {
    let current = saved_nat(netns, family)?;
    if !current.has_chains && current.prerouting_jumps == 0 && current.output_jumps == 0 {
        return Ok(());
    }
    restore(netns, family, &removal_input(&current))
}

/// Removes every rule and chain of ours from `netns`; a namespace without them is left alone.
pub fn remove(netns: &Netns) -> Result<(), IptablesError> {
    let mut first_error = None;
    for family in Family::ALL {
        if let Err(error) = remove_family(netns, family) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Whether our chains exist in `netns` (IPv4).
pub fn installed(netns: &Netns) -> Result<bool, IptablesError> {
    let current = saved_nat(netns, Family::V4)?;
    Ok(current.has_chains && current.prerouting_jumps > 0 && current.output_jumps > 0)
}

/// Checks that `netns` has exactly the redirection `config` describes, for both families; the
/// error names what differs.
pub fn check(netns: &Netns, config: &RedirectConfig) -> Result<(), IptablesError> {
    for family in Family::ALL {
        let current = saved_nat(netns, family)?;
        let name = family.save();
        if current.prerouting_jumps != 1 || current.output_jumps != 1 {
            return Err(IptablesError::Mismatch(format!(
                "{name}: expected one jump each from PREROUTING and OUTPUT, found {} and {}",
                current.prerouting_jumps, current.output_jumps
            )));
        }
        let expected = chain_rules(config, family).len();
        if current.chain_rules.len() != expected {
            return Err(IptablesError::Mismatch(format!(
                "{name}: expected {expected} rules in our chains, found {}: {:?}",
                current.chain_rules.len(),
                current.chain_rules
            )));
        }
        for port in [config.inbound_port, config.outbound_port] {
            let redirect = format!("--to-ports {port}");
            if !current.chain_rules.iter().any(|rule| rule.contains(&redirect)) {
                return Err(IptablesError::Mismatch(format!("{name}: no redirect to port {port}")));
            }
        }
    }
    Ok(())
}

/// The node side of health probes: in the node's namespace, TCP that node processes (the
/// kubelet) open to an enrolled pod leaves with source [`PROBE_SOURCE`], which the pod's rules let
/// through. One chain, `AMBIENT_POSTROUTING`, rewritten whole with the current pod addresses.
pub const NODE_CHAIN: &str = "AMBIENT_POSTROUTING";

fn probe_snat_input(pod_ips: &[Ipv4Addr], probe_source: Ipv4Addr, has_jump: bool) -> String {
    let mut text = format!("*nat\n:{NODE_CHAIN} - [0:0]\n");
    for ip in pod_ips {
        // `--socket-exists`: only connections opened on the node itself (probes), never
        // forwarded pod-to-pod traffic.
        text +=
            &format!("-A {NODE_CHAIN} -d {ip}/32 -p tcp -m owner --socket-exists -j SNAT --to-source {probe_source}\n");
    }
    if !has_jump {
        text += &format!("-I POSTROUTING 1 -j {NODE_CHAIN}\n");
    }
    text += "COMMIT\n";
    text
}

/// Makes node-originated TCP to each of `pod_ips` come from `probe_source` (IPv4), in `node`.
pub fn sync_probe_snat(node: &Netns, pod_ips: &[Ipv4Addr], probe_source: Ipv4Addr) -> Result<(), IptablesError> {
    let saved = saved_nat_text(node, Family::V4)?;
    let has_jump = saved.lines().any(|line| line == format!("-A POSTROUTING -j {NODE_CHAIN}"));
    restore(node, Family::V4, &probe_snat_input(pod_ips, probe_source, has_jump))
}

/// Removes the node-side probe rules from `node`.
pub fn remove_probe_snat(node: &Netns) -> Result<(), IptablesError> {
    let saved = saved_nat_text(node, Family::V4)?;
    if !saved.lines().any(|line| line.starts_with(&format!(":{NODE_CHAIN} "))) {
        return Ok(());
    }
    let jumps = saved.lines().filter(|line| *line == format!("-A POSTROUTING -j {NODE_CHAIN}")).count();
    let mut text = String::from("*nat\n");
    for _ in 0..jumps {
        text += &format!("-D POSTROUTING -j {NODE_CHAIN}\n");
    }
    text += &format!("-F {NODE_CHAIN}\n-X {NODE_CHAIN}\nCOMMIT\n");
    restore(node, Family::V4, &text)
}

#[cfg(test)]
mod tests;
