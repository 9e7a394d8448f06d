//! Teardown against real namespaces (needs root). Every namespace is created here with a
//! throwaway mesh prefix and every process is a `sleep` started here; guards remove both even
//! when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::*;
use crate::local::state::{ComponentKind, ComponentState, ContainerState, Phase, PodState};
use crate::sys::netns::command_in;

/// Named namespaces made with `ip netns add`, deleted on drop if still there.
struct NetnsGuard(Vec<String>);

impl NetnsGuard {
    fn add(names: &[&str]) -> Self {
        let guard = NetnsGuard(names.iter().map(|n| n.to_string()).collect());
        for name in names {
            let status = Command::new("ip").args(["netns", "add", name]).status().expect("run `ip netns add`");
            assert!(status.success(), "ip netns add {name}: {status}");
        }
        guard
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        for name in &self.0 {
            if netns_path(name).exists() {
                let _ = Command::new("ip").args(["netns", "delete", name]).status();
            }
        }
    }
}

/// A child process of the test, killed and reaped on drop.
struct ChildGuard(Child);

impl ChildGuard {
    fn sleep() -> Self {
        ChildGuard(Command::new("sleep").arg("1000").spawn().expect("spawn sleep"))
    }
    fn sleep_in(netns: &str) -> Self {
        let netns = Netns::open(&netns_path(netns)).expect("open the test namespace");
        ChildGuard(command_in(&netns, "sleep").arg("1000").spawn().expect("spawn sleep in the namespace"))
    }
    fn record(&self) -> ProcessRecord {
        ProcessRecord::of(self.0.id()).expect("record the child")
    }
    /// Whether it has exited (reaping it, so that its PID is not a zombie any more).
    fn exited(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_some()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Only our own child: kill by handle, then reap.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn mesh_dir(tmp: &tempfile::TempDir, name: &str) -> StateDir {
    let dir = StateDir::new(&tmp.path().join(name)).expect("state dir");
    std::fs::create_dir_all(dir.logs_dir()).expect("create the state folder");
    dir
}

fn state(dir: &StateDir) -> MeshState {
    MeshState {
        id: dir.mesh_id(),
        state_dir: dir.root().to_path_buf(),
        phase: Phase::Ready,
        runtime: None,
        paths: vec![],
        nodes: vec!["node-1".into()],
        netns_prefix: dir.netns_prefix(),
        cluster_netns: dir.cluster_netns(),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/16".into(),
        components: vec![],
        pods: vec![],
        services: vec![],
        problems: vec![],
    }
}

fn component(name: &str, process: Option<ProcessRecord>) -> ComponentState {
    ComponentState {
        name: name.into(),
        kind: ComponentKind::Controlplane,
        node: None,
        process,
        restarts: 0,
        log: PathBuf::from("/nonexistent"),
        metrics_url: None,
        ready_url: None,
        admin_url: None,
    }
}

fn pod(dir: &StateDir, name: &str, process: Option<ProcessRecord>) -> PodState {
    PodState {
        namespace: "default".into(),
        name: name.into(),
        node: "node-1".into(),
        ip: None,
        netns: Some(dir.pod_netns("default", name)),
        enrolled: true,
        ready: true,
        phase: "Running".into(),
        message: None,
        containers: vec![ContainerState {
            name: "main".into(),
            process,
            restarts: 0,
            last_exit: None,
            log: dir.container_log("default", name, "main"),
        }],
    }
}

#[test]
fn teardown_from_the_state_file_removes_everything_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mesh_dir(&tmp, "mesh");
    let cluster = dir.cluster_netns();
    let pod_ns = dir.pod_netns("default", "a");
    let _namespaces = NetnsGuard::add(&[&cluster, &pod_ns]);

    let mut in_pod = ChildGuard::sleep_in(&pod_ns);
    let mut runtime = ChildGuard::sleep();
    let mut controlplane = ChildGuard::sleep();
    let mut bystander = ChildGuard::sleep();

    let mut recorded = state(&dir);
    recorded.runtime = Some(runtime.record());
    recorded.components = vec![component("controlplane", Some(controlplane.record())), component("cni/node-1", None)];
    recorded.pods = vec![pod(&dir, "a", Some(in_pod.record()))];
    dir.save(&recorded).unwrap();
    assert!(!leftovers(&dir).is_empty());

    let report = teardown(&dir).expect("teardown");
    assert!(report.found && report.runtime_stopped && report.state_dir_removed, "{report:?}");
    // The pod's process is both recorded and found in its namespace: counted once.
    assert_eq!(report.processes, 2, "{report:?}");
    let mut expected = vec![cluster.clone(), pod_ns.clone()];
    expected.sort();
    assert_eq!(report.namespaces, expected);
    assert!(report.warnings.is_empty(), "{report:?}");

    assert!(runtime.exited() && controlplane.exited() && in_pod.exited(), "every recorded process is stopped");
    assert!(!bystander.exited(), "a process not recorded, in the host namespace, is never touched");
    assert!(!netns_path(&cluster).exists() && !netns_path(&pod_ns).exists());
    assert!(!dir.root().exists());
    let left = leftovers_of(&dir, Some(&recorded));
    assert!(left.is_empty(), "{left}");

    assert_eq!(teardown(&dir).expect("second teardown"), TeardownReport::default());
}

#[test]
fn teardown_without_a_state_file_finds_namespaces_by_prefix_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mesh_dir(&tmp, "crashed");
    let other = mesh_dir(&tmp, "other");
    let ours = dir.pod_netns("default", "b");
    let theirs = other.pod_netns("default", "b");
    let _namespaces = NetnsGuard::add(&[&ours, &theirs]);
    let mut in_ours = ChildGuard::sleep_in(&ours);
    let mut in_theirs = ChildGuard::sleep_in(&theirs);
    assert_eq!(leftovers(&dir).namespaces, vec![ours.clone()]);

