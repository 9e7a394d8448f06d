//! ztunnel's certificate manager against the real CA service, served over TLS on 127.0.0.1
//! (mesh from YAML through the files config store, callers from a tokens file), behind a gate
//! that counts requests and can play an outage.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ambient::controlplane::ca::CaService;
use ambient::model::Identity;
use ambient::tls::{TrustRoots, tls_incoming};
use ambient::xds::client::TokenSource;
use ambient::xds::proto::ca::istio_certificate_service_server::{
    IstioCertificateService, IstioCertificateServiceServer,
};
use ambient::xds::proto::ca::{IstioCertificateRequest, IstioCertificateResponse};
use ambient::ztunnel::certs::{CaClientConfig, CertError, CertManager};
use rustls_pki_types::UnixTime;
use support::ca::{CaParts, ca_parts};
use tonic::transport::Server;
use tonic::{Request, Response, Status};

const WAIT: Duration = Duration::from_secs(15);

const PODS: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop}
spec: {serviceAccountName: web, nodeName: node-1, containers: [{name: app, image: web}]}
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop}
spec: {serviceAccountName: db, nodeName: node-2, containers: [{name: app, image: db}]}
status: {phase: Running}
";

const TOKENS: &str = "ztunnel-node-1 istio-system/ztunnel node=node-1\n";

fn id(s: &str) -> Identity {
    s.parse().unwrap()
}

fn web() -> Identity {
    id("spiffe://cluster.local/ns/shop/sa/web")
}

/// The CA service, counting requests, optionally slow or down.
struct GatedCa {
    inner: CaService,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    requests: AtomicUsize,
    down: AtomicBool,
    slow: AtomicBool,
}

#[tonic::async_trait]
impl IstioCertificateService for GatedCa {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        self.gate.requests.fetch_add(1, Ordering::SeqCst);
        if self.gate.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if self.gate.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("the test took the CA down"));
        }
        self.inner.create_certificate(request).await
    }
}

struct Harness {
    gate: Arc<Gate>,
    root_pem: String,
    address: String,
    _config: ambient::config::Source,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Harness {
    async fn start(state: &Path) -> Harness {
        let CaParts { service, serving, root_pem, source, follower, .. } = ca_parts(state, PODS, TOKENS, 2).await;
        let gate = Arc::new(Gate::default());
        let service = GatedCa { inner: service, gate: gate.clone() };

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let incoming = tls_incoming(listener, serving.server_config().unwrap());
        let server = tokio::spawn(async move {
            let service = IstioCertificateServiceServer::new(service);
            Server::builder().add_service(service).serve_with_incoming(incoming).await.unwrap();
        });
        Harness { gate, root_pem, address, _config: source, tasks: vec![server, follower] }
    }

    fn config(&self, ttl: Duration) -> CaClientConfig {
        CaClientConfig {
            server_name: Some("istiod.istio-system.svc".to_string()),
            token: Some(TokenSource::Value("ztunnel-node-1".to_string())),
            ttl,
            ..CaClientConfig::new(self.address.clone(), self.root_pem.clone().into_bytes())
        }
    }

    fn manager(&self, ttl: Duration) -> Arc<CertManager> {
        CertManager::new(self.config(ttl)).unwrap()
    }

    fn requests(&self) -> usize {
        self.gate.requests.load(Ordering::SeqCst)
    }
}

/// Polls `condition` every 50ms until it holds, or panics after [`WAIT`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn fetch_issues_the_identity_chained_to_the_mesh_root_and_caches_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Harness::start(dir.path()).await;
    let manager = ca.manager(Duration::from_secs(3600));

    let cert = manager.fetch(&web()).await.unwrap();
    assert_eq!(cert.identity(), &web());
    let roots = TrustRoots::from_pem("root", ca.root_pem.as_bytes()).unwrap();
    let chain: Vec<_> = std::iter::once(cert.leaf().clone()).chain(cert.chain().iter().cloned()).collect();
    assert_eq!(roots.verify_issued(&chain, UnixTime::now()).unwrap(), web());
    assert_eq!(manager.roots().certs(), roots.certs(), "roots() is the CA root file");
    let lifetime = cert.not_after().duration_since(std::time::SystemTime::now()).unwrap();
    assert!(lifetime > Duration::from_secs(3500) && lifetime <= Duration::from_secs(3600), "{lifetime:?}");

    let again = manager.fetch(&web()).await.unwrap();
    assert!(Arc::ptr_eq(&cert, &again), "cached");
    assert!(Arc::ptr_eq(&cert, &manager.current(&web()).unwrap()));
    assert_eq!(ca.requests(), 1);
}

