use clap::CommandFactory;

use super::Cli;

/// Every command and subcommand, as its full path (`waypoint apply`).
fn all_commands() -> Vec<(String, clap::Command)> {
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let path = format!("{prefix} {}", sub.get_name()).trim().to_string();
            out.push((path.clone(), sub.clone()));
            walk(&path, sub, out);
        }
    }
    let mut out = Vec::new();
    walk("", &Cli::command(), &mut out);
    out
}

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_has_an_example_in_its_help() {
    let missing: Vec<String> = all_commands()
        .into_iter()
        .filter(|(_, cmd)| {
            !cmd.get_after_help().is_some_and(|h| {
                let h = h.to_string();
                h.contains("Examples:\n") && h.lines().any(|l| l.starts_with("  ") && l.contains("ambient "))
            })
        })
        .map(|(path, _)| path)
        .collect();
    assert!(missing.is_empty(), "commands without an example in --help: {missing:?}");
}

#[test]
fn every_issue_command_exists() {
    let paths: Vec<String> = all_commands().into_iter().map(|(p, _)| p).collect();
    for want in [
        "install",
        "uninstall",
        "manifest generate",
        "profile list",
        "profile dump",
        "analyze",
        "proxy-status",
        "ztunnel-config",
        "waypoint apply",
        "waypoint list",
        "waypoint delete",
        "waypoint run",
        "local up",
        "local down",
        "local status",
        "local exec",
        "local logs",
        "completions",
        "version",
        "controlplane",
        "ztunnel",
        "cni",
        "cni plugin",
    ] {
        assert!(paths.iter().any(|p| p == want), "missing command `ambient {want}`; have {paths:?}");
    }
}
