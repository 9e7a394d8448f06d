//! TEMPORARY stand-in for the lead's `cni::iptables` (contract API only), replaced at `git merge cni`.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::sys::netns::Netns;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectConfig {
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub hbone_port: u16,
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
            probe_source: Ipv4Addr::new(169, 254, 7, 127),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("iptables: {0}")]
pub struct IptablesError(String);

pub fn rules(c: &RedirectConfig) -> String {
    format!(
        "*nat\n:AMBIENT_PREROUTING - [0:0]\n:AMBIENT_OUTPUT - [0:0]\n-F AMBIENT_PREROUTING\n-F AMBIENT_OUTPUT\n\
         -A AMBIENT_PREROUTING -p tcp -s {probe}/32 -j RETURN\n\
         -A AMBIENT_PREROUTING -p tcp --dport {hbone} -j RETURN\n\
         -A AMBIENT_PREROUTING -p tcp ! -d 127.0.0.0/8 -j REDIRECT --to-ports {inb}\n\
         -A AMBIENT_OUTPUT -o lo -j RETURN\n\
         -A AMBIENT_OUTPUT -p tcp -m mark --mark {mark} -j RETURN\n\
         -A AMBIENT_OUTPUT -p tcp -j REDIRECT --to-ports {out}\nCOMMIT\n",
        probe = c.probe_source,
        hbone = c.hbone_port,
        inb = c.inbound_port,
        mark = c.mark,
        out = c.outbound_port
    )
}

fn run(netns: &Netns, program: &str, args: &[&str], input: &str) -> Result<String, IptablesError> {
    let fd = netns.as_fd().as_raw_fd();
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setns is async-signal-safe; fd stays open (borrowed from netns) until exec.
    unsafe {
        command.pre_exec(move || {
            if nix::libc::setns(fd, nix::libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| IptablesError(format!("{program}: {e}")))?;
    child.stdin.take().unwrap().write_all(input.as_bytes()).map_err(|e| IptablesError(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| IptablesError(e.to_string()))?;
    if !out.status.success() {
        return Err(IptablesError(format!("{program}: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn installed(netns: &Netns) -> Result<bool, IptablesError> {
    Ok(run(netns, "iptables-save", &["-t", "nat"], "")?.contains(":AMBIENT_OUTPUT"))
}

pub fn install(netns: &Netns, config: &RedirectConfig) -> Result<(), IptablesError> {
    let mut input = rules(config);
    if !installed(netns)? {
        input = input.replace("COMMIT\n", "-A PREROUTING -j AMBIENT_PREROUTING\n-A OUTPUT -j AMBIENT_OUTPUT\nCOMMIT\n");
    }
    run(netns, "iptables-restore", &["--noflush"], &input).map(|_| ())
}

pub fn remove(netns: &Netns) -> Result<(), IptablesError> {
    if !installed(netns)? {
        return Ok(());
    }
    let input = "*nat\n-D PREROUTING -j AMBIENT_PREROUTING\n-D OUTPUT -j AMBIENT_OUTPUT\n-F AMBIENT_PREROUTING\n\
                 -F AMBIENT_OUTPUT\n-X AMBIENT_PREROUTING\n-X AMBIENT_OUTPUT\nCOMMIT\n";
    run(netns, "iptables-restore", &["--noflush"], input).map(|_| ())
}

pub fn check(netns: &Netns, _config: &RedirectConfig) -> Result<(), IptablesError> {
    if installed(netns)? { Ok(()) } else { Err(IptablesError("AMBIENT chains missing".into())) }
}
