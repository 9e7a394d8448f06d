//! A recorded-response Kubernetes API server on 127.0.0.1 (plain HTTP), for install and
//! uninstall tests: no real API server can run on the test machines.
//!
//! It answers the way a real API server does (bodies shaped from the recordings in
//! `tests/fixtures/apiserver/`): `/version`; GET, LIST (with `labelSelector`), server-side apply
//! PATCH and DELETE on the kinds `ambient install` creates, plus Pods; `Status` bodies for
//! errors; List kinds without per-item `apiVersion`/`kind`. It keeps objects in memory:
//!
//! - apply stores the object and remembers each field manager's applied configuration, so a
//!   manager that applies fewer fields releases the others (a bare apply drops its labels), and
//!   `metadata.managedFields` lists every manager;
//! - `dryRun=All` computes the answer and stores nothing;
//! - a namespaced object in a namespace that does not exist is refused with `404 namespaces "x"
//!   not found`, as the real server does (also in a dry run);
//! - Deployments and DaemonSets roll out as [`Rollout`] says; CRDs become Established after a
//!   set number of reads; a deleted namespace stays `Terminating` for a few requests, then goes
//!   with everything in it;
//! - [`ApiServer::reply_once`] answers one request with a recorded body (e.g. a 409 conflict).
//!
//! Every request is recorded (method, path, query, body) for the tests to check.
//! The server runs on its own thread and runtime, so both async tests and tests of the binary
//! (`assert_cmd`, which blocks) can use it.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ambient::install::{INSTALLED_KINDS, InstalledKind};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

use self::model::{
    crd_status, leaves, managed_fields, matches_selector, merge, parse_query, remove_path, workload_status,
};

mod model;

/// Reads a recorded body from `tests/fixtures/apiserver/`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/apiserver/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// How Deployments and DaemonSets roll out after an apply that changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Rolled out as soon as applied.
    Immediate,
    /// Rolled out after this many reads of the workload.
    AfterReads(u32),
    /// Never (until [`ApiServer::set_rolled_out`]).
    Never,
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// The JSON body, if any.
    pub body: Option<Value>,
    pub content_type: String,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A server-side apply.
    pub fn is_apply(&self) -> bool {
        self.method == "PATCH" && self.content_type.starts_with("application/apply-patch")
    }

    pub fn is_delete(&self) -> bool {
        self.method == "DELETE"
    }

    /// Whether this request changes something (or would, without dry run).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// Where a stored object lives: (apiVersion, plural, namespace, name).
type Key = (String, String, Option<String>, String);

/// A kind the server serves.
#[derive(Debug, Clone, Copy)]
struct Served {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
}

const POD: Served = Served { api_version: "v1", kind: "Pod", plural: "pods", namespaced: true };

fn served(api_version: &str, plural: &str) -> Option<Served> {
    let of = |k: &InstalledKind| Served {
        api_version: k.api_version,
        kind: k.kind,
        plural: k.plural,
        namespaced: k.namespaced,
    };
    if api_version == POD.api_version && plural == POD.plural {
        return Some(POD);
    }
    INSTALLED_KINDS.iter().find(|k| k.api_version == api_version && k.plural == plural).map(of)
}

fn served_kind(api_version: &str, kind: &str) -> Option<Served> {
    if api_version == POD.api_version && kind == POD.kind {
        return Some(POD);
    }
    let k = INSTALLED_KINDS.iter().find(|k| k.api_version == api_version && k.kind == kind)?;
    served(k.api_version, k.plural)
}

#[derive(Debug, Clone)]
struct Stored {
    object: Value,
    /// Each field manager's last applied configuration.
    applied: BTreeMap<String, Value>,
    /// Reads since the last change (workload rollouts, CRD establishment).
    reads: u32,
    /// A deleted namespace: requests left until it is gone.
    terminating: Option<u32>,
}

struct Scripted {
    method: String,
    path: String,
    code: u16,
    body: Value,
}

