//! `install`, `uninstall` and `verify-install` against recorded API-server responses
//! (`support::apiserver`, fixtures in `tests/fixtures/apiserver/`): no real cluster.

mod support;

use std::time::Duration;

use ambient::config::kube::KubeConfig;
use ambient::install::cluster::{
    self, Action, Cluster, ClusterError, Confirm, InstallOptions, InstallReport, Transcript, Ui, UninstallOptions,
};
use ambient::install::{INSTALLED_KINDS, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Manifest};
use serde_json::{Value, json};
use support::apiserver::{ApiServer, Rollout, Seen, describe, fixture};
use tempfile::TempDir;

const NS: &str = "istio-system";

/// A server, a client of it through a kubeconfig file, and the kubeconfig's directory.
struct Harness {
    server: ApiServer,
    cluster: Cluster,
    _dir: TempDir,
}

async fn harness() -> Harness {
    ambient::tls::install_default_provider();
    let server = ApiServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.kubeconfig(dir.path());
    let cfg = KubeConfig { kubeconfig: Some(kubeconfig), ..KubeConfig::default() };
    let cluster = Cluster::connect(&cfg).await.expect("a client for the fake API server");
    Harness { server, cluster, _dir: dir }
}

/// Options with test-speed polling.
fn fast() -> InstallOptions {
    InstallOptions {
        dry_run: false,
        wait_timeout: Duration::from_secs(5),
        crd_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(10),
    }
}

fn fast_uninstall(purge: bool) -> UninstallOptions {
    UninstallOptions {
        purge,
        dry_run: false,
        timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(10),
    }
}

fn labelled(extra: Value) -> Value {
    let mut labels = json!({ MANAGED_BY_LABEL: MANAGED_BY_VALUE });
    if let (Some(l), Some(e)) = (labels.as_object_mut(), extra.as_object()) {
        l.extend(e.clone());
    }
    labels
}

fn object(api_version: &str, kind: &str, namespace: Option<&str>, name: &str, rest: Value) -> Value {
    let mut object =
        json!({ "apiVersion": api_version, "kind": kind, "metadata": { "name": name, "labels": labelled(json!({})) } });
    if let Some(ns) = namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    if let (Some(o), Some(r)) = (object.as_object_mut(), rest.as_object()) {
        o.extend(r.clone());
    }
    object
}

fn crd(plural: &str, group: &str, kind: &str) -> Value {
    object(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        &format!("{plural}.{group}"),
        json!({ "spec": {
            "group": group,
            "names": { "kind": kind, "listKind": format!("{kind}List"), "plural": plural, "singular": kind.to_lowercase() },
            "scope": "Namespaced",
            "versions": [{ "name": "v1", "served": true, "storage": true,
                           "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }]
        } }),
    )
}

fn workload(kind: &str, name: &str, replicas: Option<i64>) -> Value {
    let mut spec = json!({
        "selector": { "matchLabels": { "app": name } },
        "template": {
            "metadata": { "labels": { "app": name } },
            "spec": { "serviceAccountName": name, "containers": [{ "name": name, "image": "ghcr.io/ambient/ambient:test" }] }
        }
    });
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    object("apps/v1", kind, Some(NS), name, json!({ "spec": spec }))
}

/// A manifest like a profile renders: namespace, CRDs, RBAC, config, control plane, node agents.
fn manifest() -> Manifest {
    let objects = vec![
        object("v1", "Namespace", None, NS, json!({})),
        crd("authorizationpolicies", "security.istio.io", "AuthorizationPolicy"),
        crd("peerauthentications", "security.istio.io", "PeerAuthentication"),
        object("v1", "ServiceAccount", Some(NS), "ambient-controlplane", json!({})),
        object("v1", "ServiceAccount", Some(NS), "ztunnel", json!({})),
        object("v1", "ConfigMap", Some(NS), "ambient", json!({ "data": { "trustDomain": "cluster.local" } })),
        object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "ambient-controlplane",
            json!({ "rules": [{ "apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"] }] }),
        ),
        object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            None,
            "ambient-controlplane",
            json!({
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ambient-controlplane" },
                "subjects": [{ "kind": "ServiceAccount", "name": "ambient-controlplane", "namespace": NS }]
            }),
        ),
        object(
            "v1",
            "Service",
            Some(NS),
            "ambient-controlplane",
            json!({ "spec": { "selector": { "app": "ambient-controlplane" }, "ports": [{ "name": "grpc-xds", "port": 15012 }] } }),
        ),
        workload("Deployment", "ambient-controlplane", Some(2)),
        workload("DaemonSet", "ztunnel", None),
        workload("DaemonSet", "ambient-cni", None),
    ];
    Manifest { namespace: NS.to_string(), objects }
}

