//! The delta ADS server and client over real gRPC on 127.0.0.1: a cache fed with
//! `ResourceUpdate`s on one side, our client (or a raw stream) on the other.

#[path = "xds/support.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ambient::xds::Resource;
use ambient::xds::auth::{AuthError, Authenticator, Caller};
use ambient::xds::client::{
    Changes, Client, ClientConfig, Decoded, Handler, Rejection, Subscription, TlsOptions, TokenSource,
};
use ambient::xds::proto::workload::{Address, address};
use ambient::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};
use ambient::xds::server::{CallerStatus, ConnectionStatus, Server, SubscriptionStatus, XdsMetrics};
use bytes::Bytes;
use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use support::*;

const ADDRESS_LABEL: &str = "{type=\"istio.workload.Address\"}";

/// Records what a handler saw, and rejects the names in `reject`.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    reject: Mutex<HashSet<String>>,
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

impl Handler for Recorder {
    fn apply(&self, changes: &Changes<'_>) -> Result<(), Vec<Rejection>> {
        let reject = self.reject.lock().unwrap();
        let mut events = self.events.lock().unwrap();
        events.extend(changes.upserts.iter().map(|r| format!("upsert:{}", r.name)));
        events.extend(changes.removals.iter().map(|n| format!("remove:{n}")));
        let rejections: Vec<Rejection> = changes
            .upserts
            .iter()
            .filter(|r| reject.contains(&r.name))
            .map(|r| Rejection { name: r.name.clone(), reason: "unsupported port".to_string() })
            .collect();
        if rejections.is_empty() { Ok(()) } else { Err(rejections) }
    }
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn connection(server: &TestServer, node: &str) -> ConnectionStatus {
    let connections = server.server.connections();
    connections.into_iter().find(|c| c.node_id == node).unwrap_or_else(|| panic!("no connection of {node}"))
}

fn blob(name: &str, revision: u32, size: usize) -> Resource {
    let mut body = vec![0u8; size];
    body[..4].copy_from_slice(&revision.to_be_bytes());
    Resource { type_url: ADDRESS_TYPE, name: name.to_string(), aliases: Vec::new(), body: Bytes::from(body) }
}

#[tokio::test]
async fn full_state_on_connect() {
    let mut registry = Registry::default();
    let (cache, server) = serve(&mut registry).await;
    cache.apply(upsert(vec![
        workload("w1", [10, 0, 0, 1], 1),
        workload("w2", [10, 0, 0, 2], 1),
        authorization("allow", false),
    ]));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let typed = {
        let seen = seen.clone();
        Decoded::new(move |resources: Vec<(_, Address)>, _removals: &[String]| {
            for (_, address) in resources {
                if let Some(address::Type::Workload(w)) = address.r#type {
                    seen.lock().unwrap().push(w.uid);
                }
            }
            Ok(())
        })
    };
    let client = client(
        &server,
        "node-a",
        vec![
            Subscription::wildcard(ADDRESS_TYPE).with_handler(Arc::new(typed)),
            Subscription::wildcard(AUTHORIZATION_TYPE),
        ],
    );
    eventually(&client, "the full state", |c| {
        names(c, ADDRESS_TYPE) == ["w1", "w2"] && names(c, AUTHORIZATION_TYPE) == ["default/allow"]
    })
    .await;
    assert_eq!(sorted(seen.lock().unwrap().clone()), ["w1", "w2"], "the typed handler decoded both workloads");
    let by_alias = client.get(ADDRESS_TYPE, "/10.0.0.2").expect("lookup by alias");
    assert_eq!(by_alias.name, "w2");
    assert_eq!(by_alias.aliases, ["/10.0.0.2"]);
    assert_eq!(by_alias.version, *cache.lookup(ADDRESS_TYPE, "w2").unwrap().version);

    until("both types ACKed", || {
        let status = connection(&server, "node-a");
        status.types.len() == 2 && status.types.values().all(|t| t.last_acked.is_some() && t.last_acked == t.last_sent)
    })
    .await;
    let status = connection(&server, "node-a");
    assert_eq!(status.pod_name.as_deref(), Some("ztunnel-node-a"));
    assert_eq!(status.pod_namespace.as_deref(), Some("istio-system"));
    assert_eq!(status.node_name.as_deref(), Some("node-a"));
    assert_eq!(status.caller, None);
    let addresses = &status.types[ADDRESS_TYPE];
    assert_eq!(addresses.subscription, SubscriptionStatus::Wildcard { names: 0 });
    assert_eq!((addresses.resources, addresses.pushes, addresses.nacks), (2, 1, 0));
    let json = serde_json::to_value(server.server.connections()).unwrap();
    assert_eq!(json[0]["types"][ADDRESS_TYPE]["subscription"]["kind"], "wildcard");

