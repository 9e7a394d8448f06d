use std::time::{Duration, SystemTime};

use http::{Request, Response};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::config::{Store, Write};
use crate::mesh::{MeshConfig, MeshIndex};
use crate::model::{Identity, Resource};
use crate::tls::pem::parse_certs;
use crate::tls::{WorkloadCertificate, spiffe_identity};
use crate::xds::auth::Caller;

fn id(s: &str) -> Identity {
    s.parse().unwrap()
}

fn uri(s: &str) -> SanType {
    SanType::URI(Ia5String::try_from(s).unwrap())
}

/// A PEM CSR with `sans`, and the key that signed it.
fn csr(sans: Vec<SanType>) -> (KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = sans;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

fn generated_ca() -> CertificateAuthority {
    let (cert, key) = generate_root("cluster.local").unwrap();
    CertificateAuthority::new(&SigningMaterial {
        cert: PemSource::new("root-cert.pem", cert),
        key: PemSource::new("root-key.pem", key),
        chain: None,
        root: None,
    })
    .unwrap()
}

fn der(pem: &str) -> CertificateDer<'static> {
    parse_certs("test", pem.as_bytes()).unwrap().remove(0)
}

#[test]
fn csr_with_one_spiffe_uri_names_its_identity_and_key() {
    let (key, pem) = csr(vec![uri("spiffe://cluster.local/ns/shop/sa/web")]);
    let request = parse_csr(&pem).unwrap();
    assert_eq!(request.sans, vec!["URI:spiffe://cluster.local/ns/shop/sa/web".to_string()]);
    assert_eq!(request.identity().unwrap(), id("spiffe://cluster.local/ns/shop/sa/web"));
    assert_eq!(request.spki, rcgen::PublicKeyData::subject_public_key_info(&key));
    request.check_for(&id("spiffe://cluster.local/ns/shop/sa/web")).unwrap();
}

#[test]
fn csr_san_checks_name_what_was_found() {
    let want = id("spiffe://cluster.local/ns/shop/sa/web");
    let (_, foreign) = csr(vec![uri("spiffe://cluster.local/ns/bank/sa/vault")]);
    assert_eq!(
        parse_csr(&foreign).unwrap().check_for(&want).unwrap_err().to_string(),
        "the CSR's SAN URI:spiffe://cluster.local/ns/bank/sa/vault is not the identity asked for, spiffe://cluster.local/ns/shop/sa/web"
    );

    let (_, two) = csr(vec![uri(&want.to_string()), SanType::DnsName(Ia5String::try_from("web.shop").unwrap())]);
    let err = parse_csr(&two).unwrap().check_for(&want).unwrap_err().to_string();
    assert!(err.ends_with("it has URI:spiffe://cluster.local/ns/shop/sa/web, DNS:web.shop"), "{err}");

    let (_, dns_only) = csr(vec![SanType::DnsName(Ia5String::try_from("web.shop").unwrap())]);
    let err = parse_csr(&dns_only).unwrap().identity().unwrap_err().to_string();
    assert!(err.ends_with("it has DNS:web.shop"), "{err}");

    let (_, none) = csr(vec![]);
    assert_eq!(parse_csr(&none).unwrap().identity(), Err(CsrError::NoSan));

    let (_, not_spiffe) = csr(vec![uri("https://example.com/web")]);
    let err = parse_csr(&not_spiffe).unwrap().identity().unwrap_err().to_string();
    assert!(err.contains("\"https://example.com/web\" is not a SPIFFE workload identity"), "{err}");
}

#[test]
fn csr_with_a_broken_signature_or_no_pem_is_refused() {
    let (_, pem) = csr(vec![uri("spiffe://cluster.local/ns/shop/sa/web")]);
    let mut der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|d: rustls_pki_types::CertificateSigningRequestDer<'_>| d.as_ref().to_vec())
        .unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = crate::tls::pem::encode("CERTIFICATE REQUEST", &der);
    assert_eq!(parse_csr(&tampered), Err(CsrError::Signature));
    assert!(matches!(parse_csr("hello"), Err(CsrError::Pem(_))));
}