/// `Kind namespace/name` of every manifest object.
fn manifest_names(manifest: &Manifest) -> Vec<String> {
    manifest.objects.iter().map(describe).collect()
}

fn applies(requests: &[Seen]) -> Vec<&Seen> {
    requests.iter().filter(|r| r.is_apply()).collect()
}

/// Index of the first request matching, panicking with the request log otherwise.
fn position(requests: &[Seen], what: &str, matches: impl Fn(&Seen) -> bool) -> usize {
    requests.iter().position(matches).unwrap_or_else(|| {
        let log: Vec<String> = requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        panic!("no request for {what}; requests: {log:#?}")
    })
}

async fn install(
    h: &Harness,
    manifest: &Manifest,
    opts: &InstallOptions,
    confirm: Confirm,
) -> (Result<InstallReport, ClusterError>, Transcript) {
    let (ui, transcript) = Ui::capture(confirm);
    (cluster::install(&h.cluster, manifest, opts, &ui).await, transcript)
}

async fn install_ok(h: &Harness, manifest: &Manifest) -> InstallReport {
    let (result, transcript) = install(h, manifest, &fast(), Confirm::Yes).await;
    result.unwrap_or_else(|e| panic!("install failed: {e}\noutput:\n{}", transcript.text()))
}

fn unmanaged_namespace() -> Value {
    json!({ "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": NS, "labels": { "kubernetes.io/metadata.name": NS } },
            "spec": { "finalizers": ["kubernetes"] }, "status": { "phase": "Active" } })
}

#[tokio::test]
async fn install_into_an_empty_cluster_applies_everything_waits_for_crds_and_rollouts() {
    let h = harness().await;
    h.server.set_crd_established_after(2);
    h.server.set_rollout(Rollout::AfterReads(3));
    let manifest = manifest();
    let (result, transcript) = install(&h, &manifest, &fast(), Confirm::Yes).await;
    let report = result.unwrap_or_else(|e| panic!("install failed: {e}\n{}", transcript.text()));

    // Everything is there, labelled.
    let mut want = manifest_names(&manifest);
    let mut have = h.server.labelled(MANAGED_BY_LABEL, MANAGED_BY_VALUE);
    want.sort();
    have.sort();
    assert_eq!(have, want);
    assert!(report.plan.items.iter().all(|i| i.action == Action::Create), "{:?}", report.plan);

    // One apply per object, in manifest order, all by field manager ambient, none forced.
    let requests = h.server.requests();
    let applied = applies(&requests);
    let applied_names: Vec<String> = applied.iter().filter_map(|r| r.body.as_ref()).map(describe).collect();
    assert_eq!(applied_names, manifest_names(&manifest));
    for r in &applied {
        assert_eq!(r.param("fieldManager"), Some("ambient"), "{} {}", r.method, r.path);
        assert_eq!(r.param("force"), None, "{} {} forced", r.method, r.path);
        assert_eq!(r.param("dryRun"), None, "{} {}", r.method, r.path);
    }

    // The CRDs were read until established before the first object after them was applied.
    let crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peerauthentications.security.istio.io";
    let crd_applied = position(&requests, "the CRD's apply", |r| r.is_apply() && r.path == crd_path);
    let next_applied =
        position(&requests, "the first ServiceAccount apply", |r| r.is_apply() && r.path.contains("/serviceaccounts/"));
    let crd_reads =
        requests[crd_applied..next_applied].iter().filter(|r| r.method == "GET" && r.path == crd_path).count();
    assert!(crd_reads >= 2, "the CRD was read {crd_reads} times before later objects were applied");

    // Rollouts were waited for: the workloads were read until ready, and are ready.
    let summary: Vec<(String, i64, i64)> =
        report.workloads.iter().map(|w| (w.id.to_string(), w.ready, w.desired)).collect();
    assert_eq!(
        summary,
        vec![
            (format!("Deployment {NS}/ambient-controlplane"), 2, 2),
            (format!("DaemonSet {NS}/ztunnel"), 3, 3),
            (format!("DaemonSet {NS}/ambient-cni"), 3, 3),
        ]
    );
    let ztunnel_reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == format!("/apis/apps/v1/namespaces/{NS}/daemonsets/ztunnel"))
        .count();
    assert!(ztunnel_reads >= 3, "ztunnel's rollout was read {ztunnel_reads} times");

    let text = transcript.text();
    assert!(text.contains("Kubernetes v1.33.1"), "{text}");
    assert!(text.contains(&format!("DaemonSet {NS}/ztunnel: 3/3 ready")), "{text}");
    assert!(text.contains("Installed ambient in"), "{text}");
    assert!(text.contains("12 created, 0 updated, 0 kept, 3 workloads rolled out"), "{text}");
}

