//! Needs root: each test works in a fresh, unnamed network namespace.

use super::*;
use crate::sys::testing::fresh_netns;

/// The `nat` table as `tool` prints it, without comments and counters: what "the same rules"
/// means.
fn nat(netns: &Netns, tool: &str) -> Vec<String> {
    let output = command_in(netns, tool).args(["-t", "nat"]).output().expect("run iptables-save");
    assert!(output.status.success(), "{tool}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split(" [").next().unwrap_or(line).to_string())
        .collect()
}

fn rules_only(lines: &[String]) -> Vec<String> {
    lines.iter().filter(|l| l.starts_with("-A") || (l.starts_with(':') && l.contains("AMBIENT"))).cloned().collect()
}

#[test]
fn rules_redirect_outbound_and_inbound_with_the_exceptions() {
    let text = rules(&RedirectConfig::default());
    for expected in [
        ":AMBIENT_PREROUTING - [0:0]",
        "-A AMBIENT_PREROUTING -i lo -j RETURN",
        "-A AMBIENT_PREROUTING -s 169.254.7.127/32 -p tcp -j RETURN",
        "-A AMBIENT_PREROUTING -p tcp -m tcp --dport 15008 -j RETURN",
        "-A AMBIENT_PREROUTING -p tcp -j REDIRECT --to-ports 15006",
        "-A AMBIENT_OUTPUT -m mark --mark 0x539 -j RETURN",
        "-A AMBIENT_OUTPUT -d 127.0.0.0/8 -j RETURN",
        "-A AMBIENT_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
        "-I PREROUTING 1 -j AMBIENT_PREROUTING",
        "-I OUTPUT 1 -j AMBIENT_OUTPUT",
        "COMMIT",
    ] {
        assert!(text.lines().any(|line| line == expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn install_is_idempotent_checkable_and_removal_restores_the_namespace() {
    let netns = fresh_netns();
    // Someone else's rule, which must survive both install and removal.
    let status = command_in(&netns, "iptables")
        .args(["-t", "nat", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "RETURN"])
        .status()
        .unwrap();
    assert!(status.success());
    let before_v4 = rules_only(&nat(&netns, "iptables-save"));
    let before_v6 = rules_only(&nat(&netns, "ip6tables-save"));
    assert!(!installed(&netns).unwrap());
    assert!(check(&netns, &RedirectConfig::default()).is_err(), "check fails before install");

    let config = RedirectConfig::default();
    install(&netns, &config).unwrap();
    assert!(installed(&netns).unwrap());
    check(&netns, &config).unwrap();
    let once = (nat(&netns, "iptables-save"), nat(&netns, "ip6tables-save"));
    assert!(once.0.iter().any(|l| l == "-A AMBIENT_OUTPUT -p tcp -j REDIRECT --to-ports 15001"), "{once:?}");
    assert!(once.1.iter().any(|l| l == "-A AMBIENT_OUTPUT -d ::1/128 -j RETURN"), "IPv6 too: {once:?}");
    assert!(once.0.iter().any(|l| l.contains("--dport 9 -j RETURN")), "the foreign rule is kept");

    install(&netns, &config).unwrap();
    let twice = (nat(&netns, "iptables-save"), nat(&netns, "ip6tables-save"));
    assert_eq!(once, twice, "installing twice gives the same rules");

    remove(&netns).unwrap();
    assert!(!installed(&netns).unwrap());
    assert_eq!(rules_only(&nat(&netns, "iptables-save")), before_v4, "removal leaves IPv4 as it was");
    assert_eq!(rules_only(&nat(&netns, "ip6tables-save")), before_v6, "removal leaves IPv6 as it was");
    remove(&netns).unwrap();
}

#[test]
fn check_names_what_differs() {
    let netns = fresh_netns();
    install(&netns, &RedirectConfig::default()).unwrap();
    let other = RedirectConfig { outbound_port: 16001, ..RedirectConfig::default() };
    let error = check(&netns, &other).unwrap_err().to_string();
    assert!(error.contains("no redirect to port 16001"), "{error}");
    let status =
        command_in(&netns, "iptables").args(["-t", "nat", "-D", "OUTPUT", "-j", "AMBIENT_OUTPUT"]).status().unwrap();
    assert!(status.success());
    let error = check(&netns, &RedirectConfig::default()).unwrap_err().to_string();
    assert!(error.contains("found 1 and 0"), "{error}");
}