#[test]
fn issued_leaf_has_one_spiffe_san_workload_usages_and_the_granted_lifetime() {
    let ca = generated_ca();
    let (key, pem) = csr(vec![uri("spiffe://cluster.local/ns/shop/sa/web")]);
    let request = parse_csr(&pem).unwrap();
    let identity = id("spiffe://cluster.local/ns/shop/sa/web");
    let before = SystemTime::now();
    let chain = ca.issue(&request.spki, &identity, Duration::from_secs(3600)).unwrap();

    assert_eq!(chain.len(), 2, "leaf, root");
    assert_eq!(chain[1], ca.root_pem());
    let leaf_der = der(&chain[0]);
    assert_eq!(spiffe_identity(&leaf_der).unwrap(), identity);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical, "the subject is empty, so the SAN is critical");
    assert_eq!(san.value.general_names.len(), 1);
    assert!(!leaf.is_ca());
    let usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment() && !usage.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let now = before.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    assert!((now - 70..=now - 50).contains(&not_before), "a minute of clock skew: {not_before} vs {now}");
    assert!((now + 3595..=now + 3605).contains(&not_after), "one hour: {not_after} vs {now}");

    let certs: Vec<_> = chain.iter().map(|p| der(p)).collect();
    assert_eq!(ca.roots().verify_issued(&certs, UnixTime::now()).unwrap(), identity);
    let workload = WorkloadCertificate::from_pem(&key.serialize_pem(), &chain).unwrap();
    assert_eq!(workload.identity(), &identity);

    // A key that is not the CSR's cannot be paired with the certificate.
    let other = KeyPair::generate().unwrap();
    assert!(WorkloadCertificate::from_pem(&other.serialize_pem(), &chain).is_err());
}

/// A root and an intermediate under it (valid for `intermediate_ttl`), as an operator's PKI
/// would hand them over: (root PEM, intermediate PEM, intermediate key PEM).
fn plug_in_pki(intermediate_ttl: Duration) -> (String, String, String) {
    let (root_pem, root_key_pem) = generate_root("cluster.local").unwrap();
    let root_key = KeyPair::from_pem(&root_key_pem).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&root_pem, root_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "intermediate");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - Duration::from_secs(60);
    params.not_after = now + intermediate_ttl;
    let cert = params.signed_by(&key, &issuer).unwrap();
    (root_pem, cert.pem(), key.serialize_pem())
}

#[test]
fn plug_in_intermediate_serves_leaf_intermediate_root_and_caps_lifetimes() {
    let (root, intermediate, key) = plug_in_pki(Duration::from_secs(2 * 3600));
    for (chain, root_file) in
        [(Some(format!("{intermediate}{root}")), None), (None, Some(root.clone())), (Some(root.clone()), None)]
    {
        let ca = CertificateAuthority::new(&SigningMaterial {
            cert: PemSource::new("ca-cert.pem", intermediate.clone()),
            key: PemSource::new("ca-key.pem", key.clone()),
            chain: chain.map(|c| PemSource::new("cert-chain.pem", c)),
            root: root_file.map(|r| PemSource::new("root-cert.pem", r)),
        })
        .unwrap();
        assert_eq!(ca.root_pem(), root);
        let (_, pem) = csr(vec![uri("spiffe://cluster.local/ns/a/sa/b")]);
        let issued =
            ca.issue(&parse_csr(&pem).unwrap().spki, &id("spiffe://cluster.local/ns/a/sa/b"), DEFAULT_CERT_TTL);
        let issued = issued.unwrap();
        assert_eq!(issued.len(), 3);
        assert_eq!(issued[1], intermediate);
        assert_eq!(issued[2], root);
        let certs: Vec<_> = issued.iter().map(|p| der(p)).collect();
        ca.roots().verify_issued(&certs, UnixTime::now()).unwrap();
        // 24h asked, but the intermediate expires in 2h.
        let (_, leaf) = X509Certificate::from_der(&certs[0]).unwrap();
        let (_, inter) = X509Certificate::from_der(&certs[1]).unwrap();
        assert_eq!(leaf.validity().not_after, inter.validity().not_after);
    }
}

