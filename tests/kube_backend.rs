//! The `kube` config backend against recorded API server responses (tests/fixtures/kube/),
//! served by a fake API server behind kube's mock service: no cluster, no network.

#[path = "kube_backend/fake_api.rs"]
mod fake_api;

use std::collections::BTreeSet;
use std::time::Duration;

use ambient::config::kube::{KubeConfig, run};
use ambient::config::{Change, Code, Diagnostic, Severity, Store, Update};
use ambient::model::{Kind, ObjectRef, Resource};
use tokio::task::JoinHandle;

use fake_api::{FakeApi, Reply, Verb, ok};

/// How long any single wait may take before the test fails. Re-lists after an error wait for
/// kube's backoff (0.8-1.6 s at first), so this leaves plenty of room.
const WAIT: Duration = Duration::from_secs(15);

/// The backend running against a fake API server; dropping it stops both.
struct Harness {
    api: FakeApi,
    store: Store,
    task: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the backend; `script` queues the fake server's replies before the first request.
fn start(script: impl FnOnce(&FakeApi)) -> Harness {
    let (api, client) = FakeApi::start();
    script(&api);
    let store = Store::new();
    let backend_store = store.clone();
    let task = tokio::spawn(async move {
        let result = run(client, backend_store, KubeConfig::default()).await;
        panic!("the kube backend returned: {result:?}");
    });
    Harness { api, store, task }
}

/// Polls `check` until it holds, failing the test with `what` and the store's state after [`WAIT`].
async fn wait_until(h: &Harness, what: &str, check: impl Fn(&Store) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check(&h.store) {
        assert!(!h.task.is_finished(), "the backend task ended while waiting for {what}");
        if tokio::time::Instant::now() > deadline {
            let keys: Vec<String> = h.store.snapshot().objects.keys().map(ToString::to_string).collect();
            panic!(
                "timed out waiting for {what}\nsynced: {}\nobjects: {keys:#?}\ndiagnostics: {:#?}\nrequests: {:#?}",
                h.store.is_synced(),
                h.store.diagnostics(),
                h.api.requests().iter().map(|r| &r.uri).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_synced(h: &Harness) {
    wait_until(h, "the store to be synced", Store::is_synced).await;
}

fn key(kind: Kind, namespace: &str, name: &str) -> ObjectRef {
    ObjectRef::new(kind, namespace, name)
}

fn keys_of(store: &Store, kind: Kind) -> BTreeSet<String> {
    store.snapshot().objects.keys().filter(|k| k.kind == kind).map(|k| k.name.clone()).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(ToString::to_string).collect()
}

fn pod(store: &Store, name: &str) -> Option<std::sync::Arc<Resource>> {
    store.snapshot().get(&key(Kind::Pod, "default", name)).cloned()
}

fn annotation(resource: &Resource, name: &str) -> Option<String> {
    resource.meta().annotations.as_ref().and_then(|a| a.get(name).cloned())
}

fn diagnostics_for<'a>(all: &'a [Diagnostic], object: &str) -> Vec<&'a Diagnostic> {
    all.iter().filter(|d| d.object.as_deref() == Some(object)).collect()
}

const PRODUCTPAGE: &str = "productpage-v1-6c58956f8b-2xq9d";
const REVIEWS: &str = "reviews-v1-5b7f8d9c4-k8w2m";
const RATINGS: &str = "ratings-v1-7d9f6c5b8-pq4zt";
const DETAILS: &str = "details-v1-65cfcf56f9-8nq7r";

fn recorded_cluster(api: &FakeApi) {
    api.reply(Kind::Namespace, Verb::List, ok("namespaces.json"));
    api.reply(Kind::Pod, Verb::List, ok("pods.json"));
    api.reply(Kind::Service, Verb::List, ok("services.json"));
    api.reply(Kind::AuthorizationPolicy, Verb::List, ok("authorizationpolicies.json"));
}

#[tokio::test]
async fn lists_every_kind_and_syncs_with_exactly_the_listed_objects() {
    let h = start(|api| {
        api.reply(Kind::Namespace, Verb::List, ok("namespaces.json"));
        api.reply(Kind::Pod, Verb::List, ok("pods.json"));
        // Services answer only when the test says so: sync must wait for them.
        api.reply(Kind::Service, Verb::List, Reply::Hold);
        api.reply(Kind::AuthorizationPolicy, Verb::List, ok("authorizationpolicies.json"));
    });

    // Every other kind lists and starts watching; the store is not synced without services.
    let others: Vec<Kind> = Kind::ALL.iter().copied().filter(|&k| k != Kind::Service).collect();
    wait_until(&h, "every kind but Service to start watching", |_| {
        others.iter().all(|&k| !h.api.requests_for(k, Verb::Watch).is_empty())
    })
    .await;
    wait_until(&h, "the listed pods in the store", |s| keys_of(s, Kind::Pod).len() == 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!h.store.is_synced(), "synced before the Service list completed");
    assert_eq!(h.api.requests_for(Kind::Service, Verb::List).len(), 1);

    h.api.reply(Kind::Service, Verb::List, ok("services.json"));
    wait_synced(&h).await;

    // One list per kind, for every kind the mesh consumes, at its served path.
    for &kind in Kind::ALL {
        let lists = h.api.requests_for(kind, Verb::List);
        assert_eq!(lists.len(), 1, "{kind}: {lists:?}");
        assert_eq!(lists[0].param("watch"), None);
        assert_eq!(lists[0].param("limit").as_deref(), Some("500"), "{kind}: paged list");
    }
    assert!(h.api.requests().iter().all(|r| r.kind.is_some()), "request for an unknown path");
    // The watch resumes from the list's resourceVersion.
    let watches = h.api.requests_for(Kind::Pod, Verb::Watch);
    assert_eq!(watches[0].param("resourceVersion").as_deref(), Some("48213"));
    assert_eq!(watches[0].param("allowWatchBookmarks").as_deref(), Some("true"));

    // Exactly the listed objects (the invalid policy is reported, not stored).
    let snapshot = h.store.snapshot();
    let all: BTreeSet<String> = snapshot.objects.keys().map(ToString::to_string).collect();
    let expected: BTreeSet<String> = [
        "Namespace default",
        "Namespace istio-system",
        "Namespace kube-system",
        &format!("Pod default/{PRODUCTPAGE}"),
        &format!("Pod default/{RATINGS}"),
        &format!("Pod default/{REVIEWS}"),
        "Service default/kubernetes",
        "Service default/productpage",
        "Service default/reviews",
        "AuthorizationPolicy default/allow-productpage",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(all, expected);

    // Cluster-scoped objects have no namespace; namespaced ones keep the API's.
    let ns = snapshot.get(&key(Kind::Namespace, "", "default")).expect("namespace default");
    assert_eq!(ns.meta().namespace, None);
    assert_eq!(ns.labels().get("istio.io/dataplane-mode").map(String::as_str), Some("ambient"));
    let p = pod(&h.store, PRODUCTPAGE).expect("productpage pod");
    assert_eq!(p.namespace(), "default");
    assert!(p.meta().managed_fields.is_none(), "managedFields are dropped");
    let Resource::Pod(p) = &*p else { panic!("not a pod") };
    assert_eq!(p.status.as_ref().and_then(|s| s.pod_ip.as_deref()), Some("10.244.1.7"));
    let Some(Resource::Service(svc)) = snapshot.get(&key(Kind::Service, "default", "reviews")).map(|r| &**r) else {
        panic!("reviews service")
    };
    assert_eq!(svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()), Some("10.96.112.250"));
}

#[tokio::test]
async fn watch_events_show_up_as_store_changes() {
    let h = start(recorded_cluster);
    wait_synced(&h).await;
    wait_until(&h, "the pod watch to start", |_| !h.api.requests_for(Kind::Pod, Verb::Watch).is_empty()).await;
    let mut sub = h.store.subscribe();
    let before = sub.initial().expect("initial snapshot");
    let old_reviews = before.get(&key(Kind::Pod, "default", REVIEWS)).cloned().expect("reviews listed");
    assert_eq!(annotation(&old_reviews, "ambient.istio.io/redirection"), None);

    // ADDED details, MODIFIED reviews, DELETED ratings, then a BOOKMARK; the body then ends.
    h.api.reply(Kind::Pod, Verb::Watch, ok("pods-watch.jsonl"));
    wait_until(&h, "the watch events in the store", |s| {
        keys_of(s, Kind::Pod) == names(&[DETAILS, PRODUCTPAGE, REVIEWS])
    })
    .await;

    let reviews = pod(&h.store, REVIEWS).expect("reviews pod");
    assert_eq!(annotation(&reviews, "ambient.istio.io/redirection").as_deref(), Some("enabled"));
    assert_eq!(reviews.meta().resource_version.as_deref(), Some("48231"));

    // Subscribers saw exactly those three changes, in order.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(WAIT, sub.next()).await.expect("timed out waiting for changes") {
            Some(Update::Changes(set)) => seen.extend(set.changes.iter().map(|c| match c {
                Change::Applied(r) => format!("applied {}", r.name()),
                Change::Deleted(r) => format!("deleted {}", r.name()),
            })),
            other => panic!("unexpected update: {other:?}"),
        }
    }
    assert_eq!(seen, [format!("applied {DETAILS}"), format!("applied {REVIEWS}"), format!("deleted {RATINGS}")]);

    // The watch ended after the bookmark: kube resumes from the bookmark's resourceVersion,
    // without a new list.
    wait_until(&h, "the watch to resume", |_| h.api.requests_for(Kind::Pod, Verb::Watch).len() >= 2).await;
    let watches = h.api.requests_for(Kind::Pod, Verb::Watch);
    assert_eq!(watches[1].param("resourceVersion").as_deref(), Some("48500"));
    assert_eq!(h.api.requests_for(Kind::Pod, Verb::List).len(), 1);
    // Other kinds are untouched.
    assert_eq!(keys_of(&h.store, Kind::Service), names(&["kubernetes", "productpage", "reviews"]));
}

#[tokio::test]
async fn gone_relists_and_deletes_what_the_new_list_lacks() {
    let h = start(|api| {
        recorded_cluster(api);
        api.reply(Kind::Pod, Verb::List, ok("pods-relist.json"));
    });
    wait_synced(&h).await;
    assert_eq!(keys_of(&h.store, Kind::Pod), names(&[PRODUCTPAGE, RATINGS, REVIEWS]));
    wait_until(&h, "the pod watch to start", |_| !h.api.requests_for(Kind::Pod, Verb::Watch).is_empty()).await;
    let mut sub = h.store.subscribe();
    let before = sub.initial().expect("initial snapshot");
    let productpage = before.get(&key(Kind::Pod, "default", PRODUCTPAGE)).cloned().expect("productpage");

    // 410 Gone: the watcher backs off, lists again, and the store follows the new list.
    h.api.reply(Kind::Pod, Verb::Watch, ok("watch-gone.jsonl"));
    wait_until(&h, "the re-list in the store", |s| keys_of(s, Kind::Pod) == names(&[DETAILS, PRODUCTPAGE, RATINGS]))
        .await;
    assert_eq!(h.api.requests_for(Kind::Pod, Verb::List).len(), 2, "one re-list");
    let ratings = pod(&h.store, RATINGS).expect("ratings remains");
    assert_eq!(annotation(&ratings, "ambient.istio.io/redirection").as_deref(), Some("enabled"));
    assert_eq!(pod(&h.store, PRODUCTPAGE).as_ref(), Some(&productpage), "unchanged objects stay as they were");

    // The whole re-list arrived as one change set: no window with a half-listed kind.
    let update = tokio::time::timeout(WAIT, sub.next()).await.expect("a change set").expect("store is alive");
    let Update::Changes(set) = update else { panic!("unexpected resync") };
    let mut changes: Vec<String> = set
        .changes
        .iter()
        .map(|c| match c {
            Change::Applied(r) => format!("applied {}", r.name()),
            Change::Deleted(r) => format!("deleted {}", r.name()),
        })
        .collect();
    changes.sort();
    assert_eq!(changes, [format!("applied {DETAILS}"), format!("applied {RATINGS}"), format!("deleted {REVIEWS}")]);

    // Other kinds are untouched, and the new watch starts from the new list.
    assert_eq!(keys_of(&h.store, Kind::Service), names(&["kubernetes", "productpage", "reviews"]));
    assert_eq!(keys_of(&h.store, Kind::Namespace).len(), 3);
    wait_until(&h, "the watch to restart", |_| h.api.requests_for(Kind::Pod, Verb::Watch).len() >= 2).await;
    let watches = h.api.requests_for(Kind::Pod, Verb::Watch);
    assert_eq!(watches[1].param("resourceVersion").as_deref(), Some("49102"));
}

#[tokio::test]
async fn a_missing_crd_does_not_block_sync_and_flows_once_installed() {
    let h = start(|api| {
        recorded_cluster(api);
        api.reply(Kind::HttpRoute, Verb::List, Reply::Body(404, fake_api::fixture("httproutes-404.json")));
        // The retry is held until the "CRD is installed" below.
        api.reply(Kind::HttpRoute, Verb::List, Reply::Hold);
    });
    wait_synced(&h).await;
    assert!(keys_of(&h.store, Kind::HttpRoute).is_empty());
    assert_eq!(keys_of(&h.store, Kind::Pod).len(), 3, "other kinds load");
    let diagnostics = h.store.diagnostics();
    let missing: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.message.contains("httproutes")).collect();
    assert_eq!(missing.len(), 1, "{diagnostics:#?}");
    assert_eq!(missing[0].severity, Severity::Warning);
    assert_eq!(missing[0].file, "kube");
    assert!(missing[0].message.contains("gateway.networking.k8s.io/v1"), "{}", missing[0].message);