struct State {
    version: Value,
    objects: BTreeMap<Key, Stored>,
    requests: Vec<Seen>,
    scripted: Vec<Scripted>,
    rollout: Rollout,
    crd_established_after: u32,
    nodes: i64,
    resource_version: u64,
    uids: u64,
    status_template: Value,
}

/// The running server; dropping it stops it.
pub struct ApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl ApiServer {
    /// Starts an empty Kubernetes 1.33 cluster with 3 nodes, whose workloads roll out at once
    /// and whose CRDs are established at once.
    pub fn start() -> ApiServer {
        let state = Arc::new(Mutex::new(State {
            version: fixture("version-1.33.json"),
            objects: BTreeMap::new(),
            requests: Vec::new(),
            scripted: Vec::new(),
            rollout: Rollout::Immediate,
            crd_established_after: 0,
            nodes: 3,
            resource_version: 1000,
            uids: 0,
            status_template: fixture("status-not-found.json"),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let served_state = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(serve(listener, served_state, stopped));
        });
        ApiServer { addr, state, stop: Some(stop), thread: Some(thread) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server into `dir`, with a bearer token that must never be
    /// printed ([`TOKEN`]).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        write_kubeconfig(dir, &self.url())
    }

    /// Answers `/version` with a recorded body.
    pub fn set_version(&self, fixture_name: &str) {
        self.state().version = fixture(fixture_name);
    }

    pub fn set_rollout(&self, rollout: Rollout) {
        self.state().rollout = rollout;
    }

    /// CRDs become Established after this many reads (0: at once).
    pub fn set_crd_established_after(&self, reads: u32) {
        self.state().crd_established_after = reads;
    }

    /// Answers the next `method` on `path` with `code` and a recorded body.
    pub fn reply_once(&self, method: &str, path: &str, code: u16, fixture_name: &str) {
        let body = fixture(fixture_name);
        self.state().scripted.push(Scripted { method: method.into(), path: path.into(), code, body });
    }

    /// Stores an object as it is (a recorded one from another installer), with server fields.
    pub fn insert(&self, mut object: Value) {
        let mut state = self.state();
        let key = key_of(&object).expect("an object of a served kind with a name");
        state.stamp_new(&mut object);
        state.objects.insert(key, Stored { object, applied: BTreeMap::new(), reads: 0, terminating: None });
    }

    pub fn insert_fixture(&self, fixture_name: &str) {
        self.insert(fixture(fixture_name));
    }

    /// Marks a workload rolled out.
    pub fn set_rolled_out(&self, kind: &str, namespace: &str, name: &str) {
        let mut state = self.state();
        let nodes = state.nodes;
        let stored = state.find_mut(kind, Some(namespace), name).expect("the workload exists");
        stored.object["status"] = workload_status(&stored.object, nodes, true);
    }

    /// A stored object, with `apiVersion` and `kind`.
    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.state().find_mut(kind, namespace, name).map(|s| s.object.clone())
    }

    /// Every stored object, in key order.
    pub fn objects(&self) -> Vec<Value> {
        self.state().objects.values().map(|s| s.object.clone()).collect()
    }

    /// `Kind namespace/name` of every stored object with `label=value`.
    pub fn labelled(&self, label: &str, value: &str) -> Vec<String> {
        let state = self.state();
        state
            .objects
            .values()
            .filter(|s| s.object.pointer("/metadata/labels").and_then(|l| l.get(label)) == Some(&json!(value)))
            .map(|s| describe(&s.object))
            .collect()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.state().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}

/// The bearer token of the kubeconfigs this module writes.
pub const TOKEN: &str = "fake-token-never-printed-5e1f";

/// Writes a kubeconfig pointing at `server` into `dir`/kubeconfig.
pub fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n\
         users:\n- name: fake\n  user:\n    token: {TOKEN}\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
         current-context: fake\n"
    );
    std::fs::write(&path, text).expect("writing the kubeconfig");
    path
}