#[tokio::test]
async fn installing_again_updates_in_place_and_changes_nothing() {
    let h = harness().await;
    let manifest = manifest();
    install_ok(&h, &manifest).await;
    let before = h.server.objects();
    h.server.clear_requests();

    let report = install_ok(&h, &manifest).await;
    assert!(report.plan.items.iter().all(|i| i.action == Action::Update), "{:?}", report.plan);
    assert_eq!(applies(&h.server.requests()).len(), manifest.objects.len());
    // The same apply again is a no-op for the server: same resourceVersions, same generations.
    assert_eq!(h.server.objects(), before);
    assert_eq!(report.workloads.len(), 3);
}

#[tokio::test]
async fn a_foreign_istiod_is_refused_before_anything_is_applied() {
    let h = harness().await;
    h.server.insert(unmanaged_namespace());
    h.server.insert_fixture("deployment-istiod-helm.json");
    let (result, _) = install(&h, &manifest(), &fast(), Confirm::Yes).await;
    let err = result.expect_err("install over Istio must be refused");
    assert!(matches!(err, ClusterError::Foreign { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("Deployment {NS}/istiod already exists")), "{message}");
    assert!(message.contains("managed by Helm"), "{message}");
    assert!(message.contains("uninstall Istio first"), "{message}");
    assert!(h.server.requests().iter().all(|r| !r.is_write()), "a request changed something");
}

#[tokio::test]
async fn an_unlabelled_ztunnel_daemonset_is_refused_naming_its_field_manager() {
    let h = harness().await;
    h.server.insert(unmanaged_namespace());
    h.server.insert_fixture("daemonset-ztunnel-unlabelled.json");
    let (result, _) = install(&h, &manifest(), &fast(), Confirm::Yes).await;
    let message = result.expect_err("install over a foreign ztunnel must be refused").to_string();
    assert!(
        message.contains(&format!("DaemonSet {NS}/ztunnel already exists and was not installed by ambient")),
        "{message}"
    );
    // No managed-by label: the field managers that wrote it, without the status writer.
    assert!(message.contains("managed by kubectl-client-side-apply)"), "{message}");
    assert!(h.server.requests().iter().all(|r| !r.is_write()), "a request changed something");
}

#[tokio::test]
async fn a_crd_installed_by_istio_is_kept_as_it_is() {
    let h = harness().await;
    h.server.insert_fixture("crd-authorizationpolicies-helm.json");
    let original = h.server.get("CustomResourceDefinition", None, "authorizationpolicies.security.istio.io");
    let manifest = manifest();
    let (result, transcript) = install(&h, &manifest, &fast(), Confirm::Yes).await;
    let report = result.unwrap_or_else(|e| panic!("{e}\n{}", transcript.text()));

    let kept: Vec<_> = report.plan.items.iter().filter(|i| matches!(i.action, Action::Keep { .. })).collect();
    assert_eq!(kept.len(), 1, "{:?}", report.plan);
    assert_eq!(kept[0].id.name, "authorizationpolicies.security.istio.io");
    assert_eq!(kept[0].action, Action::Keep { manager: "Helm".into() });
    assert!(transcript.text().contains("kept: present, managed by Helm"), "{}", transcript.text());
    assert!(
        !h.server
            .requests()
            .iter()
            .any(|r| r.is_write() && r.path.ends_with("/authorizationpolicies.security.istio.io")),
        "the foreign CRD was written to"
    );
    assert_eq!(h.server.get("CustomResourceDefinition", None, "authorizationpolicies.security.istio.io"), original);
}

#[tokio::test]
async fn an_apply_conflict_stops_the_install_naming_the_other_manager_and_field() {
    let h = harness().await;
    let path = format!("/apis/apps/v1/namespaces/{NS}/deployments/ambient-controlplane");
    h.server.reply_once("PATCH", &path, 409, "status-apply-conflict.json");
    let (result, _) = install(&h, &manifest(), &fast(), Confirm::Yes).await;
    let err = result.expect_err("a conflict must stop the install");
    let ClusterError::Conflict { conflicts, .. } = &err else { panic!("not a conflict: {err:?}") };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].manager, "\"helm\" using apps/v1");
    assert_eq!(conflicts[0].field, ".spec.replicas");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "applying Deployment {NS}/ambient-controlplane: HTTP 409 Conflict: .spec.replicas is owned by \"helm\""
        )),
        "{message}"
    );
    assert!(message.contains("To proceed, stop \"helm\" from managing these fields"), "{message}");
    // Nothing after the conflicting object was applied.
    let requests = h.server.requests();
    let conflict = position(&requests, "the conflicting apply", |r| r.is_apply() && r.path == path);
    assert!(requests[conflict + 1..].iter().all(|r| !r.is_write()), "writes after the conflict");
    assert!(h.server.get("DaemonSet", Some(NS), "ztunnel").is_none());
}

