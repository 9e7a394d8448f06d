//! The certificate authority end to end: a real gRPC server over TLS on 127.0.0.1, the CA's
//! root kept in a state directory, callers authenticated from a tokens file, the mesh built
//! from YAML through the files config store, and the generated tonic client.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ambient::controlplane::ca::{CaError, CaSource, IMPERSONATED_IDENTITY, ROOT_CERT_FILE, ROOT_KEY_FILE};
use ambient::model::Identity;
use ambient::tls::pem::parse_certs;
use ambient::tls::{TrustRoots, WorkloadCertificate, tls_incoming, uri_sans};
use ambient::xds::proto::ca::istio_certificate_service_client::IstioCertificateServiceClient;
use ambient::xds::proto::ca::{IstioCertificateRequest, IstioCertificateResponse};
use ambient::xds::proto::google::protobuf::{Struct, Value, value::Kind};
use prometheus_client::registry::Registry;
use rcgen::string::Ia5String;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rustls_pki_types::UnixTime;
use support::ca::{CaParts, TRUST_DOMAIN, ca_parts};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Server};
use tonic::{Code, Request, Status};

const WAIT: Duration = Duration::from_secs(10);

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
---
apiVersion: v1
kind: Pod
metadata: {name: ztunnel-n1, namespace: istio-system}
spec: {serviceAccountName: ztunnel, nodeName: node-1, containers: [{name: ztunnel, image: ztunnel}]}
status: {phase: Running}
";

const TOKENS: &str = "\
# node-1's ztunnel, once with its node named, once bound to its pod
ztunnel-node-1 istio-system/ztunnel node=node-1
ztunnel-by-pod istio-system/ztunnel pod=ztunnel-n1
web-token shop/web
";

fn id(s: &str) -> Identity {
    s.parse().unwrap()
}

/// A running control plane CA: server task, client, and what the assertions need.
struct Harness {
    client: IstioCertificateServiceClient<Channel>,
    root_pem: String,
    registry: Arc<Registry>,
    _config: ambient::config::Source,
    server: tokio::task::JoinHandle<()>,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
        self.follower.abort();
    }
}

impl Harness {
    async fn start(state: &Path) -> Harness {
        let CaParts { ca, service, serving, root_pem, registry, source, follower } =
            ca_parts(state, PODS, TOKENS, 3).await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = tls_incoming(listener, serving.server_config().unwrap());
        let server = tokio::spawn(async move {
            Server::builder().add_service(service.into_server()).serve_with_incoming(incoming).await.unwrap();
        });

        // As Istio's ztunnel dials: by service name, trusting the published root file.
        assert_eq!(root_pem, ca.root_pem());
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&root_pem))
            .domain_name("istiod.istio-system.svc");
        let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(WAIT)
            .connect()
            .await
            .unwrap();
        Harness {
            client: IstioCertificateServiceClient::new(channel),
            root_pem,
            registry: Arc::new(registry),
            _config: source,
            server,
            follower,
        }
    }

    async fn request(
        &self,
        token: Option<&str>,
        csr_san: &str,
        impersonated: Option<&str>,
        validity_seconds: i64,
    ) -> (KeyPair, Result<IstioCertificateResponse, Status>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(csr_san).unwrap())];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let metadata = impersonated.map(|identity| Struct {
            fields: [(IMPERSONATED_IDENTITY.to_string(), Value { kind: Some(Kind::StringValue(identity.into())) })]
                .into(),
        });
        let mut request = Request::new(IstioCertificateRequest { csr, validity_duration: validity_seconds, metadata });
        if let Some(token) = token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let response = self.client.clone().create_certificate(request).await.map(|r| r.into_inner());
        (key, response)
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}

fn refused(result: Result<IstioCertificateResponse, Status>) -> Status {
    match result {
        Ok(response) => panic!("expected a refusal, got a chain of {}", response.cert_chain.len()),
        Err(status) => status,
    }
}

#[tokio::test]
async fn issued_chain_verifies_against_the_root_and_names_exactly_the_identity() {
    let state = tempfile::tempdir().unwrap();
    let harness = Harness::start(state.path()).await;
    let web = "spiffe://cluster.local/ns/shop/sa/web";
    let (key, response) = harness.request(Some("web-token"), web, None, 3600).await;
    let chain = response.unwrap().cert_chain;

    assert_eq!(chain.len(), 2, "leaf, root");
    assert_eq!(chain[1], harness.root_pem, "root last");
    let certs: Vec<_> = chain.iter().flat_map(|pem| parse_certs("chain", pem.as_bytes()).unwrap()).collect();
    assert_eq!(certs.len(), 2, "one certificate per entry");
    let roots = TrustRoots::from_pem("root-cert.pem", harness.root_pem.as_bytes()).unwrap();
    assert_eq!(roots.verify_issued(&certs, UnixTime::now()).unwrap(), id(web));
    assert_eq!(uri_sans(&certs[0]).unwrap(), vec![web.to_string()]);
    let workload = WorkloadCertificate::from_pem(&key.serialize_pem(), &chain).unwrap();
    let lifetime = workload.not_after().duration_since(std::time::SystemTime::now()).unwrap();
    assert!(lifetime <= Duration::from_secs(3600) && lifetime > Duration::from_secs(3500), "{lifetime:?}");

    // Another root does not verify it.
    let (other_root, _) = ambient::controlplane::ca::generate_root(TRUST_DOMAIN).unwrap();
    let other = TrustRoots::from_pem("other", other_root.as_bytes()).unwrap();
    assert!(other.verify_issued(&certs[..1], UnixTime::now()).is_err());
    assert!(harness.metrics().contains("ca_certificates_issued_total{kind=\"own\"} 1"), "{}", harness.metrics());
}

