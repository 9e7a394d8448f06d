//! `ambient install`, `uninstall` and `verify-install` as a user runs them, against the
//! recorded-response API server (`support::apiserver`). The objects named here
//! (ambient-controlplane, ztunnel in istio-system) are what the ambient profile renders.

mod support;

use assert_cmd::Command;
use support::apiserver::{ApiServer, Rollout, TOKEN, write_kubeconfig};
use tempfile::TempDir;

const COMMANDS: [&[&str]; 3] = [&["install", "-y"], &["uninstall", "-y"], &["verify-install"]];

/// The binary with no ambient logging settings and no in-cluster configuration.
fn ambient(home: &TempDir) -> Command {
    let mut cmd = Command::cargo_bin("ambient").expect("binary is built");
    cmd.env_remove("RUST_LOG")
        .env_remove("AMBIENT_LOG_FORMAT")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("KUBECONFIG")
        .env("HOME", home.path())
        .write_stdin("");
    cmd
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running ambient");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Fails unless the command failed with exactly one `error: ` line on stderr that starts with
/// `prefix`, and printed no credentials.
fn assert_one_error_line(out: &Output, prefix: &str) {
    assert_eq!(out.code, Some(1), "exit status; stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr is not one line: {:?}", out.stderr);
    assert!(lines[0].starts_with(&format!("error: {prefix}")), "stderr: {:?}", out.stderr);
    assert!(!out.stderr.contains(TOKEN) && !out.stdout.contains(TOKEN), "a credential was printed");
}

#[test]
fn a_missing_kubeconfig_is_one_clear_line() {
    let home = tempfile::tempdir().expect("tempdir");
    for args in COMMANDS {
        let out = run(ambient(&home).args(args).env("KUBECONFIG", "/nonexistent"));
        assert_one_error_line(&out, "no kubeconfig found: KUBECONFIG=/nonexistent names no file that exists");
        assert_eq!(out.stdout, "", "{args:?}");
    }
    // No KUBECONFIG and no ~/.kube/config either.
    let out = run(ambient(&home).args(["install", "-y"]));
    assert_one_error_line(&out, &format!("no kubeconfig found: {}/.kube/config does not exist", home.path().display()));
    let out = run(ambient(&home).args(["install", "-y", "--kubeconfig", "/nonexistent/config"]));
    assert_one_error_line(&out, "no kubeconfig at /nonexistent/config (given with --kubeconfig)");
}

#[test]
fn an_unreachable_cluster_is_one_clear_line() {
    let home = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("https://127.0.0.1:{port}");
    let kubeconfig = write_kubeconfig(home.path(), &url);
    for args in COMMANDS {
        let out = run(ambient(&home).args(args).arg("--kubeconfig").arg(&kubeconfig));
        assert_one_error_line(&out, &format!("cannot reach the Kubernetes API server at {url}: connection refused"));
        assert_eq!(
            out.stderr.trim_end(),
            format!("error: cannot reach the Kubernetes API server at {url}: connection refused")
        );
    }
}

#[test]
fn without_y_and_without_a_terminal_install_refuses_after_showing_the_plan() {
    let home = tempfile::tempdir().expect("tempdir");
    let server = ApiServer::start();
    let kubeconfig = server.kubeconfig(home.path());
    let out = run(ambient(&home).arg("install").arg("--kubeconfig").arg(&kubeconfig));
    assert_one_error_line(&out, "not asking for confirmation: standard input is not a terminal; pass -y to proceed");
    assert!(out.stdout.contains("ambient-controlplane"), "the plan was not shown: {}", out.stdout);
    assert!(server.requests().iter().all(|r| !r.is_write()), "something was changed");
    assert_eq!(server.objects(), Vec::<serde_json::Value>::new());
}

#[test]
fn install_verify_uninstall_verify() {
    let home = tempfile::tempdir().expect("tempdir");
    let server = ApiServer::start();
    let kubeconfig = server.kubeconfig(home.path());
    let kube = ["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];

    let out = run(ambient(&home).args(["install", "-y", "--profile=ambient"]).args(kube));
    assert_eq!(out.code, Some(0), "install failed: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Deployment istio-system/ambient-controlplane: 2/2 ready"), "{}", out.stdout);
    assert!(out.stdout.contains("DaemonSet istio-system/ztunnel: 3/3 ready"), "{}", out.stdout);
    assert!(out.stdout.contains("Installed ambient in"), "{}", out.stdout);
    let applies: Vec<_> = server.requests().into_iter().filter(|r| r.is_apply()).collect();
    assert!(!applies.is_empty() && applies.iter().all(|r| r.param("fieldManager") == Some("ambient")));
    assert!(!out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN));

    let out = run(ambient(&home).args(["verify-install", "--profile=ambient"]).args(kube));
    assert_eq!(out.code, Some(0), "verify-install after install: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Verified: all"), "{}", out.stdout);

    let out = run(ambient(&home).args(["uninstall", "-y"]).args(kube));
    assert_eq!(out.code, Some(0), "uninstall failed: {}{}", out.stdout, out.stderr);
    // Without --purge only the CRDs (and with them users' policies) stay, still labelled.
    let left = server.labelled("app.kubernetes.io/managed-by", "ambient");
    assert_eq!(left.len(), 8, "{left:?}");
    assert!(left.iter().all(|o| o.starts_with("CustomResourceDefinition")), "{left:?}");
    assert!(server.get("Namespace", None, "istio-system").is_some(), "the namespace is kept without --purge");

    let out = run(ambient(&home).args(["verify-install", "--profile=ambient"]).args(kube));
    assert_eq!(out.code, Some(1), "verify-install after uninstall: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Deployment istio-system/ambient-controlplane: missing"), "{}", out.stdout);
    assert!(out.stdout.contains("DaemonSet istio-system/ztunnel: missing"), "{}", out.stdout);

    let out = run(ambient(&home).args(["uninstall", "-y", "--purge"]).args(kube));
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert_eq!(server.labelled("app.kubernetes.io/managed-by", "ambient"), Vec::<String>::new());
    // The namespace was released by the first uninstall, so it no longer counts as ambient's.
    assert!(server.get("Namespace", None, "istio-system").is_some());

    let out = run(ambient(&home).args(["uninstall", "-y", "--purge"]).args(kube));
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Nothing to uninstall"), "{}", out.stdout);
}