#[tokio::test]
async fn a_crashlooping_pod_fails_the_rollout_with_its_name_and_reason() {
    let h = harness().await;
    h.server.set_rollout(Rollout::Never);
    h.server.insert_fixture("pod-ztunnel-crashloop.json");
    let (result, _) = install(&h, &manifest(), &fast(), Confirm::Yes).await;
    let err = result.expect_err("a crashlooping ztunnel must fail the install");
    assert!(matches!(err, ClusterError::RolloutFailed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "rollout of DaemonSet {NS}/ztunnel failed: pod ztunnel-x7k2p: container ztunnel: CrashLoopBackOff: \
             back-off 40s restarting failed container=ztunnel pod=ztunnel-x7k2p_istio-system(2b0f8e57-3c41-4b8e-9d2f-6a1e0c7d5f13); \
             last terminated: Error, exit code 1: error: reading the root certificate /var/run/secrets/istio/root-cert.pem: \
             No such file or directory (os error 2)"
        )
    );
    // The pods were looked up by the DaemonSet's selector.
    assert!(
        h.server
            .requests()
            .iter()
            .any(|r| r.path == format!("/api/v1/namespaces/{NS}/pods")
                && r.param("labelSelector") == Some("app=ztunnel"))
    );
}

#[tokio::test]
async fn a_rollout_that_never_finishes_times_out_with_ready_counts() {
    let h = harness().await;
    h.server.set_rollout(Rollout::Never);
    let opts = InstallOptions { wait_timeout: Duration::from_millis(200), ..fast() };
    let (result, _) = install(&h, &manifest(), &opts, Confirm::Yes).await;
    let err = result.expect_err("rollouts that never finish must time out");
    assert_eq!(
        err.to_string(),
        format!(
            "timed out after 200ms waiting for rollouts: Deployment {NS}/ambient-controlplane (0/2 ready), \
             DaemonSet {NS}/ztunnel (0/3 ready), DaemonSet {NS}/ambient-cni (0/3 ready)"
        )
    );
}

#[tokio::test]
async fn a_rollout_finishing_later_is_waited_for() {
    let h = harness().await;
    h.server.set_rollout(Rollout::Never);
    let manifest = manifest();
    let cluster = h.cluster.clone();
    let opts = fast();
    let run = tokio::spawn(async move {
        let (ui, _) = Ui::capture(Confirm::Yes);
        cluster::install(&cluster, &manifest, &opts, &ui).await
    });
    // Let the install apply everything and wait a while, then finish the rollouts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h.server.get("DaemonSet", Some(NS), "ambient-cni").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "install did not apply the workloads");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!run.is_finished(), "install returned before the workloads rolled out");
    for (kind, name) in [("Deployment", "ambient-controlplane"), ("DaemonSet", "ztunnel"), ("DaemonSet", "ambient-cni")]
    {
        h.server.set_rolled_out(kind, NS, name);
    }
    let report = run.await.expect("install task").expect("install succeeds once rolled out");
    assert!(report.workloads.iter().all(|w| w.ready == w.desired && w.desired > 0), "{:?}", report.workloads);
}