#[tokio::test]
async fn node_proxy_gets_certificates_for_pods_on_its_own_node_only() {
    let state = tempfile::tempdir().unwrap();
    let harness = Harness::start(state.path()).await;
    let web = "spiffe://cluster.local/ns/shop/sa/web";
    let db = "spiffe://cluster.local/ns/shop/sa/db";

    // web-1 runs on node-1: granted, with the node named by the token or found from its pod.
    for token in ["ztunnel-node-1", "ztunnel-by-pod"] {
        let (_, response) = harness.request(Some(token), web, Some(web), 0).await;
        let chain = response.unwrap_or_else(|s| panic!("{token}: {s:?}")).cert_chain;
        let leaf = parse_certs("leaf", chain[0].as_bytes()).unwrap().remove(0);
        assert_eq!(uri_sans(&leaf).unwrap(), vec![web.to_string()]);
    }

    // db-1 runs on node-2: refused.
    let status = refused(harness.request(Some("ztunnel-node-1"), db, Some(db), 0).await.1);
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("no pod with that identity runs on node node-1"), "{}", status.message());

    let metrics = harness.metrics();
    assert!(metrics.contains("ca_certificates_issued_total{kind=\"node_proxy\"} 2"), "{metrics}");
    assert!(metrics.contains("ca_certificates_refused_total{reason=\"not_on_node\"} 1"), "{metrics}");
}

#[tokio::test]
async fn csr_asking_for_another_identity_than_requested_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let harness = Harness::start(state.path()).await;
    let web = "spiffe://cluster.local/ns/shop/sa/web";
    let db = "spiffe://cluster.local/ns/shop/sa/db";

    // The node proxy asks for web-1 but its CSR names db.
    let status = refused(harness.request(Some("ztunnel-node-1"), db, Some(web), 0).await.1);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("SAN URI:spiffe://cluster.local/ns/shop/sa/db is not the identity"),
        "{status:?}"
    );

    // A workload whose CSR names someone else.
    let status = refused(harness.request(Some("web-token"), db, None, 0).await.1);
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("may only get a certificate for its own identity"), "{status:?}");

    // An identity outside our trust domain.
    let foreign = "spiffe://elsewhere.example/ns/shop/sa/web";
    let status = refused(harness.request(Some("web-token"), foreign, None, 0).await.1);
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("is not in trust domain cluster.local"), "{status:?}");
}

#[tokio::test]
async fn workload_cannot_impersonate_even_with_a_matching_csr() {
    let state = tempfile::tempdir().unwrap();
    let harness = Harness::start(state.path()).await;
    let db = "spiffe://cluster.local/ns/shop/sa/db";
    let status = refused(harness.request(Some("web-token"), db, Some(db), 0).await.1);
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("shop/web may only get a certificate for its own identity"), "{status:?}");
    assert!(harness.metrics().contains("ca_certificates_refused_total{reason=\"not_own_identity\"} 1"));
}

#[tokio::test]
async fn missing_or_bad_tokens_are_unauthenticated() {
    let state = tempfile::tempdir().unwrap();
    let harness = Harness::start(state.path()).await;
    let web = "spiffe://cluster.local/ns/shop/sa/web";
    let status = refused(harness.request(None, web, None, 0).await.1);
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("no bearer token"), "{status:?}");
    let status = refused(harness.request(Some("guessed-token"), web, None, 0).await.1);
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("guessed-token"), "the token is not echoed: {status:?}");
    assert!(harness.metrics().contains("ca_certificates_refused_total{reason=\"unauthenticated\"} 2"));
}

#[tokio::test]
async fn root_is_kept_across_restarts_and_a_corrupt_root_is_an_error() {
    let state = tempfile::tempdir().unwrap();
    let web = "spiffe://cluster.local/ns/shop/sa/web";
    let first = Harness::start(state.path()).await;
    let (_, issued) = first.request(Some("web-token"), web, None, 0).await;
    let issued = issued.unwrap().cert_chain;
    let first_root = first.root_pem.clone();
    drop(first);

    let second = Harness::start(state.path()).await;
    assert_eq!(second.root_pem, first_root, "same root after a restart");
    let certs: Vec<_> = issued.iter().flat_map(|pem| parse_certs("chain", pem.as_bytes()).unwrap()).collect();
    let roots = TrustRoots::from_pem("root", second.root_pem.as_bytes()).unwrap();
    assert_eq!(roots.verify_issued(&certs[..1], UnixTime::now()).unwrap(), id(web));
    drop(second);

    let cert_file = state.path().join("ca").join(ROOT_CERT_FILE);
    std::fs::write(&cert_file, "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n").unwrap();
    let err = CaSource::StateDir(state.path().to_path_buf()).load(TRUST_DOMAIN).await.unwrap_err();
    assert!(err.to_string().contains(&cert_file.display().to_string()), "{err}");
    assert!(state.path().join("ca").join(ROOT_KEY_FILE).exists(), "the key is not replaced");

    // A certificate that is valid PEM but not the key's: also an error, never a new root.
    let (other_root, _) = ambient::controlplane::ca::generate_root(TRUST_DOMAIN).unwrap();
    std::fs::write(&cert_file, &other_root).unwrap();
    let err = CaSource::StateDir(state.path().to_path_buf()).load(TRUST_DOMAIN).await.unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");
}
