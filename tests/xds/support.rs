//! Shared helpers of the xDS tests: a real server on 127.0.0.1, resources, a raw stream.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ambient::xds::client::{Client, ClientConfig, NodeInfo, Subscription};
use ambient::xds::proto::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use ambient::xds::proto::discovery::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use ambient::xds::proto::security::Authorization;
use ambient::xds::proto::workload::{Address, Workload, address};
use ambient::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};
use ambient::xds::server::{Cache, Server, XdsMetrics};
use ambient::xds::{Resource, ResourceUpdate};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::Streaming;
use tonic::transport::Endpoint;
use tonic::transport::server::TcpIncoming;

pub const WAIT: Duration = Duration::from_secs(10);

/// An ADS server serving on 127.0.0.1 until stopped.
pub struct TestServer {
    pub server: Server,
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(server: Server) -> TestServer {
        TestServer::start_on(server, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    pub async fn start_on(server: Server, address: SocketAddr) -> TestServer {
        let listener = TcpListener::bind(address).await.expect("binding 127.0.0.1");
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let service = server.service();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await
                .expect("serving xDS");
        });
        TestServer { server, address, stop: Some(stop), task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Ends every stream and stops listening.
    pub async fn stop(mut self) {
        self.server.close_connections();
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, &mut self.task).await.expect("server stops").unwrap();
    }
}

/// A cache, a server of it with metrics in `registry`, serving on 127.0.0.1.
pub async fn serve(registry: &mut Registry) -> (Arc<Cache>, TestServer) {
    let cache = Arc::new(Cache::new());
    let metrics = XdsMetrics::register(registry.sub_registry_with_prefix("xds"));
    let server = Server::new(cache.clone(), None, metrics);
    (cache, TestServer::start(server).await)
}

pub fn workload(uid: &str, ip: [u8; 4], revision: u32) -> Resource {
    let message = Address {
        r#type: Some(address::Type::Workload(Workload {
            uid: uid.to_string(),
            name: uid.to_string(),
            namespace: "default".to_string(),
            addresses: vec![ip.to_vec()],
            service_account: format!("sa-{revision}"),
            ..Default::default()
        })),
    };
    let ip = std::net::Ipv4Addr::from(ip);
    Resource::new(ADDRESS_TYPE, uid, &message).with_aliases(vec![format!("/{ip}")])
}

pub fn authorization(name: &str, dry_run: bool) -> Resource {
    let message =
        Authorization { name: name.to_string(), namespace: "default".to_string(), dry_run, ..Default::default() };
    Resource::new(AUTHORIZATION_TYPE, format!("default/{name}"), &message)
}

pub fn upsert(resources: Vec<Resource>) -> ResourceUpdate {
    ResourceUpdate { full: false, upserts: resources, removals: Vec::new() }
}

pub fn remove(type_url: &'static str, name: &str) -> ResourceUpdate {
    ResourceUpdate { full: false, upserts: Vec::new(), removals: vec![(type_url, name.to_string())] }
}

pub fn node(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.to_string(),
        name: Some(format!("ztunnel-{id}")),
        namespace: Some("istio-system".to_string()),
        node_name: Some(id.to_string()),
        cluster_id: Some("Kubernetes".to_string()),
    }
}

pub fn client(server: &TestServer, id: &str, subscriptions: Vec<Subscription>) -> Client {
    let config = ClientConfig { subscriptions, ..ClientConfig::new(server.url(), node(id)) };
    Client::start(ClientConfig { backoff_initial: Duration::from_millis(50), ..config }).expect("client starts")
}

/// Waits until `condition` holds, failing the test with `what` after [`WAIT`].
pub async fn eventually(client: &Client, what: &str, condition: impl Fn(&Client) -> bool) {
    if tokio::time::timeout(WAIT, client.wait_until(condition)).await.is_err() {
        panic!("timed out waiting for {what}; client status: {:?}", *client.status().borrow());
    }
}

pub fn names(client: &Client, type_url: &str) -> Vec<String> {
    let mut names: Vec<String> = client.resources(type_url).iter().map(|r| r.name.clone()).collect();
    names.sort();
    names
}

/// A stream driven by hand, to see exactly what the server sends.
pub struct RawStream {
    requests: mpsc::Sender<DeltaDiscoveryRequest>,
    pub responses: Streaming<DeltaDiscoveryResponse>,
}

impl RawStream {
    /// Opens a stream with `first` as its first request. `window` limits how much the transport
    /// buffers for this client before the server must stop sending.
    pub async fn open(server: &TestServer, first: DeltaDiscoveryRequest, window: Option<u32>) -> RawStream {
        let endpoint = Endpoint::from_shared(server.url()).unwrap().initial_stream_window_size(window);
        let channel = endpoint.connect().await.expect("connecting to the server");
        let (requests, mut outbound) = mpsc::channel(16);
        requests.send(first).await.unwrap();
        let stream = futures::stream::poll_fn(move |cx| outbound.poll_recv(cx));
        let responses = AggregatedDiscoveryServiceClient::new(channel)
            .delta_aggregated_resources(stream)
            .await
            .expect("opening the stream")
            .into_inner();
        RawStream { requests, responses }
    }

    pub async fn send(&self, request: DeltaDiscoveryRequest) {
        self.requests.send(request).await.expect("stream open");
    }

    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        let message = tokio::time::timeout(WAIT, self.responses.message()).await.expect("a response in time");
        message.expect("stream healthy").expect("stream open")
    }

    /// Receives a response and ACKs it.
    pub async fn recv_ack(&mut self) -> DeltaDiscoveryResponse {
        let response = self.recv().await;
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })
        .await;
        response
    }

    /// Asserts nothing arrives within `window`.
    pub async fn assert_silent(&mut self, window: Duration) {
        if let Ok(message) = tokio::time::timeout(window, self.responses.message()).await {
            panic!("expected no response, got {message:?}");
        }
    }
}

pub fn request(type_url: &str, subscribe: &[&str], unsubscribe: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

pub fn resource_names(response: &DeltaDiscoveryResponse) -> Vec<String> {
    sorted(response.resources.iter().map(|r| r.name.clone()).collect())
}

/// The value of a metric sample in the registry's text exposition, e.g. `xds_nacks_total{...}`.
pub fn metric(registry: &Registry, sample: &str) -> Option<f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}