#[tokio::test]
async fn dry_run_into_an_empty_cluster_changes_nothing_and_says_what_it_could_not_check() {
    let h = harness().await;
    let before = h.server.objects();
    let opts = InstallOptions { dry_run: true, ..fast() };
    // A dry run never asks: an answer of "no" would cancel it.
    let (result, transcript) = install(&h, &manifest(), &opts, Confirm::Answer(false)).await;
    let report = result.unwrap_or_else(|e| panic!("{e}\n{}", transcript.text()));

    assert_eq!(h.server.objects(), before, "a dry run changed the store");
    let requests = h.server.requests();
    let applied = applies(&requests);
    assert!(!applied.is_empty());
    assert!(applied.iter().all(|r| r.param("dryRun") == Some("All") && r.param("fieldManager") == Some("ambient")));
    assert!(requests.iter().filter(|r| r.is_write()).all(|r| r.param("dryRun") == Some("All")));
    // Cluster-scoped objects went through the server's dry run; namespaced ones could not, as
    // their namespace does not exist yet, and each is named.
    let applied_names: Vec<String> = applied.iter().filter_map(|r| r.body.as_ref()).map(describe).collect();
    assert_eq!(
        applied_names,
        [
            format!("Namespace {NS}"),
            "CustomResourceDefinition authorizationpolicies.security.istio.io".into(),
            "CustomResourceDefinition peerauthentications.security.istio.io".into(),
            "ClusterRole ambient-controlplane".into(),
            "ClusterRoleBinding ambient-controlplane".into(),
        ]
    );
    assert_eq!(report.applied.not_validated.len(), 7);
    let text = transcript.text();
    assert!(
        text.contains(&format!("DaemonSet {NS}/ztunnel: not validated: namespace {NS} does not exist yet")),
        "{text}"
    );
    assert!(text.contains("Dry run: nothing was changed."), "{text}");
    assert!(report.workloads.is_empty());
}

#[tokio::test]
async fn dry_run_over_an_install_checks_every_object_and_changes_nothing() {
    let h = harness().await;
    let mut manifest = manifest();
    install_ok(&h, &manifest).await;
    let before = h.server.objects();
    h.server.clear_requests();
    manifest.objects[9]["spec"]["replicas"] = json!(5);

    let opts = InstallOptions { dry_run: true, ..fast() };
    let (result, transcript) = install(&h, &manifest, &opts, Confirm::Yes).await;
    let report = result.unwrap_or_else(|e| panic!("{e}\n{}", transcript.text()));
    assert_eq!(h.server.objects(), before, "a dry run changed the store");
    let requests = h.server.requests();
    assert_eq!(applies(&requests).len(), manifest.objects.len());
    assert!(requests.iter().filter(|r| r.is_write()).all(|r| r.param("dryRun") == Some("All")));
    assert!(report.applied.not_validated.is_empty());
    assert!(
        transcript.text().contains("accepted 12 objects (0 to create, 12 to update, 0 kept)"),
        "{}",
        transcript.text()
    );
}

#[tokio::test]
async fn an_unsupported_kubernetes_version_is_refused_after_one_request() {
    let h = harness().await;
    h.server.set_version("version-1.25.json");
    let (result, _) = install(&h, &manifest(), &fast(), Confirm::Yes).await;
    let err = result.expect_err("1.25 is too old");
    assert_eq!(err.to_string(), "Kubernetes 1.25 (v1.25.16) is not supported: ambient needs 1.28 or newer");
    let paths: Vec<String> = h.server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/version"]);
}

#[tokio::test]
async fn an_eks_style_minor_version_is_accepted() {
    let h = harness().await;
    h.server.set_version("version-1.30-eks.json");
    let report = install_ok(&h, &manifest()).await;
    assert_eq!((report.version.major, report.version.minor), (1, 30));
    assert_eq!(report.version.git_version, "v1.30.13-eks-5d4a308");
}

#[tokio::test]
async fn answering_no_changes_nothing() {
    let h = harness().await;
    let (result, transcript) = install(&h, &manifest(), &fast(), Confirm::Answer(false)).await;
    let err = result.expect_err("no means no");
    assert_eq!(err.to_string(), "install cancelled: nothing was changed");
    assert!(transcript.text().contains("Proceed? [y/N] n"), "{}", transcript.text());
    assert!(h.server.requests().iter().all(|r| !r.is_write()));
}