    // The watcher keeps retrying in the background; the CRD appears.
    wait_until(&h, "the list to be retried", |_| h.api.requests_for(Kind::HttpRoute, Verb::List).len() >= 2).await;
    h.api.reply(Kind::HttpRoute, Verb::List, ok("httproutes.json"));
    wait_until(&h, "the route in the store", |s| keys_of(s, Kind::HttpRoute) == names(&["reviews"])).await;
    let diagnostics = h.store.diagnostics();
    assert!(diagnostics.iter().all(|d| !d.message.contains("httproutes")), "{diagnostics:#?}");
    let Some(Resource::HttpRoute(route)) =
        h.store.snapshot().get(&key(Kind::HttpRoute, "default", "reviews")).map(|r| (**r).clone())
    else {
        panic!("route")
    };
    assert_eq!(route.spec.rules[0].backend_refs.len(), 2);
}

#[tokio::test]
async fn invalid_objects_become_diagnostics_and_keep_their_last_good_version() {
    let h = start(recorded_cluster);
    wait_synced(&h).await;

    // The policy with ipBlocks ["1.2.3.4/99"] is reported with its field; the rest loads.
    let bad = "AuthorizationPolicy default/deny-bad-cidr";
    let diagnostics = h.store.diagnostics();
    let found = diagnostics_for(&diagnostics, bad);
    assert_eq!(found.len(), 1, "{diagnostics:#?}");
    assert_eq!(found[0].code, Code::InvalidValue);
    assert_eq!(found[0].file, "kube");
    assert_eq!(found[0].field.as_deref(), Some("spec.rules[0].from[0].source.ipBlocks[0]"));
    assert!(found[0].message.contains("1.2.3.4/99"), "{}", found[0].message);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(keys_of(&h.store, Kind::AuthorizationPolicy), names(&["allow-productpage"]));
    assert_eq!(keys_of(&h.store, Kind::Pod).len(), 3);
    let allow_key = key(Kind::AuthorizationPolicy, "default", "allow-productpage");
    let good = h.store.snapshot().get(&allow_key).cloned().expect("valid policy");

    // MODIFIED: the bad policy is fixed, and the good one breaks (port "http").
    wait_until(&h, "the policy watch to start", |_| {
        !h.api.requests_for(Kind::AuthorizationPolicy, Verb::Watch).is_empty()
    })
    .await;
    h.api.reply(Kind::AuthorizationPolicy, Verb::Watch, ok("authorizationpolicies-watch.jsonl"));
    wait_until(&h, "the fixed policy in the store", |s| {
        keys_of(s, Kind::AuthorizationPolicy) == names(&["allow-productpage", "deny-bad-cidr"])
    })
    .await;
    wait_until(&h, "the broken policy's diagnostic", |s| {
        !diagnostics_for(&s.diagnostics(), "AuthorizationPolicy default/allow-productpage").is_empty()
    })
    .await;

    assert_eq!(h.store.snapshot().get(&allow_key), Some(&good), "the last good version stays");
    let diagnostics = h.store.diagnostics();
    assert!(diagnostics_for(&diagnostics, bad).is_empty(), "fixed: {diagnostics:#?}");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].field.as_deref(), Some("spec.rules[0].to[0].operation.ports[0]"));
    let Some(Resource::AuthorizationPolicy(fixed)) =
        h.store.snapshot().get(&key(Kind::AuthorizationPolicy, "default", "deny-bad-cidr")).map(|r| (**r).clone())
    else {
        panic!("fixed policy")
    };
    let rules = fixed.spec.rules.expect("rules");
    assert_eq!(rules[0].from[0].source.ip_blocks, ["1.2.3.0/24"]);
}