#[tokio::test]
async fn concurrent_fetches_share_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Harness::start(dir.path()).await;
    ca.gate.slow.store(true, Ordering::SeqCst);
    let manager = ca.manager(Duration::from_secs(3600));
    let id = web();
    let fetches = (0..20).map(|_| manager.fetch(&id));
    let certs: Vec<_> = futures::future::join_all(fetches).await.into_iter().map(Result::unwrap).collect();
    assert!(certs.iter().all(|c| Arc::ptr_eq(c, &certs[0])), "one certificate for all");
    assert_eq!(ca.requests(), 1, "one CSR");
}

#[tokio::test]
async fn impersonating_a_pod_on_another_node_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Harness::start(dir.path()).await;
    let manager = ca.manager(Duration::from_secs(3600));
    let db = id("spiffe://cluster.local/ns/shop/sa/db");
    let error = manager.fetch(&db).await.unwrap_err();
    let CertError::Refused { identity, code, message } = &error else { panic!("expected a refusal, got {error:?}") };
    assert_eq!((identity, *code), (&db, tonic::Code::PermissionDenied));
    assert!(message.contains("no pod with that identity runs on node node-1"), "{message}");
    assert!(error.to_string().contains("spiffe://cluster.local/ns/shop/sa/db"), "{error}");
    assert!(manager.current(&db).is_none());
    // The pod on this node is still served.
    assert!(manager.fetch(&web()).await.is_ok());
}

#[tokio::test]
async fn certificates_are_renewed_before_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Harness::start(dir.path()).await;
    let manager = ca.manager(Duration::from_secs(4));
    let first = manager.fetch(&web()).await.unwrap();
    eventually("a renewed certificate", || manager.current(&web()).is_some_and(|c| !Arc::ptr_eq(&c, &first))).await;
    assert!(std::time::SystemTime::now() < first.not_after(), "renewed while the first was still valid");
    let renewed = manager.current(&web()).unwrap();
    assert!(renewed.not_after() > first.not_after());
    assert_eq!(renewed.identity(), &web());
}

#[tokio::test]
async fn during_a_ca_outage_the_valid_certificate_is_kept_and_renewal_retried() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Harness::start(dir.path()).await;
    let manager = ca.manager(Duration::from_secs(6));
    let first = manager.fetch(&web()).await.unwrap();
    ca.gate.down.store(true, Ordering::SeqCst);

    // Renewal is due at about 3s, then retried after 0.5s, 1s...
    eventually("two failed renewals", || ca.requests() >= 3).await;
    assert!(Arc::ptr_eq(&manager.current(&web()).unwrap(), &first), "still served");
    assert!(Arc::ptr_eq(&manager.fetch(&web()).await.unwrap(), &first), "fetch serves it too");
    let dump = manager.dump();
    assert_eq!(dump[0]["state"], "available");
    let last_error = dump[0]["lastError"].as_str().expect("the failure is shown");
    assert!(last_error.contains("unavailable") && last_error.contains("took the CA down"), "{last_error}");

    ca.gate.down.store(false, Ordering::SeqCst);
    eventually("a renewal after the outage", || manager.current(&web()).is_some_and(|c| !Arc::ptr_eq(&c, &first)))
        .await;
    assert_eq!(manager.dump()[0]["lastError"], serde_json::Value::Null);
}

#[tokio::test]
async fn an_unreachable_ca_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Harness::start(dir.path()).await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("https://127.0.0.1:{port}");
    let manager =
        CertManager::new(CaClientConfig { address: address.clone(), ..ca.config(Duration::from_secs(60)) }).unwrap();
    let error = manager.fetch(&web()).await.unwrap_err();
    assert!(matches!(error, CertError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains(&address), "{error}");
    assert_eq!(manager.dump()[0]["state"], "failed");
}

#[tokio::test]
async fn dump_shows_public_parts_only_and_retain_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Harness::start(dir.path()).await;
    let manager = ca.manager(Duration::from_secs(3600));
    manager.fetch(&web()).await.unwrap();

    let dump = manager.dump();
    let text = dump.to_string();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let entry = &dump[0];
    assert_eq!(entry["identity"], web().to_string());
    assert_eq!(entry["state"], "available");
    assert!(!entry["serial"].as_str().unwrap().is_empty());
    assert!(entry["notBefore"].is_string() && entry["notAfter"].is_string() && entry["nextRefresh"].is_string());
    let chain = entry["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "leaf and root");
    assert_eq!(chain[1].as_str().unwrap().trim(), ca.root_pem.trim());

    manager.retain(&[web()].into());
    assert!(manager.current(&web()).is_some());
    manager.retain(&Default::default());
    assert!(manager.current(&web()).is_none());
    assert_eq!(manager.dump(), serde_json::json!([]));
}