async fn uninstall(h: &Harness, opts: &UninstallOptions) -> (cluster::UninstallReport, Transcript) {
    let (ui, transcript) = Ui::capture(Confirm::Yes);
    let report = cluster::uninstall(&h.cluster, opts, &ui)
        .await
        .unwrap_or_else(|e| panic!("uninstall failed: {e}\n{}", transcript.text()));
    (report, transcript)
}

#[tokio::test]
async fn uninstall_removes_everything_labelled_but_crds_and_releases_the_namespace() {
    let h = harness().await;
    let manifest = manifest();
    install_ok(&h, &manifest).await;
    h.server.insert_fixture("configmap-user-mesh-policy.json");
    h.server.clear_requests();

    let (report, transcript) = uninstall(&h, &fast_uninstall(false)).await;
    // Only the kept CRDs still carry the label (so `uninstall --purge` finds them later).
    let mut left = h.server.labelled(MANAGED_BY_LABEL, MANAGED_BY_VALUE);
    left.sort();
    assert_eq!(
        left,
        [
            "CustomResourceDefinition authorizationpolicies.security.istio.io",
            "CustomResourceDefinition peerauthentications.security.istio.io",
        ]
    );
    assert_eq!(report.kept.len(), 2);
    assert_eq!(report.released.iter().map(ToString::to_string).collect::<Vec<_>>(), [format!("Namespace {NS}")]);
    assert_eq!(report.deleted.len(), manifest.objects.len() - 3);

    // The namespace stays, without ambient's label, and so does what users put in it.
    let namespace = h.server.get("Namespace", None, NS).expect("the namespace is kept");
    assert!(namespace.pointer("/metadata/deletionTimestamp").is_none());
    let labels = namespace["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    assert!(!labels.contains_key(MANAGED_BY_LABEL), "{labels:?}");
    assert_eq!(labels.get("kubernetes.io/metadata.name"), Some(&json!(NS)));
    assert!(h.server.get("ConfigMap", Some(NS), "team-mesh-settings").is_some());

    // Deletes in reverse apply order, in the background; the release is a bare apply by ambient.
    let requests = h.server.requests();
    let kind_order: Vec<usize> = requests
        .iter()
        .filter(|r| r.is_delete())
        .map(|r| {
            let plural = r.path.rsplit('/').nth(1).unwrap_or_default();
            INSTALLED_KINDS.iter().position(|k| k.plural == plural).unwrap_or_else(|| panic!("deleted {}", r.path))
        })
        .collect();
    assert_eq!(kind_order.len(), manifest.objects.len() - 3);
    assert!(kind_order.windows(2).all(|w| w[0] >= w[1]), "deletes not in reverse apply order: {kind_order:?}");
    assert!(
        requests
            .iter()
            .filter(|r| r.is_delete())
            .all(|r| r.body.as_ref().is_some_and(|b| b["propagationPolicy"] == "Background"))
    );
    let release = applies(&requests);
    assert_eq!(release.len(), 1);
    assert_eq!(release[0].path, format!("/api/v1/namespaces/{NS}"));
    assert_eq!(release[0].param("fieldManager"), Some("ambient"));
    assert_eq!(release[0].body, Some(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NS } })));
    // Listing used the install label, across all namespaces.
    assert!(requests.iter().any(|r| r.method == "GET"
        && r.path == "/apis/apps/v1/daemonsets"
        && r.param("labelSelector") == Some("app.kubernetes.io/managed-by=ambient")));
    assert!(
        transcript
            .text()
            .contains("Nothing with app.kubernetes.io/managed-by=ambient is left but the CRDs, which were kept"),
        "{}",
        transcript.text()
    );
}

#[tokio::test]
async fn uninstall_with_purge_leaves_nothing_with_the_install_label() {
    let h = harness().await;
    install_ok(&h, &manifest()).await;
    h.server.insert_fixture("crd-authorizationpolicies-helm.json");
    let (report, _) = uninstall(&h, &fast_uninstall(true)).await;
    assert_eq!(h.server.labelled(MANAGED_BY_LABEL, MANAGED_BY_VALUE), Vec::<String>::new());
    assert!(report.kept.is_empty() && report.released.is_empty());
    assert!(h.server.get("CustomResourceDefinition", None, "peerauthentications.security.istio.io").is_none());
    // The namespace was deleted: gone, or still terminating when the wait ended.
    if let Some(ns) = h.server.get("Namespace", None, NS) {
        assert!(ns.pointer("/metadata/deletionTimestamp").is_some(), "{ns}");
    }
    assert!(h.server.requests().iter().any(|r| r.is_delete() && r.path == format!("/api/v1/namespaces/{NS}")));
}