    assert_eq!(metric(&registry, "xds_connected_clients"), Some(1.0));
    assert_eq!(metric(&registry, &format!("xds_pushes_total{ADDRESS_LABEL}")), Some(1.0));
    assert_eq!(metric(&registry, &format!("xds_resources_sent_total{ADDRESS_LABEL}")), Some(2.0));
    drop(client);
    until("the connection to go away", || server.server.connections().is_empty()).await;
    assert_eq!(metric(&registry, "xds_connected_clients"), Some(0.0));
}

#[tokio::test]
async fn update_sends_only_what_changed_and_removals() {
    let mut registry = Registry::default();
    let (cache, server) = serve(&mut registry).await;
    cache.apply(upsert(vec![
        workload("w1", [10, 0, 0, 1], 1),
        workload("w2", [10, 0, 0, 2], 1),
        workload("w3", [10, 0, 0, 3], 1),
    ]));
    let mut raw = RawStream::open(&server, request(ADDRESS_TYPE, &[], &[]), None).await;
    let initial = raw.recv_ack().await;
    assert_eq!(resource_names(&initial), ["w1", "w2", "w3"]);
    assert!(initial.removed_resources.is_empty());
    let first_w2 = initial.resources.iter().find(|r| r.name == "w2").unwrap().clone();
    assert_eq!(first_w2.aliases, ["/10.0.0.2"]);
    assert_eq!(first_w2.resource.as_ref().unwrap().type_url, ADDRESS_TYPE);

    // w1 unchanged, w2 changed: only w2 travels.
    cache.apply(upsert(vec![workload("w1", [10, 0, 0, 1], 1), workload("w2", [10, 0, 0, 2], 2)]));
    let delta = raw.recv_ack().await;
    assert_eq!(resource_names(&delta), ["w2"]);
    assert_ne!(delta.resources[0].version, first_w2.version);
    assert_ne!(delta.nonce, initial.nonce);

    // A no-op update pushes nothing.
    cache.apply(upsert(vec![workload("w1", [10, 0, 0, 1], 1)]));
    raw.assert_silent(Duration::from_millis(300)).await;

    cache.apply(remove(ADDRESS_TYPE, "w3"));
    let removal = raw.recv_ack().await;
    assert!(removal.resources.is_empty());
    assert_eq!(removal.removed_resources, ["w3"]);
    assert!(![&initial.nonce, &delta.nonce].contains(&&removal.nonce));
    // The push latency histogram saw the two pushes caused by changes, not the initial state.
    assert_eq!(metric(&registry, "xds_push_latency_seconds_count"), Some(2.0));
}

#[tokio::test]
async fn removal_reaches_the_client_and_its_handler() {
    let (cache, server) = serve(&mut Registry::default()).await;
    cache.apply(upsert(vec![workload("w1", [10, 0, 0, 1], 1), authorization("deny", false)]));
    let recorder = Arc::new(Recorder::default());
    let client = client(
        &server,
        "node-a",
        vec![
            Subscription::wildcard(ADDRESS_TYPE),
            Subscription::wildcard(AUTHORIZATION_TYPE).with_handler(recorder.clone()),
        ],
    );
    eventually(&client, "the policy", |c| names(c, AUTHORIZATION_TYPE) == ["default/deny"]).await;
    assert_eq!(recorder.take(), ["upsert:default/deny"]);
    cache.apply(remove(AUTHORIZATION_TYPE, "default/deny"));
    eventually(&client, "the policy removal", |c| names(c, AUTHORIZATION_TYPE).is_empty()).await;
    assert_eq!(recorder.take(), ["remove:default/deny"]);
    assert_eq!(names(&client, ADDRESS_TYPE), ["w1"]);
}