    let report = teardown(&dir).expect("teardown");
    assert_eq!(report.namespaces, vec![ours.clone()]);
    assert_eq!(report.processes, 1);
    assert!(report.found && !report.runtime_stopped && report.state_dir_removed, "{report:?}");
    assert!(in_ours.exited());
    assert!(!in_theirs.exited(), "another mesh's pod is left alone");
    assert!(netns_path(&theirs).exists(), "another mesh's namespace is left alone");
    assert!(other.root().exists());
}

#[test]
fn teardown_with_an_unreadable_state_file_still_removes_by_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = mesh_dir(&tmp, "garbled");
    let ours = dir.cluster_netns();
    let _namespaces = NetnsGuard::add(&[&ours]);
    std::fs::write(dir.state_file(), "{ not json").unwrap();

    let report = teardown(&dir).expect("teardown");
    assert_eq!(report.namespaces, vec![ours.clone()]);
    assert!(report.state_dir_removed);
    assert!(report.warnings.iter().any(|w| w.contains("state.json")), "{report:?}");
}

#[test]
fn teardown_of_nothing_reports_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(&tmp.path().join("never-started")).unwrap();
    assert_eq!(teardown(&dir).expect("teardown"), TeardownReport::default());
    assert!(leftovers(&dir).is_empty());
}

#[test]
fn teardown_refuses_to_remove_a_folder_that_is_not_a_mesh() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::new(tmp.path()).unwrap();
    std::fs::write(tmp.path().join("thesis.tex"), "precious").unwrap();
    std::fs::create_dir(tmp.path().join("logs")).unwrap();

    let error = teardown(&dir).expect_err("a folder with foreign files is not removed").to_string();
    assert!(error.contains("thesis.tex") && error.contains("not removing"), "{error}");
    assert!(tmp.path().join("thesis.tex").exists());
}

#[test]
fn a_mesh_prefix_has_the_shape_of_ours() {
    assert!(is_mesh_prefix("amb-0123abcd-"));
    for bad in ["", "amb-", "amb--", "amb-0123abcd", "amb-0123ABCD-", "amb-0123abc-", "x-0123abcd-"] {
        assert!(!is_mesh_prefix(bad), "{bad:?}");
    }
}
