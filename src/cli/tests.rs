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
        "verify-install",
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

/// `--wait-for-root-cert`: ztunnel waits until the control plane's ConfigMap reaches the mounted
/// file (absent, then empty, then the certificate), instead of failing at start.
#[test]
fn ztunnel_waits_for_the_root_certificate_to_appear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root-cert.pem");
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            std::fs::write(&path, "").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(700));
            std::fs::write(&path, "-----BEGIN CERTIFICATE-----\n").unwrap();
        })
    };
    let started = std::time::Instant::now();
    super::ztunnel::wait_for_file(&path);
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "returned before the file had content");
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    writer.join().unwrap();
}

/// The CNI agent's readiness endpoint answers the kubelet's probe path and nothing else.
#[tokio::test]
async fn cni_readiness_answers_the_probe_path() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(super::cni::serve_ready(listener));
    for (path, status) in [("/healthz/ready", "200"), ("/other", "404")] {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {response}");
    }
}