#[tokio::test]
async fn on_demand_by_name_alias_and_missing() {
    let (cache, server) = serve(&mut Registry::default()).await;
    cache.apply(upsert(vec![
        workload("w1", [10, 0, 0, 1], 1),
        workload("w2", [10, 0, 0, 2], 1),
        workload("w3", [10, 0, 0, 3], 1),
    ]));
    let client = client(&server, "node-a", vec![Subscription::on_demand(ADDRESS_TYPE)]);

    let by_name = client.demand(ADDRESS_TYPE, "w1").await.unwrap().expect("w1 exists");
    assert_eq!(by_name.name, "w1");
    let by_alias = client.demand(ADDRESS_TYPE, "/10.0.0.2").await.unwrap().expect("10.0.0.2 exists");
    assert_eq!(by_alias.name, "w2");
    assert!(by_alias.aliases.contains(&"/10.0.0.2".to_string()));
    assert_eq!(client.demand(ADDRESS_TYPE, "nobody").await.unwrap(), None);
    assert_eq!(client.demand(ADDRESS_TYPE, "/10.9.9.9").await.unwrap(), None);
    assert_eq!(names(&client, ADDRESS_TYPE), ["w1", "w2"], "only what was asked for");
    let status = connection(&server, "node-a");
    assert_eq!(status.types[ADDRESS_TYPE].subscription, SubscriptionStatus::Names { names: 4 });

    // Changes to subscribed resources follow; others do not; a name asked for before it existed
    // arrives when it appears.
    cache.apply(upsert(vec![workload("w2", [10, 0, 0, 2], 2), workload("w3", [10, 0, 0, 3], 2)]));
    cache.apply(upsert(vec![workload("w9", [10, 9, 9, 9], 1)]));
    let w2_version = cache.lookup(ADDRESS_TYPE, "w2").unwrap().version.to_string();
    eventually(&client, "w2's update and w9", |c| {
        c.get(ADDRESS_TYPE, "w2").is_some_and(|r| r.version == w2_version) && c.get(ADDRESS_TYPE, "w9").is_some()
    })
    .await;
    assert!(client.get(ADDRESS_TYPE, "w3").is_none());

    client.unsubscribe(ADDRESS_TYPE, "w1").unwrap();
    eventually(&client, "w1 dropped", |c| c.get(ADDRESS_TYPE, "w1").is_none()).await;
    let pushes = connection(&server, "node-a").types[ADDRESS_TYPE].pushes;
    cache.apply(upsert(vec![workload("w1", [10, 0, 0, 1], 2)]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.get(ADDRESS_TYPE, "w1").is_none());
    assert_eq!(connection(&server, "node-a").types[ADDRESS_TYPE].pushes, pushes, "nothing sent for w1");
}

#[tokio::test]
async fn on_demand_wire_format() {
    let (cache, server) = serve(&mut Registry::default()).await;
    cache.apply(upsert(vec![workload("w1", [10, 0, 0, 1], 1), workload("w2", [10, 0, 0, 2], 1)]));
    // Istio's ztunnel: `*` subscribed and unsubscribed together = subscribed to nothing.
    let mut raw = RawStream::open(&server, request(ADDRESS_TYPE, &["*"], &["*"]), None).await;
    let first = raw.recv_ack().await;
    assert!(first.resources.is_empty() && first.removed_resources.is_empty(), "{first:?}");
    raw.send(request(ADDRESS_TYPE, &["/10.0.0.1", "nope"], &[])).await;
    let answer = raw.recv_ack().await;
    assert_eq!(resource_names(&answer), ["w1"]);
    assert_eq!(answer.resources[0].aliases, ["/10.0.0.1"]);
    assert_eq!(answer.removed_resources, ["nope"]);
    // Asking again by another name of a resource the client has: answered again.
    raw.send(request(ADDRESS_TYPE, &["w1"], &[])).await;
    assert_eq!(resource_names(&raw.recv_ack().await), ["w1"]);
    // Unknown types are ignored; the stream stays up.
    raw.send(request("type.googleapis.com/envoy.config.cluster.v3.Cluster", &[], &[])).await;
    raw.assert_silent(Duration::from_millis(200)).await;
    cache.apply(upsert(vec![workload("w1", [10, 0, 0, 1], 2), workload("w2", [10, 0, 0, 2], 2)]));
    assert_eq!(resource_names(&raw.recv_ack().await), ["w1"]);
}

#[tokio::test]
async fn nack_is_recorded_and_not_resent() {
    let mut registry = Registry::default();
    let (cache, server) = serve(&mut registry).await;
    cache.apply(upsert(vec![workload("good", [10, 0, 0, 1], 1), workload("bad", [10, 0, 0, 2], 1)]));
    let recorder = Arc::new(Recorder::default());
    recorder.reject.lock().unwrap().insert("bad".to_string());
    let client = client(&server, "node-a", vec![Subscription::wildcard(ADDRESS_TYPE).with_handler(recorder.clone())]);
    eventually(&client, "the NACK", |c| c.status().borrow().nacks == 1).await;
    assert_eq!(names(&client, ADDRESS_TYPE), ["good"], "the rejected resource is not applied");

    until("the server to record the NACK", || connection(&server, "node-a").types[ADDRESS_TYPE].nacks == 1).await;
    let status = &connection(&server, "node-a").types[ADDRESS_TYPE];
    assert_eq!(status.last_nack.as_deref(), Some("bad: unsupported port"));
    assert_eq!(status.last_acked, None);
    assert_eq!(metric(&registry, &format!("xds_nacks_total{ADDRESS_LABEL}")), Some(1.0));

    // No resend loop: nothing more arrives while nothing changes.
    let revision = client.status().borrow().revision;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client.status().borrow().revision, revision);
    assert_eq!(connection(&server, "node-a").types[ADDRESS_TYPE].pushes, 1);

    // A change of the rejected resource is sent (and rejected) once more.
    cache.apply(upsert(vec![workload("bad", [10, 0, 0, 2], 2)]));
    eventually(&client, "the second NACK", |c| c.status().borrow().nacks == 2).await;
    until("the server to count it", || connection(&server, "node-a").types[ADDRESS_TYPE].nacks == 2).await;
    assert_eq!(metric(&registry, &format!("xds_nacks_total{ADDRESS_LABEL}")), Some(2.0));

    // Once the client accepts, the next change lands and is ACKed.
    recorder.reject.lock().unwrap().clear();
    cache.apply(upsert(vec![workload("bad", [10, 0, 0, 2], 3)]));
    eventually(&client, "the accepted resource", |c| names(c, ADDRESS_TYPE) == ["bad", "good"]).await;
    until("the ACK", || {
        let status = &connection(&server, "node-a").types[ADDRESS_TYPE];
        status.last_acked.is_some() && status.last_acked == status.last_sent
    })
    .await;
}