#[test]
fn unusable_ca_material_is_refused_with_the_file_named() {
    let (root, intermediate, key) = plug_in_pki(Duration::from_secs(3600));
    let material = |cert: &str, key: &str| SigningMaterial {
        cert: PemSource::new("ca-cert.pem", cert.to_string()),
        key: PemSource::new("ca-key.pem", key.to_string()),
        chain: None,
        root: None,
    };
    let err = CertificateAuthority::new(&material(&intermediate, &key)).unwrap_err().to_string();
    assert!(err.starts_with("ca-cert.pem: the root certificate is not self-signed"), "{err}");

    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let err = CertificateAuthority::new(&material(&root, &other_key)).unwrap_err().to_string();
    assert_eq!(err, "the key in ca-key.pem is not the key of the certificate in ca-cert.pem");

    let err = CertificateAuthority::new(&material("junk", &key)).unwrap_err().to_string();
    assert!(err.starts_with("ca-cert.pem: no PEM certificate"), "{err}");
    let err = CertificateAuthority::new(&material(&root, "junk")).unwrap_err().to_string();
    assert!(err.starts_with("ca-key.pem: not a usable CA private key"), "{err}");

    let ca = generated_ca();
    let (_, pem) = csr(vec![uri("spiffe://cluster.local/ns/a/sa/b")]);
    let leaf = ca.issue(&parse_csr(&pem).unwrap().spki, &id("spiffe://cluster.local/ns/a/sa/b"), DEFAULT_CERT_TTL);
    let err = CertificateAuthority::new(&material(&leaf.unwrap()[0], &key)).unwrap_err().to_string();
    assert!(err.starts_with("ca-cert.pem: the certificate is not a CA"), "{err}");
}

#[test]
fn serving_certificate_carries_the_service_names() {
    let ca = generated_ca();
    let names = serving_names("mesh-system", &["cp.example.com".into(), "localhost".into(), "10.1.2.3".into()]);
    assert_eq!(
        names,
        [
            "istiod.istio-system.svc",
            "istiod.mesh-system.svc",
            "ambient-controlplane.mesh-system.svc",
            "localhost",
            "127.0.0.1",
            "::1",
            "cp.example.com",
            "10.1.2.3"
        ]
    );
    let serving = ca.serving_certificate(&names, SERVING_TTL).unwrap();
    assert_eq!(serving.chain.len(), 2);
    let (_, leaf) = X509Certificate::from_der(&serving.chain[0]).unwrap();
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(crate::tls::certificate::describe_san)
        .collect();
    assert!(sans.contains(&"DNS:istiod.mesh-system.svc".to_string()), "{sans:?}");
    assert!(sans.contains(&"IP:::1".to_string()) && sans.contains(&"IP:10.1.2.3".to_string()), "{sans:?}");
    assert!(serving.server_config().is_ok());
    assert!(matches!(ca.serving_certificate(&["bad name!é".into()], SERVING_TTL), Err(CaError::InvalidName(_))));
}

#[test]
fn lifetimes_and_durations() {
    let policy = IssuancePolicy::new("cluster.local", "istio-system");
    assert_eq!(policy.ttl(0), DEFAULT_CERT_TTL);
    assert_eq!(policy.ttl(-5), DEFAULT_CERT_TTL);
    assert_eq!(policy.ttl(600), Duration::from_secs(600));
    assert_eq!(policy.ttl(i64::MAX), DEFAULT_MAX_CERT_TTL);
    assert_eq!(policy.node_proxies, vec![ServiceAccountRef::new("istio-system", "ztunnel")]);
    assert_eq!(default_node_proxies("mesh").len(), 2);

    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
    assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86400)));
    assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("1w").unwrap_err().contains("unknown unit"));
    assert!(parse_duration("h").is_err());

    assert_eq!("istio-system/ztunnel".parse(), Ok(ServiceAccountRef::new("istio-system", "ztunnel")));
    assert!("ztunnel".parse::<ServiceAccountRef>().is_err());
    assert!("a/b/c".parse::<ServiceAccountRef>().is_err());
}

fn pod(namespace: &str, name: &str, service_account: &str, node: Option<&str>) -> Write {
    Write::Put(Resource::Pod(Pod {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(namespace.into()), ..Default::default() },
        spec: Some(PodSpec {
            service_account_name: Some(service_account.into()),
            node_name: node.map(str::to_string),
            ..Default::default()
        }),
        status: Some(PodStatus { phase: Some("Running".into()), ..Default::default() }),
    }))
}

fn index(writes: Vec<Write>) -> MeshIndex {
    let store = Store::new();
    store.apply(writes);
    let mut index = MeshIndex::new(MeshConfig::default());
    index.reset(&store.snapshot());
    index
}

fn caller(ns: &str, sa: &str, pod: Option<&str>, node: Option<&str>) -> Caller {
    Caller {
        namespace: ns.into(),
        service_account: sa.into(),
        pod: pod.map(str::to_string),
        node: node.map(str::to_string),
    }
}