#[test]
fn a_failing_rollout_exits_non_zero_naming_the_pod_and_reason() {
    let home = tempfile::tempdir().expect("tempdir");
    let server = ApiServer::start();
    server.set_rollout(Rollout::Never);
    server.insert_fixture("pod-ztunnel-crashloop.json");
    let kubeconfig = server.kubeconfig(home.path());
    let out = run(ambient(&home)
        .args(["install", "-y", "--profile=ambient", "--wait-timeout=30s", "--kubeconfig"])
        .arg(&kubeconfig));
    assert_one_error_line(
        &out,
        "rollout of DaemonSet istio-system/ztunnel failed: pod ztunnel-x7k2p: container ztunnel: CrashLoopBackOff:",
    );
    assert!(out.stderr.contains("exit code 1"), "{}", out.stderr);
}

#[test]
fn dry_run_needs_no_confirmation_and_changes_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let server = ApiServer::start();
    let kubeconfig = server.kubeconfig(home.path());
    let out = run(ambient(&home).args(["install", "--dry-run", "--kubeconfig"]).arg(&kubeconfig));
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Dry run: nothing was changed"), "{}", out.stdout);
    let writes: Vec<_> = server.requests().into_iter().filter(|r| r.is_write()).collect();
    assert!(!writes.is_empty() && writes.iter().all(|r| r.param("dryRun") == Some("All")));
    assert_eq!(server.objects(), Vec::<serde_json::Value>::new());
}

#[test]
fn a_zero_wait_timeout_is_a_usage_error() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(ambient(&home).args(["install", "--wait-timeout", "0s"]));
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("the wait must be positive"), "{}", out.stderr);
}