#[tokio::test]
async fn reconnect_gets_consistent_state() {
    let (cache, server) = serve(&mut Registry::default()).await;
    cache.apply(upsert(vec![
        workload("a", [10, 0, 0, 1], 1),
        workload("b", [10, 0, 0, 2], 1),
        workload("d", [10, 0, 0, 4], 1),
    ]));
    let recorder = Arc::new(Recorder::default());
    let client = client(&server, "node-a", vec![Subscription::wildcard(ADDRESS_TYPE).with_handler(recorder.clone())]);
    eventually(&client, "the initial state", |c| names(c, ADDRESS_TYPE) == ["a", "b", "d"]).await;
    recorder.take();

    let address = server.address;
    server.stop().await;
    eventually(&client, "the disconnect", |c| !c.status().borrow().connected).await;
    cache.apply(remove(ADDRESS_TYPE, "a"));
    cache.apply(upsert(vec![workload("b", [10, 0, 0, 2], 2), workload("c", [10, 0, 0, 3], 1)]));

    let server = Server::new(cache.clone(), None, XdsMetrics::unregistered());
    let server = TestServer::start_on(server, address).await;
    let b_version = cache.lookup(ADDRESS_TYPE, "b").unwrap().version.to_string();
    eventually(&client, "the state after reconnecting", |c| {
        names(c, ADDRESS_TYPE) == ["b", "c", "d"] && c.get(ADDRESS_TYPE, "b").is_some_and(|b| b.version == b_version)
    })
    .await;
    assert_eq!(client.status().borrow().streams, 2);
    // d was unchanged: its version in initial_resource_versions spared resending it.
    assert_eq!(sorted(recorder.take()), ["remove:a", "upsert:b", "upsert:c"]);
    drop(server);
}

