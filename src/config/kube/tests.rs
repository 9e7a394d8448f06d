use ::kube::Resource as _;
use ::kube::api::DynamicObject;
use ::kube::core::Status;
use ::kube::runtime::watcher::{self, Event};
use serde_json::json;

use super::state::{Backend, WatchResult};
use super::*;
use crate::config::diagnostic::{Code, Severity};
use crate::model::{Kind, ObjectRef, Resource};

fn object(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).expect("test object is a valid DynamicObject")
}

fn pod(name: &str, ip: &str) -> DynamicObject {
    object(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": "10",
            "labels": {"app": name},
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1"}]
        },
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": ip}
    }))
}

fn policy(name: &str, ip_block: &str) -> DynamicObject {
    object(json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": "7"},
        "spec": {"action": "DENY", "rules": [{"from": [{"source": {"ipBlocks": [ip_block]}}]}]}
    }))
}

#[test]
fn every_kind_has_a_distinct_api_path() {
    let mut paths = Vec::new();
    for &kind in Kind::ALL {
        let ar = api_resource(kind);
        assert_eq!(ar.kind, kind.name());
        assert_eq!(ar.version, kind.versions()[0]);
        assert!(plural(kind).chars().all(|c| c.is_ascii_lowercase()), "{kind}: {}", plural(kind));
        paths.push(DynamicObject::url_path(&ar, None));
    }
    assert!(paths.contains(&"/api/v1/namespaces".to_string()), "{paths:?}");
    assert!(paths.contains(&"/api/v1/pods".to_string()), "{paths:?}");
    assert!(paths.contains(&"/apis/discovery.k8s.io/v1/endpointslices".to_string()), "{paths:?}");
    assert!(paths.contains(&"/apis/security.istio.io/v1/authorizationpolicies".to_string()), "{paths:?}");
    assert!(paths.contains(&"/apis/networking.istio.io/v1/serviceentries".to_string()), "{paths:?}");
    assert!(paths.contains(&"/apis/gateway.networking.k8s.io/v1/httproutes".to_string()), "{paths:?}");
    let count = paths.len();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), count, "two kinds share an API path");
}

#[test]
fn convert_reads_a_pod_and_drops_managed_fields() {
    let converted = convert(Kind::Pod, pod("web", "10.0.0.5"));
    assert_eq!(converted.key, ObjectRef::new(Kind::Pod, "default", "web"));
    let resource = converted.result.expect("valid pod converts");
    assert_eq!(resource.object_ref(), converted.key);
    assert!(resource.meta().managed_fields.is_none());
    let Resource::Pod(p) = resource else { panic!("not a pod") };
    assert_eq!(p.status.and_then(|s| s.pod_ip).as_deref(), Some("10.0.0.5"));
}

#[test]
fn convert_keeps_cluster_scoped_objects_without_namespace() {
    let ns = object(
        json!({"metadata": {"name": "mesh", "resourceVersion": "3", "labels": {"istio.io/dataplane-mode": "ambient"}}}),
    );
    let converted = convert(Kind::Namespace, ns);
    assert_eq!(converted.key, ObjectRef::new(Kind::Namespace, "", "mesh"));
    let resource = converted.result.expect("namespace converts");
    assert_eq!(resource.meta().namespace, None);
    assert_eq!(resource.object_ref(), converted.key);
}

#[test]
fn convert_reports_invalid_values_with_their_field() {
    let converted = convert(Kind::AuthorizationPolicy, policy("deny-bad", "1.2.3.4/99"));
    let diagnostics = converted.result.expect_err("an invalid CIDR is rejected");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    assert_eq!(d.code, Code::InvalidValue);
    assert_eq!(d.file, "kube");
    assert_eq!(d.object.as_deref(), Some("AuthorizationPolicy default/deny-bad"));
    assert_eq!(d.field.as_deref(), Some("spec.rules[0].from[0].source.ipBlocks[0]"));
    assert!(d.message.contains("1.2.3.4/99"), "{}", d.message);
}

#[test]
fn convert_reports_schema_violations_with_their_field() {
    let bad = object(json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "odd", "namespace": "apps", "resourceVersion": "7"},
        "spec": {"action": "MAYBE"}
    }));
    let diagnostics = convert(Kind::AuthorizationPolicy, bad).result.expect_err("unknown action is rejected");
    assert_eq!(diagnostics[0].code, Code::SchemaViolation);
    assert_eq!(diagnostics[0].field.as_deref(), Some("spec.action"));
    assert_eq!(diagnostics[0].object.as_deref(), Some("AuthorizationPolicy apps/odd"));
}

#[test]
fn convert_requires_a_namespace_on_namespaced_kinds() {
    let orphan = object(json!({"metadata": {"name": "lost", "resourceVersion": "1"}, "spec": {"containers": []}}));
    let diagnostics = convert(Kind::Pod, orphan).result.expect_err("namespaced object without namespace");
    assert_eq!(diagnostics[0].field.as_deref(), Some("metadata.namespace"));
}

