//! Hostile and malformed input on a pod's HBONE port: each gets a clean error or reset, and the
//! mesh's own traffic keeps flowing.

use std::net::SocketAddr;
use std::sync::Arc;

use ambient::hbone::{ConnectRequest, Dialer, HboneError, HbonePool, PoolConfig, PoolKey};
use ambient::sys::socket::tcp_connect_in;
use ambient::tls::{TrustRoots, WorkloadCertificate};
use rcgen::string::Ia5String;
use rcgen::{CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::mesh::{APP_PORT, Mesh, WAIT};
use super::{CLIENT, SERVER, addr, reaches};

/// A certificate for `identity` signed by the mesh root (read from the control plane's state).
fn signed_by_mesh_root(mesh: &Mesh, identity: &str) -> WorkloadCertificate {
    let ca_dir = mesh.controlplane().dir.path().join("state/ca");
    let root_pem = std::fs::read_to_string(ca_dir.join("root-cert.pem")).unwrap();
    let root_key = KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("root-key.pem")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&root_pem, root_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(identity).unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    WorkloadCertificate::from_pem(&key.serialize_pem(), &[cert.pem(), root_pem]).unwrap()
}

/// An HBONE client that dials from inside the un-meshed `outsider` pod.
struct Attacker<'a> {
    mesh: &'a Mesh,
    pool: HbonePool,
    roots: TrustRoots,
    /// Where it dials from.
    netns: ambient::sys::netns::Netns,
}

impl<'a> Attacker<'a> {
    fn new(mesh: &'a Mesh) -> Self {
        let roots = mesh.ztunnel("node-a").proxy.roots.clone();
        let netns = mesh.pod("outsider").netns();
        Attacker { mesh, pool: HbonePool::new(PoolConfig::default()), roots, netns }
    }

    async fn connect(
        &self,
        cert: WorkloadCertificate,
        authority: SocketAddr,
        headers: http::HeaderMap,
    ) -> Result<ambient::hbone::HboneStream, HboneError> {
        let exec = self.mesh.exec.clone();
        let netns = self.netns.clone();
        let dial: Dialer = Arc::new(move |dst| {
            let exec = exec.clone();
            let netns = netns.clone();
            Box::pin(async move { tcp_connect_in(&exec, Some(&netns), dst, None).await })
        });
        let src_identity = cert.identity().clone();
        let request = ConnectRequest {
            key: PoolKey {
                source: 1,
                src_identity,
                dst_identity: SERVER.parse().unwrap(),
                dst: addr(self.mesh, "server", 15008),
            },
            cert: Arc::new(cert),
            roots: self.roots.clone(),
            authority: authority.to_string(),
            headers,
            dial,
        };
        tokio::time::timeout(WAIT, self.pool.connect(request)).await.expect("an answer in time")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_hbone_input_gets_clean_errors_and_harms_nothing_else() {
    let mesh = Mesh::start(&[]).await;
    mesh.serve_echo("server", APP_PORT).await;
    let server = addr(&mesh, "server", APP_PORT);
    let hbone_port = addr(&mesh, "server", 15008);

    // Garbage on 15008: the connection ends, nothing else happens.
    let mut stream = mesh.connect("outsider", hbone_port).await.expect("15008 accepts TCP");
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01garbage\x00\xff").await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut buf)).await.expect("closed in time");
    assert!(read.is_err() || !buf.windows(4).any(|w| w == b"HTTP"), "no HTTP answer to garbage: {buf:?}");

    let attacker = Attacker::new(&mesh);
    // A certificate from the mesh root but another trust domain: refused during the handshake.
    let foreign = signed_by_mesh_root(&mesh, "spiffe://evil.local/ns/shop/sa/client");
    let result = attacker.connect(foreign, server, http::HeaderMap::new()).await;
    assert!(result.is_err(), "a wrong-trust-domain client certificate is refused");

    // A valid certificate, CONNECT to an address that is not the pod behind this 15008.
    let valid = signed_by_mesh_root(&mesh, CLIENT);
    let elsewhere = addr(&mesh, "local-server", APP_PORT);
    match attacker.connect(valid.clone(), elsewhere, http::HeaderMap::new()).await {
        Err(HboneError::Status(status)) => assert_eq!(status, 400, "CONNECT to another pod's address"),
        other => panic!("CONNECT to another address must be refused with 400, got {:?}", other.map(|_| ())),
    }
    // A ztunnel port as target: refused too.
    let loop_target = addr(&mesh, "server", 15001);
    assert!(attacker.connect(valid.clone(), loop_target, http::HeaderMap::new()).await.is_err());

    // Oversized headers: refused, and the connection's other streams are unaffected.
    let mut huge = http::HeaderMap::new();
    huge.insert("x-huge", http::HeaderValue::from_str(&"a".repeat(256 * 1024)).unwrap());
    assert!(attacker.connect(valid.clone(), server, huge).await.is_err(), "oversized headers refused");
    let mut stream = attacker.connect(valid, server, http::HeaderMap::new()).await.expect("a proper CONNECT works");
    stream.write_all(b"still fine").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_eq!(answer, b"still fine");

    // And the mesh itself is unharmed.
    assert!(reaches(&mesh, "client", server).await);
}

/// A peer xDS does not know (here: the bridge address of the cluster namespace) is labelled from
/// its `baggage` header; the principal is still the one its certificate proves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_describes_a_source_that_xds_does_not_know() {
    let mesh = Mesh::start(&[]).await;
    mesh.serve_echo("server", APP_PORT).await;
    let mut remote = Attacker::new(&mesh);
    remote.netns = mesh.net.netns();
    let mut headers = http::HeaderMap::new();
    let baggage = "k8s.cluster.name=far,k8s.namespace.name=remote-ns,k8s.pod.name=remote-pod,service.name=remote";
    headers.insert("baggage", http::HeaderValue::from_static(baggage));
    let mut stream = remote
        .connect(signed_by_mesh_root(&mesh, CLIENT), addr(&mesh, "server", APP_PORT), headers)
        .await
        .expect("CONNECT from outside xDS's knowledge");
    stream.write_all(b"hi").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_eq!(answer, b"hi");
    let labels = [
        ("reporter", "destination"),
        ("source_workload", "remote-pod"),
        ("source_workload_namespace", "remote-ns"),
        ("source_cluster", "far"),
        ("source_principal", CLIENT),
    ];
    super::wait_metric(&mesh, "node-b", "istio_tcp_connections_closed_total", &labels, 1.0).await;
}
