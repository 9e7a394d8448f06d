use std::io;

use serde_json::{Value, json};

use super::apply::is_established;
use super::error::{ClusterError, FieldConflict, from_kube, one_line, parse_conflict_message};
use super::objects::ObjectId;
use super::plan::Action;
use super::preflight::{check_supported, parse_version};
use super::rollout::{pod_failure, pod_selector, progress};
use super::uninstall::{Step, step};

const CRASHLOOP_POD: &str = include_str!("../../../tests/fixtures/apiserver/pod-ztunnel-crashloop.json");

fn version(major: &str, minor: &str, git: &str) -> Value {
    json!({ "major": major, "minor": minor, "gitVersion": git })
}

#[test]
fn versions_parse_with_distribution_suffixes() {
    let v = parse_version(&version("1", "33", "v1.33.1"), "u").expect("1.33");
    assert_eq!((v.major, v.minor, v.git_version.as_str()), (1, 33, "v1.33.1"));
    let eks = parse_version(&version("1", "30+", "v1.30.13-eks-5d4a308"), "u").expect("EKS");
    assert_eq!((eks.major, eks.minor), (1, 30));
    let bare = parse_version(&json!({ "major": "1", "minor": "29" }), "u").expect("no gitVersion");
    assert_eq!(bare.git_version, "v1.29");
}

#[test]
fn a_version_without_numbers_is_an_error_naming_the_server() {
    let err = parse_version(&version("", "", ""), "https://10.0.0.1:6443").expect_err("no version");
    assert!(matches!(err, ClusterError::UnknownVersion { .. }));
    assert!(err.to_string().contains("https://10.0.0.1:6443"), "{err}");
}

#[test]
fn versions_older_than_1_28_are_refused() {
    let at = |minor: &str| parse_version(&version("1", minor, &format!("v1.{minor}.0")), "u").expect("version");
    let err = check_supported(&at("27")).expect_err("1.27 is too old");
    assert_eq!(err.to_string(), "Kubernetes 1.27 (v1.27.0) is not supported: ambient needs 1.28 or newer");
    check_supported(&at("28")).expect("1.28 is supported");
    check_supported(&at("33")).expect("1.33 is supported");
    check_supported(&parse_version(&version("2", "0", "v2.0.0"), "u").expect("2.0")).expect("2.0 is newer");
}

#[test]
fn a_single_conflict_message_gives_manager_and_field() {
    let parsed =
        parse_conflict_message("Apply failed with 1 conflict: conflict with \"helm\" using apps/v1: .spec.replicas");
    assert_eq!(parsed, [FieldConflict { manager: "\"helm\" using apps/v1".into(), field: ".spec.replicas".into() }]);
}

#[test]
fn a_multi_conflict_message_gives_every_field_of_every_manager() {
    let message = "Apply failed with 3 conflicts: conflicts with \"helm\" using apps/v1:\n- .spec.replicas\n\
                   - .spec.template.spec.containers[name=\"discovery\"].image\nconflicts with \"kubectl-edit\" using apps/v1:\n- .metadata.labels.app";
    let parsed = parse_conflict_message(message);
    let pairs: Vec<(&str, &str)> = parsed.iter().map(|c| (c.manager.as_str(), c.field.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("\"helm\" using apps/v1", ".spec.replicas"),
            ("\"helm\" using apps/v1", ".spec.template.spec.containers[name=\"discovery\"].image"),
            ("\"kubectl-edit\" using apps/v1", ".metadata.labels.app"),
        ]
    );
    let err = ClusterError::Conflict { what: "Deployment a/b".into(), conflicts: parsed };
    let text = err.to_string();
    assert!(text.contains("stop \"helm\" and \"kubectl-edit\" from managing these fields"), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn an_unrecognised_conflict_message_is_kept_whole_on_one_line() {
    let parsed = parse_conflict_message("Operation cannot be fulfilled:\nthe object has been modified");
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].manager, "Operation cannot be fulfilled:; the object has been modified");
}

#[test]
fn conflict_causes_are_preferred_over_the_message() {
    let status: kube::core::Status =
        serde_json::from_str(include_str!("../../../tests/fixtures/apiserver/status-apply-conflict.json"))
            .expect("a Status");
    let mut status = status;
    status.message = "something else entirely".into();
    let parsed = super::error::conflicts(&status);
    assert_eq!(parsed, [FieldConflict { manager: "\"helm\" using apps/v1".into(), field: ".spec.replicas".into() }]);
}

#[test]
fn api_errors_keep_code_reason_and_message_on_one_line() {
    let status =
        kube::core::Status::failure("admission webhook \"x\" denied the request:\nno", "Forbidden").with_code(403);
    let err = from_kube(kube::Error::Api(Box::new(status)), "https://k:6443", "applying", "Service a/b");
    assert_eq!(
        err.to_string(),
        "applying Service a/b: HTTP 403 Forbidden: admission webhook \"x\" denied the request:; no"
    );
}