fn not_found() -> WatchResult {
    let status = Status::failure("the server could not find the requested resource", "NotFound").with_code(404);
    Err(watcher::Error::InitialListFailed(::kube::Error::Api(status.boxed())))
}

/// Completes an empty initial list for every kind but `except`.
fn list_all_empty(backend: &mut Backend, except: &[Kind]) {
    let batch = Kind::ALL
        .iter()
        .filter(|k| !except.contains(k))
        .flat_map(|&k| [(k, Ok(Event::Init)), (k, Ok(Event::InitDone))])
        .collect();
    backend.handle(batch);
}

#[test]
fn sync_waits_for_every_kind_and_a_404_counts_as_listed() {
    let store = Store::new();
    let mut backend = Backend::new(store.clone(), Kind::ALL);
    list_all_empty(&mut backend, &[Kind::Pod, Kind::HttpRoute]);
    assert!(!store.is_synced());
    backend.handle(vec![(Kind::HttpRoute, Ok(Event::Init)), (Kind::HttpRoute, not_found())]);
    assert!(!store.is_synced(), "pods have not been listed yet");
    let diagnostics = store.diagnostics();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].severity, Severity::Warning);
    assert!(diagnostics[0].message.contains("httproutes"), "{}", diagnostics[0].message);
    backend.handle(vec![(Kind::Pod, Ok(Event::Init)), (Kind::Pod, Ok(Event::InitApply(pod("a", "10.0.0.1"))))]);
    assert!(!store.is_synced(), "the pod list is not done");
    assert!(store.snapshot().is_empty(), "a list is written only when it is complete");
    backend.handle(vec![(Kind::Pod, Ok(Event::InitDone))]);
    assert!(store.is_synced());
    assert_eq!(store.snapshot().len(), 1);

    // The CRD appears: the retried list succeeds and the diagnostic goes away.
    let route = object(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "default", "resourceVersion": "5"},
        "spec": {"parentRefs": [{"name": "waypoint"}]}
    }));
    backend.handle(vec![
        (Kind::HttpRoute, Ok(Event::Init)),
        (Kind::HttpRoute, Ok(Event::InitApply(route))),
        (Kind::HttpRoute, Ok(Event::InitDone)),
    ]);
    assert!(store.diagnostics().is_empty(), "{:?}", store.diagnostics());
    assert!(store.snapshot().get(&ObjectRef::new(Kind::HttpRoute, "default", "r")).is_some());
}

#[test]
fn a_restricted_config_watches_and_waits_for_its_kinds_only() {
    let agent = KubeConfig { kinds: Some(vec![Kind::Pod, Kind::Namespace]), ..KubeConfig::default() };
    assert_eq!(agent.watched_kinds(), vec![Kind::Pod, Kind::Namespace]);
    assert_eq!(KubeConfig::default().watched_kinds(), Kind::ALL.to_vec());
    let store = Store::new();
    let mut backend = Backend::new(store.clone(), &agent.watched_kinds());
    backend.handle(vec![(Kind::Pod, Ok(Event::Init)), (Kind::Pod, Ok(Event::InitDone))]);
    assert!(!store.is_synced(), "namespaces are not listed yet");
    backend.handle(vec![(Kind::Namespace, Ok(Event::Init)), (Kind::Namespace, Ok(Event::InitDone))]);
    assert!(store.is_synced(), "synced without any other kind");
}

#[test]
fn relist_replaces_the_kind_in_one_write() {
    let store = Store::new();
    let mut backend = Backend::new(store.clone(), Kind::ALL);
    list_all_empty(&mut backend, &[Kind::Pod]);
    backend.handle(vec![
        (Kind::Pod, Ok(Event::Init)),
        (Kind::Pod, Ok(Event::InitApply(pod("a", "10.0.0.1")))),
        (Kind::Pod, Ok(Event::InitApply(pod("b", "10.0.0.2")))),
        (Kind::Pod, Ok(Event::InitDone)),
    ]);
    assert_eq!(store.snapshot().len(), 2);
    let mut sub = store.subscribe();
    let before = sub.initial().expect("initial snapshot").revision;

    backend.handle(vec![(Kind::Pod, Ok(Event::Init))]);
    backend.handle(vec![(Kind::Pod, Ok(Event::InitApply(pod("b", "10.0.0.3"))))]);
    assert_eq!(store.snapshot().revision, before, "nothing is written before InitDone");
    backend.handle(vec![(Kind::Pod, Ok(Event::InitDone))]);

    let snapshot = store.snapshot();
    assert_eq!(snapshot.revision, before + 1, "the re-list is one write");
    assert!(snapshot.get(&ObjectRef::new(Kind::Pod, "default", "a")).is_none());
    let Some(b) = snapshot.get(&ObjectRef::new(Kind::Pod, "default", "b")) else { panic!("b is gone") };
    let Resource::Pod(b) = &**b else { panic!("not a pod") };
    assert_eq!(b.status.as_ref().and_then(|s| s.pod_ip.as_deref()), Some("10.0.0.3"));
}

