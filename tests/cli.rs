//! The binary as a user drives it: help, version, unbuilt commands, analyze.

use std::fs;

use assert_cmd::Command;
use predicates::prelude::*;

fn ambient() -> Command {
    let mut cmd = Command::cargo_bin("ambient").expect("binary is built");
    cmd.env_remove("RUST_LOG").env_remove("AMBIENT_LOG_FORMAT");
    cmd
}

/// Runs `ambient analyze -f - -o json` on `input`; checks the exit code and summary line, and
/// returns the findings.
fn analyze_stdin_json(input: &str, code: i32, summary: &str) -> Vec<serde_json::Value> {
    let out = ambient()
        .args(["analyze", "-f", "-", "-o", "json"])
        .write_stdin(input)
        .assert()
        .code(code)
        .stderr(predicate::str::contains(summary))
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).expect("analyze -o json prints JSON")
}

#[test]
fn help_lists_every_command() {
    let out = ambient().arg("--help").assert().success().get_output().stdout.clone();
    let help = String::from_utf8(out).unwrap();
    for cmd in [
        "install",
        "uninstall",
        "verify-install",
        "manifest",
        "profile",
        "analyze",
        "proxy-status",
        "ztunnel-config",
        "waypoint",
        "local",
        "completions",
        "version",
        "controlplane",
        "ztunnel",
        "cni",
    ] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(&format!("{cmd} "))), "--help lacks {cmd}:\n{help}");
    }
}

#[test]
fn unbuilt_commands_exit_2_and_say_so() {
    let cases: &[&[&str]] = &[
        &["proxy-status"],
        &["ztunnel-config"],
        &["waypoint", "apply", "-n", "default"],
        &["waypoint", "list"],
        &["waypoint", "delete", "waypoint"],
        &["waypoint", "run"],
    ];
    for args in cases {
        ambient()
            .args(*args)
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains("not implemented yet"));
    }
}

#[test]
fn version_prints_version_and_commit() {
    let out = ambient().arg("version").assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(&format!("ambient {} (commit ", env!("CARGO_PKG_VERSION"))), "{text}");

    let out = ambient().args(["version", "-o", "json"]).assert().success().get_output().stdout.clone();
    let json: serde_json::Value = serde_json::from_slice(&out).expect("version -o json is JSON");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    let commit = json["commit"].as_str().expect("commit is a string");
    assert!(!commit.is_empty());
}

#[test]
fn bad_log_level_is_an_error_naming_it() {
    ambient()
        .args(["--log-level", "info,=[", "version"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid --log-level"));
}

#[test]
fn analyze_clean_folder_reports_nothing() {
    ambient()
        .args(["analyze", "-f", "examples/shop"])
        .assert()
        .success()
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("0 errors"));
    let out =
        ambient().args(["analyze", "-f", "examples/shop", "-o", "json"]).assert().success().get_output().stdout.clone();
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    assert!(findings.is_empty(), "{findings:?}");
}

#[test]
fn analyze_reports_the_broken_document_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("good.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n").unwrap();
    let broken = dir.path().join("broken.yaml");
    fs::write(
        &broken,
        "# a policy with a wrong enum value\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: shop\nspec:\n  action: MAYBE\n",
    )
    .unwrap();

    let out =
        ambient().args(["analyze", "-o", "json", "-f"]).arg(dir.path()).assert().code(1).get_output().stdout.clone();
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f["code"], "AMB0004");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["file"], broken.display().to_string());
    assert_eq!(f["line"], 8);
    assert_eq!(f["object"], "AuthorizationPolicy shop/p");
    assert_eq!(f["field"], "spec.action");
    assert!(f["message"].as_str().unwrap().contains("MAYBE"), "{f}");

    // The table names the same file and line.
    ambient()
        .args(["analyze", "-f"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!("{}:8", broken.display())).and(predicate::str::contains("AMB0004")));
}

#[test]
fn analyze_reads_stdin_and_yaml_output() {
    let out = ambient()
        .args(["analyze", "-f", "-", "-o", "yaml"])
        .write_stdin("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 70000\n")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("code: AMB0005"), "{text}");
    assert!(text.contains("file: <stdin>"), "{text}");
    assert!(text.contains("line: 7"), "{text}");
    assert!(text.contains("field: spec.ports[0].port"), "{text}");
}

#[test]
fn analyze_thresholds_control_output_and_exit() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("d.yaml"), "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n").unwrap();
    // An ignored kind is info: hidden by default, and not a failure.
    ambient().args(["analyze", "-f"]).arg(dir.path()).assert().success().stdout(predicate::str::is_empty());
    ambient()
        .args(["analyze", "--output-threshold", "info", "--failure-threshold", "info", "-f"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("AMB0007"));
}

#[test]
fn analyze_missing_path_is_a_clear_error() {
    ambient()
        .args(["analyze", "-f", "/nonexistent/ambient-config"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("/nonexistent/ambient-config does not exist"));
}

#[test]
fn analyze_docs_list_every_code() {
    let doc = fs::read_to_string("docs/analyze.md").unwrap();
    for code in ambient::config::Code::ALL {
        assert!(doc.contains(&format!("| {} | {} |", code, code.severity())), "docs/analyze.md lacks {code}");
    }
}

#[test]
fn analyze_without_files_or_cluster_says_what_is_missing() {
    ambient()
        .arg("analyze")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("connecting to Kubernetes")
                .and(predicate::str::contains("/nonexistent/kubeconfig")),
        );
}