#[test]
fn authorization_own_identity_and_node_proxies_for_pods_on_their_node() {
    let index = index(vec![
        pod("shop", "web-1", "web", Some("node-1")),
        pod("shop", "db-1", "db", Some("node-2")),
        pod("istio-system", "ztunnel-a", "ztunnel", Some("node-1")),
    ]);
    let proxies = default_node_proxies("istio-system");
    let check = |caller: &Caller, requested: &str| authorize(caller, &id(requested), "cluster.local", &proxies, &index);

    let web = caller("shop", "web", None, None);
    assert_eq!(check(&web, "spiffe://cluster.local/ns/shop/sa/web"), Ok(Grant::Own));
    assert_eq!(check(&web, "spiffe://cluster.local/ns/shop/sa/db").unwrap_err().reason(), "not_own_identity");
    assert_eq!(check(&web, "spiffe://other.domain/ns/shop/sa/web").unwrap_err().reason(), "trust_domain");

    let ztunnel = caller("istio-system", "ztunnel", None, Some("node-1"));
    assert_eq!(check(&ztunnel, "spiffe://cluster.local/ns/shop/sa/web"), Ok(Grant::OnBehalf { node: "node-1".into() }));
    let err = check(&ztunnel, "spiffe://cluster.local/ns/shop/sa/db").unwrap_err();
    assert_eq!(
        err.to_string(),
        "node proxy istio-system/ztunnel on node node-1 asked for spiffe://cluster.local/ns/shop/sa/db, but no pod with that identity runs on node node-1"
    );
    assert_eq!(check(&ztunnel, "spiffe://cluster.local/ns/istio-system/sa/ztunnel"), Ok(Grant::Own));

    // The node of the caller's bound pod, when the token does not name one.
    let by_pod = caller("istio-system", "ztunnel", Some("ztunnel-a"), None);
    assert_eq!(caller_node(&by_pod, &index), Some("node-1".into()));
    assert!(check(&by_pod, "spiffe://cluster.local/ns/shop/sa/web").is_ok());
    let unknown = caller("istio-system", "ztunnel", Some("ztunnel-gone"), None);
    assert_eq!(check(&unknown, "spiffe://cluster.local/ns/shop/sa/web").unwrap_err().reason(), "unknown_node");

    // Same account name in another namespace is not a trusted proxy.
    let impostor = caller("shop", "ztunnel", None, Some("node-1"));
    assert_eq!(check(&impostor, "spiffe://cluster.local/ns/shop/sa/web").unwrap_err().reason(), "not_own_identity");
}

#[test]
fn root_in_state_dir_is_generated_once_kept_private_and_reused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let first = load_or_create_in_dir(&ca_dir, "cluster.local").unwrap();
    let mode = std::fs::metadata(ca_dir.join(ROOT_KEY_FILE)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(ca_dir.join(ROOT_CERT_FILE)).unwrap(), first.root_pem());
    let second = load_or_create_in_dir(&ca_dir, "cluster.local").unwrap();
    assert_eq!(first.root_pem(), second.root_pem());

    // A corrupt key is an error naming it, and nothing is replaced.
    std::fs::write(ca_dir.join(ROOT_KEY_FILE), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        .unwrap();
    let err = load_or_create_in_dir(&ca_dir, "cluster.local").unwrap_err().to_string();
    assert!(err.contains("root-key.pem"), "{err}");
    assert_eq!(std::fs::read_to_string(ca_dir.join(ROOT_CERT_FILE)).unwrap(), first.root_pem());

    std::fs::remove_file(ca_dir.join(ROOT_KEY_FILE)).unwrap();
    let err = load_or_create_in_dir(&ca_dir, "cluster.local").unwrap_err();
    assert!(matches!(err, CaError::Incomplete { .. }), "{err}");
}

fn respond(send: tower_test::mock::SendResponse<Response<::kube::client::Body>>, code: u16, body: serde_json::Value) {
    let response = Response::builder().status(code).body(::kube::client::Body::from(body.to_string().into_bytes()));
    send.send_response(response.unwrap());
}

fn status(code: u16, reason: &str) -> serde_json::Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code,
        "message": reason})
}

fn secret_json(cert: &str, key: &str) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ambient-ca", "namespace": "istio-system"},
        "data": {"ca-cert.pem": b64(cert), "ca-key.pem": b64(key)}})
}