#[test]
fn broken_objects_keep_their_last_good_version() {
    let store = Store::new();
    let mut backend = Backend::new(store.clone(), Kind::ALL);
    list_all_empty(&mut backend, &[]);
    let key = ObjectRef::new(Kind::AuthorizationPolicy, "default", "p");
    backend.handle(vec![(Kind::AuthorizationPolicy, Ok(Event::Apply(policy("p", "10.0.0.0/8"))))]);
    let good = store.snapshot().get(&key).cloned().expect("valid policy stored");

    backend.handle(vec![(Kind::AuthorizationPolicy, Ok(Event::Apply(policy("p", "10.0.0.0/99"))))]);
    assert_eq!(store.snapshot().get(&key), Some(&good), "last good version stays");
    assert_eq!(store.diagnostics().len(), 1);

    // A re-list that still has the broken version keeps the good one too.
    backend.handle(vec![
        (Kind::AuthorizationPolicy, Ok(Event::Init)),
        (Kind::AuthorizationPolicy, Ok(Event::InitApply(policy("p", "10.0.0.0/99")))),
        (Kind::AuthorizationPolicy, Ok(Event::InitDone)),
    ]);
    assert_eq!(store.snapshot().get(&key), Some(&good));
    assert_eq!(store.diagnostics().len(), 1);

    backend.handle(vec![(Kind::AuthorizationPolicy, Ok(Event::Delete(policy("p", "10.0.0.0/99"))))]);
    assert!(store.snapshot().get(&key).is_none());
    assert!(store.diagnostics().is_empty(), "a deleted object's problems go with it");
}

fn write_kubeconfig(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = r#"apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster:
    server: https://127.0.0.1:6443
contexts:
- name: dev
  context:
    cluster: dev
    user: dev
    namespace: mesh
- name: other
  context:
    cluster: dev
    user: dev
    namespace: other-ns
users:
- name: dev
  user:
    token: not-a-real-token
"#;
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

#[tokio::test]
async fn client_reads_a_kubeconfig_and_its_contexts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_kubeconfig(dir.path());

    let cfg = KubeConfig { kubeconfig: Some(path.clone()), context: None, kinds: None };
    let c = client(&cfg).await.expect("current context loads");
    assert_eq!(c.default_namespace(), "mesh");

    let cfg = KubeConfig { kubeconfig: Some(path.clone()), context: Some("other".into()), kinds: None };
    let c = client(&cfg).await.expect("named context loads");
    assert_eq!(c.default_namespace(), "other-ns");

    let cfg = KubeConfig { kubeconfig: Some(path), context: Some("nope".into()), kinds: None };
    match client(&cfg).await {
        Err(ConfigError::Kube(msg)) => assert!(msg.contains("\"nope\""), "{msg}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a missing context must fail"),
    }
}

#[tokio::test]
async fn client_names_a_missing_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent");
    let cfg = KubeConfig { kubeconfig: Some(path.clone()), context: None, kinds: None };
    match client(&cfg).await {
        Err(ConfigError::Kube(msg)) => {
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.starts_with("reading kubeconfig"), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a missing kubeconfig must fail"),
    }
}

#[test]
fn other_list_failures_block_sync_and_say_why() {
    let store = Store::new();
    let mut backend = Backend::new(store.clone(), Kind::ALL);
    list_all_empty(&mut backend, &[Kind::Gateway]);
    let status = Status::failure(
        "gateways.gateway.networking.k8s.io is forbidden: User \"system:serviceaccount:istio-system:ambient\" cannot list resource \"gateways\"",
        "Forbidden",
    )
    .with_code(403);
    let forbidden = Err(watcher::Error::InitialListFailed(::kube::Error::Api(status.boxed())));
    backend.handle(vec![(Kind::Gateway, Ok(Event::Init)), (Kind::Gateway, forbidden)]);
    assert!(!store.is_synced(), "only a 404 counts as an empty list");
    let diagnostics = store.diagnostics();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].code, Code::Unreadable);
    assert_eq!(diagnostics[0].severity, Severity::Error);
    assert!(diagnostics[0].message.starts_with("listing gateway.networking.k8s.io/v1 gateways failed"));
    assert!(diagnostics[0].message.ends_with("(403 Forbidden)"), "{}", diagnostics[0].message);

    backend.handle(vec![(Kind::Gateway, Ok(Event::Init)), (Kind::Gateway, Ok(Event::InitDone))]);
    assert!(store.is_synced());
    assert!(store.diagnostics().is_empty());
}