/// `kubectl get ... -o yaml` prints a `v1` `List`: its items are analyzed one by one, with the
/// lines of the original text.
#[test]
fn analyze_expands_kubectl_lists() {
    let list = "\
apiVersion: v1
items:
- apiVersion: security.istio.io/v1
  kind: AuthorizationPolicy
  metadata:
    name: good
    namespace: shop
  spec:
    action: DENY
- apiVersion: security.istio.io/v1
  kind: AuthorizationPolicy
  metadata:
    name: bad
    namespace: shop
  spec:
    rules:
    - from:
      - source:
          ipBlocks: [\"10.0.0.0/40\"]
kind: List
metadata:
  resourceVersion: \"\"
";
    let findings = analyze_stdin_json(list, 1, "Analyzed 1 object");
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["object"], "AuthorizationPolicy shop/bad");
    assert_eq!(findings[0]["line"], 19);
    assert_eq!(findings[0]["field"], "spec.rules[0].from[0].source.ipBlocks[0]");

    // The same list as JSON (`kubectl get -o json`).
    let json = r#"{"apiVersion":"v1","kind":"List","items":[
      {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}},
      {"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"shop"},"spec":{"ports":[{"port":0}]}}]}"#;
    let findings = analyze_stdin_json(json, 1, "Analyzed 1 object");
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["field"], "spec.ports[0].port");
}

#[test]
fn controlplane_needs_a_ca_root_and_says_how_to_give_one() {
    ambient()
        .args(["controlplane", "--config-source", "files", "--config", "examples/shop"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--state-dir").and(predicate::str::contains("--ca-cert")));
}

/// The real binary: starts, becomes ready on its debug port, keeps its root, stops on SIGTERM.
#[test]
fn controlplane_binary_serves_until_terminated() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (xds, debug) = (free(), free());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ambient"))
        .args(["controlplane", "--config-source", "files", "--config", "examples/shop", "--state-dir"])
        .arg(dir.path())
        .args(["--xds-address", &format!("127.0.0.1:{xds}"), "--debug-address", &format!("127.0.0.1:{debug}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", debug)).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let ready = loop {
        match get("/healthz/ready") {
            Some(response) if response.starts_with("HTTP/1.1 200") => break true,
            _ if std::time::Instant::now() > deadline => break false,
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    let registry = get("/debug/registryz").unwrap_or_default();
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(ready, "the control plane became ready");
    assert!(registry.contains("\"workloads\""), "{registry}");
    assert!(dir.path().join("ca/root-cert.pem").exists(), "the generated root is kept in the state dir");
    assert!(status.success(), "SIGTERM stops it cleanly: {status:?}");
}

#[test]
fn ztunnel_names_missing_required_flags() {
    ambient()
        .args(["ztunnel", "--root-cert", "/nonexistent/root.pem"])
        .env_remove("NODE_NAME")
        .assert()
        .failure()
        .stderr(predicate::str::contains("--node-name"));
    ambient()
        .args(["ztunnel", "--node-name", "node-1", "--root-cert", "/nonexistent/root.pem"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--root-cert /nonexistent/root.pem"));
}

/// The real binaries: a control plane and a ztunnel against it. The ztunnel syncs xDS, turns
/// ready, dumps its config on the admin port, serves metrics, and stops on SIGTERM.
#[test]
fn ztunnel_binary_syncs_from_the_controlplane_and_serves_its_ports() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "zt-token istio-system/ztunnel node=node-1\n").unwrap();
    std::fs::write(dir.path().join("zt-token"), "zt-token\n").unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (xds, debug, admin, metrics, readiness) = (free(), free(), free(), free(), free());
    let mut controlplane = std::process::Command::new(env!("CARGO_BIN_EXE_ambient"))
        .args(["controlplane", "--config-source", "files", "--config", "examples/shop", "--state-dir"])
        .arg(dir.path())
        .arg("--tokens-file")
        .arg(dir.path().join("tokens"))
        .args(["--xds-address", &format!("127.0.0.1:{xds}"), "--debug-address", &format!("127.0.0.1:{debug}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |port: u16, path: &str| -> Option<String> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    };
    let wait_ready = |port: u16| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match get(port, "/healthz/ready") {
                Some(response) if response.starts_with("HTTP/1.1 200") => return true,
                _ if std::time::Instant::now() > deadline => return false,
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    };
    let controlplane_ready = wait_ready(debug);
    let mut ztunnel = std::process::Command::new(env!("CARGO_BIN_EXE_ambient"))
        .args(["ztunnel", "--xds-address", &format!("https://127.0.0.1:{xds}"), "--server-name", "localhost"])
        .arg("--root-cert")
        .arg(dir.path().join("ca/root-cert.pem"))
        .arg("--token-file")
        .arg(dir.path().join("zt-token"))
        .args(["--node-name", "node-1", "--zds-socket"])
        .arg(dir.path().join("zds.sock"))
        .args(["--admin-port", &admin.to_string(), "--metrics-port", &metrics.to_string()])
        .args(["--readiness-port", &readiness.to_string(), "--worker-threads", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ztunnel_ready = controlplane_ready && wait_ready(readiness);
    let dump = get(admin, "/config_dump").unwrap_or_default();
    let scrape = get(metrics, "/metrics").unwrap_or_default();
    for child in [&ztunnel, &controlplane] {
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
    let ztunnel_status = ztunnel.wait().unwrap();
    let _ = controlplane.wait();
    assert!(controlplane_ready, "the control plane became ready");
    assert!(ztunnel_ready, "the ztunnel synced xDS and became ready");
    assert!(dump.contains("Kubernetes//Pod/shop/"), "config_dump lists the workloads: {dump}");
    assert!(!dump.contains("PRIVATE KEY"), "no private key in the config dump");
    assert!(scrape.contains("ambient_ztunnel_xds_connected"), "{scrape}");
    assert!(ztunnel_status.success(), "SIGTERM stops the ztunnel cleanly: {ztunnel_status:?}");
}