/// `Kind namespace/name` (or `Kind name`) of an object.
pub fn describe(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    match object.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn key_of(object: &Value) -> Option<Key> {
    let s = served_kind(object["apiVersion"].as_str()?, object["kind"].as_str()?)?;
    let name = object.pointer("/metadata/name")?.as_str()?.to_string();
    let namespace = if s.namespaced {
        Some(object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string())
    } else {
        None
    };
    Some((s.api_version.to_string(), s.plural.to_string(), namespace, name))
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        body: serde_json::from_slice(&bytes).ok(),
        content_type: parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    };
    let (code, body) = {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        state.requests.push(seen.clone());
        state.tick();
        state.serve(&parts.method, &seen)
    };
    let response = Response::builder()
        .status(code)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response");
    Ok(response)
}

/// A request's target, from its path.
struct Target {
    served: Served,
    namespace: Option<String>,
    name: Option<String>,
}

fn route(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ((*version).to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] if served(&api_version, plural).is_some_and(|s| s.namespaced) => {
            (Some(*ns), *plural, None)
        }
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return None,
    };
    let served = served(&api_version, plural)?;
    if namespace.is_some() && !served.namespaced {
        return None;
    }
    Some(Target { served, namespace: namespace.map(str::to_string), name: name.map(str::to_string) })
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// `deployments.apps`, `namespaces`: how the server names a resource in messages.
fn resource_name(s: &Served) -> String {
    match group_of(s.api_version) {
        "" => s.plural.to_string(),
        group => format!("{}.{group}", s.plural),
    }
}

impl State {
    fn status(&self, code: u16, reason: &str, message: String, details: Value) -> (u16, Value) {
        let mut body = self.status_template.clone();
        body["code"] = json!(code);
        body["reason"] = json!(reason);
        body["message"] = json!(message);
        body["details"] = details;
        (code, body)
    }

    fn not_found(&self, s: &Served, name: &str) -> (u16, Value) {
        let mut details = json!({ "name": name, "kind": s.plural });
        if !group_of(s.api_version).is_empty() {
            details["group"] = json!(group_of(s.api_version));
        }
        self.status(404, "NotFound", format!("{} {name:?} not found", resource_name(s)), details)
    }

    fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// Server-set metadata of a new object.
    fn stamp_new(&mut self, object: &mut Value) {
        self.uids += 1;
        let uid = format!("6f1c2a9e-8d3b-4c1f-9a7e-{:012x}", self.uids);
        let rv = self.next_resource_version();
        let meta = &mut object["metadata"];
        if meta.get("uid").is_none() {
            meta["uid"] = json!(uid);
        }
        meta["resourceVersion"] = json!(rv);
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!("2025-06-02T09:30:00Z");
        }
    }

    fn find_mut(&mut self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&mut Stored> {
        self.objects.values_mut().find(|s| {
            s.object["kind"] == kind
                && s.object.pointer("/metadata/namespace").and_then(Value::as_str) == namespace
                && s.object.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        })
    }

    fn namespace_exists(&self, name: &str) -> bool {
        self.objects.contains_key(&("v1".to_string(), "namespaces".to_string(), None, name.to_string()))
    }

    /// Time passes with each request: terminating namespaces finish, taking their contents along.
    fn tick(&mut self) {
        let mut gone = Vec::new();
        for (key, stored) in self.objects.iter_mut() {
            if let Some(left) = stored.terminating.as_mut() {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    gone.push(key.3.clone());
                }
            }
        }
        for ns in gone {
            self.objects
                .retain(|key, _| !(key.2.as_deref() == Some(ns.as_str()) || (key.1 == "namespaces" && key.3 == ns)));
        }
    }

    fn serve(&mut self, method: &Method, seen: &Seen) -> (u16, Value) {
        if let Some(i) = self.scripted.iter().position(|s| s.method == seen.method && s.path == seen.path) {
            let scripted = self.scripted.remove(i);
            return (scripted.code, scripted.body);
        }
        if seen.path == "/version" && method == Method::GET {
            return (200, self.version.clone());
        }
        let Some(target) = route(&seen.path) else {
            return self.status(404, "NotFound", "the server could not find the requested resource".into(), json!({}));
        };
        match (method, &target.name) {
            (&Method::GET, Some(_)) => self.get(&target),
            (&Method::GET, None) => self.list(&target, seen.param("labelSelector")),
            (&Method::PATCH, Some(_)) => self.apply(&target, seen),
            (&Method::DELETE, Some(_)) => self.delete(&target, seen),
            _ => self.status(405, "MethodNotAllowed", format!("{method} is not supported here"), json!({})),
        }
    }

    fn key(target: &Target) -> Key {
        (
            target.served.api_version.to_string(),
            target.served.plural.to_string(),
            target.namespace.clone(),
            target.name.clone().unwrap_or_default(),
        )
    }

    fn get(&mut self, target: &Target) -> (u16, Value) {
        let (rollout, crd_after, nodes) = (self.rollout, self.crd_established_after, self.nodes);
        let name = target.name.clone().unwrap_or_default();
        let Some(stored) = self.objects.get_mut(&Self::key(target)) else {
            return self.not_found(&target.served, &name);
        };
        stored.reads += 1;
        match target.served.kind {
            "Deployment" | "DaemonSet" => {
                if let Rollout::AfterReads(n) = rollout
                    && stored.reads >= n
                    && !stored.applied.is_empty()
                {
                    stored.object["status"] = workload_status(&stored.object, nodes, true);
                }
            }
            "CustomResourceDefinition" if stored.reads >= crd_after && !stored.applied.is_empty() => {
                stored.object["status"] = crd_status(&stored.object, true);
            }
            _ => {}
        }
        (200, stored.object.clone())
    }

    fn list(&mut self, target: &Target, selector: Option<&str>) -> (u16, Value) {
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(key, _)| key.0 == target.served.api_version && key.1 == target.served.plural)
            .filter(|(key, _)| target.namespace.is_none() || key.2 == target.namespace)
            .filter(|(_, s)| selector.is_none_or(|sel| matches_selector(&s.object, sel)))
            .map(|(_, s)| {
                // A real list's items carry no apiVersion or kind.
                let mut item = s.object.clone();
                if let Some(map) = item.as_object_mut() {
                    map.remove("apiVersion");
                    map.remove("kind");
                }
                item
            })
            .collect();
        let rv = self.resource_version.to_string();
        let list = json!({
            "kind": format!("{}List", target.served.kind),
            "apiVersion": target.served.api_version,
            "metadata": { "resourceVersion": rv },
            "items": items,
        });
        (200, list)
    }

    fn apply(&mut self, target: &Target, seen: &Seen) -> (u16, Value) {
        let s = target.served;
        let name = target.name.clone().unwrap_or_default();
        if !seen.is_apply() {
            return self.status(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (got {:?})", seen.content_type),
                json!({}),
            );
        }
        let Some(manager) = seen.param("fieldManager").filter(|m| !m.is_empty()).map(str::to_string) else {
            return self.status(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                    .into(),
                json!({ "group": "meta.k8s.io", "kind": "PatchOptions" }),
            );
        };
        let dry_run = match seen.param("dryRun") {
            None => false,
            Some("All") => true,
            Some(other) => {
                return self.status(400, "BadRequest", format!("invalid dry run option: {other:?}"), json!({}));
            }
        };
        let Some(config) = seen.body.clone().filter(Value::is_object) else {
            return self.status(400, "BadRequest", "the apply body is not a JSON/YAML object".into(), json!({}));
        };
        if config["apiVersion"] != s.api_version || config["kind"] != s.kind {
            return self.status(
                400,
                "BadRequest",
                format!("the body is not a {} {}", s.api_version, s.kind),
                json!({}),
            );
        }
        if config.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str()) {
            return self.status(
                400,
                "BadRequest",
                format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    config.pointer("/metadata/name").unwrap_or(&Value::Null)
                ),
                json!({}),
            );
        }
        if let Some(ns) = &target.namespace {
            if let Some(body_ns) = config.pointer("/metadata/namespace").and_then(Value::as_str)
                && body_ns != ns
            {
                return self.status(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                    json!({}),
                );
            }
            if !self.namespace_exists(ns) {
                return self.not_found(&served("v1", "namespaces").expect("namespaces are served"), ns);
            }
        }
        let key = Self::key(target);
        let existing = self.objects.get(&key).cloned();
        let created = existing.is_none();
        let mut stored =
            existing.unwrap_or(Stored { object: json!({}), applied: BTreeMap::new(), reads: 0, terminating: None });
        let before = stored.object.clone();
        // Fields this manager applied before and no longer does are released: removed unless
        // another manager applies them too.
        if let Some(previous) = stored.applied.get(&manager) {
            let now = leaves(&config);
            let others: BTreeSet<Vec<String>> =
                stored.applied.iter().filter(|(m, _)| **m != manager).flat_map(|(_, c)| leaves(c)).collect();
            for path in leaves(previous) {
                if !now.contains(&path) && !others.contains(&path) {
                    remove_path(&mut stored.object, &path);
                }
            }
        }
        merge(&mut stored.object, &config);
        if let Some(ns) = &target.namespace {
            stored.object["metadata"]["namespace"] = json!(ns);
        }
        stored.applied.insert(manager, config);
        self.server_defaults(&mut stored, &before, created);
        stored.object["metadata"]["managedFields"] = managed_fields(&before, &stored.applied, s.api_version);
        let changed = stored.object != before;
        if created {
            self.stamp_new(&mut stored.object);
        } else if changed {
            stored.object["metadata"]["resourceVersion"] = json!(self.next_resource_version());
        }
        let answer = stored.object.clone();
        if !dry_run {
            self.objects.insert(key, stored);
        }
        (if created { 201 } else { 200 }, answer)
    }

    /// What the server and its controllers add: generations, namespace label and phase, CRD
    /// and workload status.
    fn server_defaults(&self, stored: &mut Stored, before: &Value, created: bool) {
        let object = &mut stored.object;
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let spec_changed = created || before.get("spec") != object.get("spec");
        if matches!(kind.as_str(), "Deployment" | "DaemonSet" | "CustomResourceDefinition" | "PodDisruptionBudget") {
            let generation = before.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            object["metadata"]["generation"] = json!(if spec_changed { generation + 1 } else { generation });
        }
        match kind.as_str() {
            "Namespace" => {
                let name = object["metadata"]["name"].clone();
                object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
                object["spec"] = json!({ "finalizers": ["kubernetes"] });
                object["status"] = json!({ "phase": "Active" });
            }
            "Deployment" | "DaemonSet" if spec_changed => {
                stored.reads = 0;
                object["status"] = workload_status(object, self.nodes, self.rollout == Rollout::Immediate);
            }
            "CustomResourceDefinition" if spec_changed => {
                stored.reads = 0;
                object["status"] = crd_status(object, self.crd_established_after == 0);
            }
            _ => {}
        }
    }

    fn delete(&mut self, target: &Target, seen: &Seen) -> (u16, Value) {
        let name = target.name.clone().unwrap_or_default();
        let key = Self::key(target);
        let Some(stored) = self.objects.get(&key) else {
            return self.not_found(&target.served, &name);
        };
        let dry_run = seen.body.as_ref().and_then(|b| b.get("dryRun")).is_some_and(|d| d == &json!(["All"]));
        let uid = stored.object.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
        if target.served.kind == "Namespace" {
            // A namespace terminates first; the answer is the namespace itself.
            let mut object = stored.object.clone();
            object["metadata"]["deletionTimestamp"] = json!("2025-06-02T10:00:00Z");
            object["status"] = json!({ "phase": "Terminating" });
            if !dry_run && let Some(stored) = self.objects.get_mut(&key) {
                stored.object = object.clone();
                stored.terminating.get_or_insert(3);
            }
            return (200, object);
        }
        if !dry_run {
            self.objects.remove(&key);
        }
        let mut details = json!({ "name": name, "kind": target.served.plural, "uid": uid });
        if !group_of(target.served.api_version).is_empty() {
            details["group"] = json!(group_of(target.served.api_version));
        }
        (200, json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details }))
    }
}