#[tokio::test]
async fn stuck_client_does_not_delay_others() {
    const RESOURCES: usize = 20;
    const UPDATES: u32 = 200;
    const SIZE: usize = 8 * 1024;
    let (cache, server) = serve(&mut Registry::default()).await;
    cache.apply(upsert((0..RESOURCES).map(|i| blob(&format!("r{i}"), 0, SIZE)).collect()));

    // A client that never reads, with a 64 KiB window: the transport soon stops taking data.
    let mut first = request(ADDRESS_TYPE, &[], &[]);
    first.node = Some(ambient::xds::proto::discovery::Node { id: "stuck".to_string(), ..Default::default() });
    let mut stuck = RawStream::open(&server, first, Some(65_535)).await;
    let fast = client(&server, "fast", vec![Subscription::wildcard(ADDRESS_TYPE)]);
    eventually(&fast, "the initial state", |c| c.resources(ADDRESS_TYPE).len() == RESOURCES).await;

    let started = Instant::now();
    for update in 1..=UPDATES {
        let name = format!("r{}", update as usize % RESOURCES);
        cache.apply(upsert(vec![blob(&name, update, SIZE)]));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let latest: HashMap<String, String> =
        cache.snapshot(ADDRESS_TYPE).iter().map(|e| (e.name.clone(), e.version.to_string())).collect();
    eventually(&fast, "the latest state", |c| {
        c.resources(ADDRESS_TYPE).iter().all(|r| latest.get(&r.name) == Some(&r.version))
    })
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "the fast client took {elapsed:?}");

    // The stuck client got what its window took, then its changes coalesced: the server
    // holds no backlog of 200 responses for it.
    let stuck_pushes = connection(&server, "stuck").types[ADDRESS_TYPE].pushes;
    assert!(stuck_pushes < u64::from(UPDATES) / 4, "{stuck_pushes} responses for a client that reads nothing");

    // Once it reads, it converges on the latest state in far fewer responses than updates.
    let mut state: HashMap<String, String> = HashMap::new();
    let mut responses = 0;
    while state != latest {
        let response = stuck.recv().await;
        responses += 1;
        state.extend(response.resources.into_iter().map(|r| (r.name, r.version)));
    }
    assert!(responses < UPDATES as usize / 2, "{responses} responses");
}

struct Tokens;

impl Authenticator for Tokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(async move {
            match token {
                "good-token" => Ok(Caller {
                    namespace: "istio-system".to_string(),
                    service_account: "ztunnel".to_string(),
                    pod: Some("ztunnel-abc".to_string()),
                    node: Some("node-a".to_string()),
                }),
                _ => Err(AuthError::Rejected("unknown token".to_string())),
            }
        })
    }
}

#[tokio::test]
async fn authentication() {
    let cache = Arc::new(ambient::xds::server::Cache::new());
    cache.apply(upsert(vec![workload("w1", [10, 0, 0, 1], 1)]));
    let server = Server::new(cache, Some(Arc::new(Tokens)), XdsMetrics::unregistered());
    let server = TestServer::start(server).await;

    let anonymous = client(&server, "anonymous", vec![Subscription::wildcard(ADDRESS_TYPE)]);
    eventually(&anonymous, "the refusal", |c| c.status().borrow().last_error.is_some()).await;
    let error = anonymous.status().borrow().last_error.clone().unwrap();
    assert!(error.contains("no bearer token"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "good-token\n").unwrap();
    let config = ClientConfig {
        token: Some(TokenSource::File(token)),
        subscriptions: vec![Subscription::wildcard(ADDRESS_TYPE)],
        ..ClientConfig::new(server.url(), node("node-a"))
    };
    let client = Client::start(config).unwrap();
    eventually(&client, "the state", |c| names(c, ADDRESS_TYPE) == ["w1"]).await;
    let expected = CallerStatus {
        namespace: "istio-system".to_string(),
        service_account: "ztunnel".to_string(),
        pod: Some("ztunnel-abc".to_string()),
        node: Some("node-a".to_string()),
    };
    assert_eq!(connection(&server, "node-a").caller, Some(expected));
    assert_eq!(server.server.connections().len(), 1, "the anonymous client never got a stream");
}

#[tokio::test]
async fn tls_with_a_given_root_and_server_name() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let issued = rcgen::generate_simple_self_signed(vec!["xds.mesh.test".to_string()]).unwrap();
    let (cert, key) = (issued.cert.pem(), issued.signing_key.serialize_pem());
    let cache = Arc::new(ambient::xds::server::Cache::new());
    cache.apply(upsert(vec![workload("w1", [10, 0, 0, 1], 1)]));
    let server = Server::new(cache, None, XdsMetrics::unregistered());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(&cert, &key));
    let service = server.service();
    let serving = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    let config = ClientConfig {
        tls: Some(TlsOptions { root_ca_pem: cert.into_bytes(), server_name: Some("xds.mesh.test".to_string()) }),
        subscriptions: vec![Subscription::wildcard(ADDRESS_TYPE)],
        ..ClientConfig::new(format!("https://{address}"), node("node-a"))
    };
    let client = Client::start(config).unwrap();
    eventually(&client, "the state over TLS", |c| names(c, ADDRESS_TYPE) == ["w1"]).await;
    serving.abort();
}