#[tokio::test]
async fn uninstall_after_a_kept_crd_install_leaves_the_foreign_crd_alone() {
    let h = harness().await;
    h.server.insert_fixture("crd-authorizationpolicies-helm.json");
    install_ok(&h, &manifest()).await;
    uninstall(&h, &fast_uninstall(true)).await;
    let crd = h.server.get("CustomResourceDefinition", None, "authorizationpolicies.security.istio.io");
    assert!(crd.is_some(), "uninstall --purge deleted a CRD ambient did not install");
}

#[tokio::test]
async fn uninstall_with_nothing_installed_says_so() {
    let h = harness().await;
    h.server.insert(unmanaged_namespace());
    h.server.insert_fixture("deployment-istiod-helm.json");
    let (report, transcript) = uninstall(&h, &fast_uninstall(true)).await;
    assert!(report.found.is_empty());
    assert!(transcript.text().contains("Nothing to uninstall"), "{}", transcript.text());
    assert!(h.server.requests().iter().all(|r| !r.is_write()));
    assert!(h.server.get("Deployment", Some(NS), "istiod").is_some());
}

#[tokio::test]
async fn uninstall_dry_run_lists_and_changes_nothing() {
    let h = harness().await;
    install_ok(&h, &manifest()).await;
    let before = h.server.objects();
    h.server.clear_requests();
    let opts = UninstallOptions { dry_run: true, ..fast_uninstall(false) };
    let (report, transcript) = uninstall(&h, &opts).await;
    assert_eq!(report.found.len(), 12);
    assert_eq!((report.deleted.len(), report.released.len(), report.kept.len()), (9, 1, 2));
    assert_eq!(h.server.objects(), before);
    assert!(h.server.requests().iter().all(|r| !r.is_write()));
    assert!(transcript.text().contains("Dry run: nothing was changed."), "{}", transcript.text());
}

#[tokio::test]
async fn verify_install_passes_after_install_and_lists_each_gap() {
    let h = harness().await;
    let manifest = manifest();
    h.server.insert_fixture("crd-authorizationpolicies-helm.json");
    install_ok(&h, &manifest).await;
    let (ui, _) = Ui::capture(Confirm::Yes);
    let report = cluster::verify(&h.cluster, &manifest, &ui).await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.gaps);
    assert_eq!(report.checked, 12);

    // Break three things: a missing object, a foreign one, a workload not rolled out.
    uninstall(&h, &fast_uninstall(false)).await;
    let mut foreign_sa = manifest.objects[4].clone();
    foreign_sa["metadata"]["labels"] = json!({ "app.kubernetes.io/managed-by": "Helm" });
    h.server.insert(foreign_sa);
    h.server.set_rollout(Rollout::Never);
    h.server.insert(fixture("pod-ztunnel-crashloop.json"));
    h.server.insert(manifest.objects[10].clone());

    let (ui, transcript) = Ui::capture(Confirm::Yes);
    let report = cluster::verify(&h.cluster, &manifest, &ui).await.expect("verify");
    assert!(!report.is_ok());
    let gaps = report.gaps.join("\n");
    assert!(
        gaps.contains(&format!(
            "Namespace {NS}: not labelled app.kubernetes.io/managed-by=ambient (managed by unknown)"
        )),
        "{gaps}"
    );
    assert!(
        gaps.contains(&format!(
            "ServiceAccount {NS}/ztunnel: not labelled app.kubernetes.io/managed-by=ambient (managed by Helm)"
        )),
        "{gaps}"
    );
    assert!(gaps.contains(&format!("Deployment {NS}/ambient-controlplane: missing")), "{gaps}");
    assert!(
        gaps.contains(&format!(
            "DaemonSet {NS}/ztunnel: not rolled out (0/0 ready): pod ztunnel-x7k2p: container ztunnel: CrashLoopBackOff"
        )),
        "{gaps}"
    );
    // The foreign CRD install kept is fine; the kept, still labelled CRD of ours is too.
    assert!(!gaps.contains("CustomResourceDefinition"), "{gaps}");
    assert!(transcript.text().contains(&format!("{} of 12 objects have problems.", report.gaps.len())));
}