#[test]
fn transport_errors_mean_unreachable_with_the_io_reason() {
    let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
    let err = from_kube(kube::Error::Service(Box::new(refused)), "https://127.0.0.1:1", "reading", "/version");
    assert_eq!(err.to_string(), "cannot reach the Kubernetes API server at https://127.0.0.1:1: connection refused");
    let dns = io::Error::other("failed to lookup address information: Name or service not known");
    let err = from_kube(kube::Error::Service(Box::new(dns)), "https://k.example:6443", "reading", "/version");
    assert_eq!(
        err.to_string(),
        "cannot reach the Kubernetes API server at https://k.example:6443: failed to lookup address information: Name or service not known"
    );
}

fn deployment(generation: i64, status: Value) -> (Option<i64>, Value) {
    (Some(generation), json!({ "spec": { "replicas": 2 }, "status": status }))
}

#[test]
fn a_deployment_is_rolled_out_when_the_latest_generation_is_updated_and_available() {
    let (g, d) =
        deployment(3, json!({ "observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2 }));
    assert_eq!(progress("Deployment", g, &d), super::Progress { ready: 2, desired: 2, done: true });
    // The controller has not seen generation 3 yet: the counts are of the old spec.
    let (g, d) =
        deployment(3, json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2 }));
    assert!(!progress("Deployment", g, &d).done);
    let (g, d) =
        deployment(1, json!({ "observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 2 }));
    assert!(!progress("Deployment", g, &d).done);
    let (g, d) = deployment(1, json!({ "observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 1 }));
    assert_eq!(progress("Deployment", g, &d), super::Progress { ready: 1, desired: 2, done: false });
    // No status yet, no replicas field: one replica wanted, nothing observed.
    assert_eq!(progress("Deployment", Some(1), &json!({})), super::Progress { ready: 0, desired: 1, done: false });
}

#[test]
fn a_daemonset_is_rolled_out_when_every_scheduled_pod_is_updated_and_available() {
    let ds = |status: Value| json!({ "status": status });
    let done = ds(
        json!({ "observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3 }),
    );
    assert_eq!(progress("DaemonSet", Some(2), &done), super::Progress { ready: 3, desired: 3, done: true });
    let updating = ds(
        json!({ "observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 2, "numberAvailable": 3 }),
    );
    assert!(!progress("DaemonSet", Some(2), &updating).done);
    let unavailable = ds(
        json!({ "observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 2 }),
    );
    assert!(!progress("DaemonSet", Some(2), &unavailable).done);
    assert!(!progress("DaemonSet", Some(1), &ds(json!({}))).done, "no observedGeneration is not rolled out");
}

#[test]
fn a_crashlooping_container_is_reported_with_its_last_termination() {
    let pod: Value = serde_json::from_str(CRASHLOOP_POD).expect("the recorded pod");
    let failure = pod_failure(&pod).expect("a crashlooping pod is failing");
    assert!(
        failure.starts_with("container ztunnel: CrashLoopBackOff: back-off 40s restarting failed container=ztunnel"),
        "{failure}"
    );
    assert!(
        failure.contains("; last terminated: Error, exit code 1: error: reading the root certificate"),
        "{failure}"
    );
}

fn pod_with(statuses_key: &str, container: Value, phase: &str) -> Value {
    json!({ "status": { "phase": phase, statuses_key: [container] } })
}

#[test]
fn every_fatal_waiting_reason_fails_and_normal_waiting_does_not() {
    for reason in super::FATAL_REASONS {
        let pod = pod_with(
            "containerStatuses",
            json!({ "name": "c", "state": { "waiting": { "reason": reason } } }),
            "Pending",
        );
        assert_eq!(pod_failure(&pod), Some(format!("container c: {reason}")), "{reason}");
    }
    for reason in ["ContainerCreating", "PodInitializing"] {
        let pod = pod_with(
            "containerStatuses",
            json!({ "name": "c", "state": { "waiting": { "reason": reason } } }),
            "Pending",
        );
        assert_eq!(pod_failure(&pod), None, "{reason}");
    }
    let running = pod_with("containerStatuses", json!({ "name": "c", "state": { "running": {} } }), "Running");
    assert_eq!(pod_failure(&running), None);
}

#[test]
fn image_pull_and_init_container_failures_carry_the_kubelet_message() {
    let pull = pod_with(
        "containerStatuses",
        json!({ "name": "ztunnel", "state": { "waiting": { "reason": "ImagePullBackOff",
                "message": "Back-off pulling image \"ghcr.io/ambient/ambient:nope\"" } } }),
        "Pending",
    );
    assert_eq!(
        pod_failure(&pull).as_deref(),
        Some("container ztunnel: ImagePullBackOff: Back-off pulling image \"ghcr.io/ambient/ambient:nope\"")
    );
    let init = pod_with(
        "initContainerStatuses",
        json!({ "name": "install-cni", "state": { "waiting": { "reason": "CreateContainerConfigError",
                "message": "secret \"cni-token\" not found" } } }),
        "Pending",
    );
    assert_eq!(
        pod_failure(&init).as_deref(),
        Some("container install-cni: CreateContainerConfigError: secret \"cni-token\" not found")
    );
}

#[test]
fn a_failed_pod_is_reported_with_its_reason() {
    let evicted = json!({ "status": { "phase": "Failed", "reason": "Evicted",
                          "message": "The node was low on resource: memory." } });
    assert_eq!(pod_failure(&evicted).as_deref(), Some("pod Failed: Evicted: The node was low on resource: memory."));
}

#[test]
fn pod_selectors_come_from_match_labels_sorted() {
    let ds = json!({ "spec": { "selector": { "matchLabels": { "b": "2", "a": "1" } } } });
    assert_eq!(pod_selector(&ds).as_deref(), Some("a=1,b=2"));
    assert_eq!(pod_selector(&json!({ "spec": {} })), None);
    assert_eq!(pod_selector(&json!({ "spec": { "selector": { "matchLabels": {} } } })), None);
}

#[test]
fn object_ids_default_the_namespace_only_for_namespaced_kinds() {
    let sa = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "ztunnel" } });
    assert_eq!(ObjectId::of(&sa, "istio-system").expect("id").to_string(), "ServiceAccount istio-system/ztunnel");
    let sa_elsewhere = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "x", "namespace": "kube-system" } });
    assert_eq!(ObjectId::of(&sa_elsewhere, "istio-system").expect("id").to_string(), "ServiceAccount kube-system/x");
    let role = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": { "name": "r", "namespace": "ignored" } });
    let id = ObjectId::of(&role, "istio-system").expect("id");
    assert_eq!((id.namespace.clone(), id.to_string()), (None, "ClusterRole r".to_string()));
}

#[test]
fn objects_install_does_not_handle_are_manifest_errors() {
    let unknown = json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "j" } });
    let err = ObjectId::of(&unknown, "ns").expect_err("Jobs are not installed");
    assert_eq!(err.to_string(), "invalid manifest: batch/v1 Job: not a kind ambient installs");
    let nameless = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": {} });
    assert_eq!(
        ObjectId::of(&nameless, "ns").expect_err("no name").to_string(),
        "invalid manifest: a ConfigMap without metadata.name"
    );
}

#[test]
fn a_crd_is_established_only_by_a_true_established_condition() {
    let with = |status: &str| {
        json!({ "status": { "conditions": [
        { "type": "NamesAccepted", "status": "True" }, { "type": "Established", "status": status } ] } })
    };
    assert!(is_established(&with("True")));
    assert!(!is_established(&with("False")));
    assert!(!is_established(&json!({})));
}

#[test]
fn uninstall_keeps_crds_and_releases_the_namespace_unless_purging() {
    let id = |api_version: &str, kind: &str, name: &str| {
        let object = json!({ "apiVersion": api_version, "kind": kind, "metadata": { "name": name } });
        ObjectId::of(&object, "istio-system").expect("id")
    };
    let crd = id("apiextensions.k8s.io/v1", "CustomResourceDefinition", "a.b.c");
    let namespace = id("v1", "Namespace", "istio-system");
    let deployment = id("apps/v1", "Deployment", "ambient-controlplane");
    assert_eq!(
        [step(&crd, false), step(&namespace, false), step(&deployment, false)],
        [Step::Keep, Step::Release, Step::Delete]
    );
    assert_eq!([step(&crd, true), step(&namespace, true), step(&deployment, true)], [Step::Delete; 3]);
}

#[test]
fn plan_actions_read_as_the_plan_table_shows_them() {
    assert_eq!(Action::Create.to_string(), "create");
    assert_eq!(Action::Keep { manager: "Helm".into() }.to_string(), "kept: present, managed by Helm");
    assert_eq!(Action::Adopt { manager: "kubectl".into() }.to_string(), "update (adopt: present, managed by kubectl)");
}

#[test]
fn messages_are_joined_onto_one_line() {
    assert_eq!(one_line("a\n\n  b  \nc"), "a; b; c");
}

#[test]
fn timeouts_read_as_they_are_written() {
    let timeout = |d: std::time::Duration| ClusterError::RolloutTimeout { timeout: d, pending: "x".into() }.to_string();
    assert_eq!(timeout(std::time::Duration::from_secs(300)), "timed out after 5m waiting for rollouts: x");
    assert_eq!(timeout(std::time::Duration::from_secs(7200)), "timed out after 2h waiting for rollouts: x");
    assert_eq!(timeout(std::time::Duration::from_secs(90)), "timed out after 90s waiting for rollouts: x");
    assert_eq!(timeout(std::time::Duration::from_millis(1500)), "timed out after 1.5s waiting for rollouts: x");
}