/// Kube mode: the Secret is created when absent; if another replica created it first, that
/// one is read back and used.
#[tokio::test]
async fn root_in_a_secret_is_created_if_absent_and_a_race_reads_the_winner() {
    let (cert, key) = generate_root("cluster.local").unwrap();
    let (service, mut handle) =
        tower_test::mock::pair::<Request<::kube::client::Body>, Response<::kube::client::Body>>();
    let client = ::kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let path = "/api/v1/namespaces/istio-system/secrets";
        // Replica loses the race: absent, create conflicts, re-read finds the winner's.
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!((request.method().as_str(), request.uri().path()), ("GET", &*format!("{path}/ambient-ca")));
        respond(send, 404, status(404, "NotFound"));
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!((request.method().as_str(), request.uri().path()), ("POST", path));
        respond(send, 409, status(409, "AlreadyExists"));
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method().as_str(), "GET");
        respond(send, 200, secret_json(&cert, &key));
        // A corrupt Secret.
        let (_, send) = handle.next_request().await.unwrap();
        respond(send, 200, secret_json("not a certificate", &key));
        cert
    });
    let ca = load_or_create_secret(client.clone(), "istio-system", DEFAULT_SECRET_NAME, "cluster.local").await.unwrap();
    let err = load_or_create_secret(client, "istio-system", DEFAULT_SECRET_NAME, "cluster.local").await.unwrap_err();
    assert!(err.to_string().starts_with("Secret istio-system/ambient-ca key ca-cert.pem: no PEM certificate"), "{err}");
    let winner = server.await.unwrap();
    assert_eq!(ca.root_pem(), winner);
}

#[tokio::test]
async fn root_in_a_secret_is_generated_and_stored_when_absent() {
    let (service, mut handle) =
        tower_test::mock::pair::<Request<::kube::client::Body>, Response<::kube::client::Body>>();
    let client = ::kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        respond(send, 404, status(404, "NotFound"));
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method().as_str(), "POST");
        let body = http_body_util::BodyExt::collect(request.into_body()).await.unwrap().to_bytes();
        let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
        respond(send, 201, created.clone());
        created
    });
    let ca = load_or_create_secret(client, "istio-system", "ambient-ca", "cluster.local").await.unwrap();
    let created = server.await.unwrap();
    let stored: k8s_openapi::api::core::v1::Secret = serde_json::from_value(created).unwrap();
    let data = stored.data.unwrap();
    assert_eq!(String::from_utf8(data[SECRET_CERT_KEY].0.clone()).unwrap(), ca.root_pem());
    assert!(String::from_utf8(data[SECRET_KEY_KEY].0.clone()).unwrap().contains("PRIVATE KEY"));
}

/// Kube mode: the root certificate goes into the ConfigMap by server-side apply with the control
/// plane's own field manager (so install's re-apply keeps it); a refusal is retried.
#[tokio::test]
async fn root_cert_is_published_by_server_side_apply_and_retried() {
    use super::publish::{FIELD_MANAGER, ROOT_CERT_KEY, publish_root_cert};
    let (service, mut handle) =
        tower_test::mock::pair::<Request<::kube::client::Body>, Response<::kube::client::Body>>();
    let client = ::kube::Client::new(service, "default");
    let server = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for code in [403, 200] {
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.method().as_str(), "PATCH");
            assert_eq!(request.uri().path(), "/api/v1/namespaces/istio-system/configmaps/istio-ca-root-cert");
            let query = request.uri().query().unwrap_or_default().to_string();
            assert!(query.contains(&format!("fieldManager={FIELD_MANAGER}")), "{query}");
            assert_eq!(request.headers()["content-type"], "application/apply-patch+yaml");
            let body = http_body_util::BodyExt::collect(request.into_body()).await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            respond(send, code, if code == 200 { body.clone() } else { status(403, "Forbidden") });
            bodies.push(body);
        }
        bodies
    });
    let publish = publish_root_cert(client, "istio-system".into(), "istio-ca-root-cert".into(), "ROOT PEM".into());
    tokio::time::timeout(std::time::Duration::from_secs(10), publish).await.expect("published after one retry");
    let bodies = server.await.unwrap();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["data"][ROOT_CERT_KEY], "ROOT PEM");
    assert_eq!(bodies[1]["metadata"]["name"], "istio-ca-root-cert");
}
