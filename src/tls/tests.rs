use std::sync::Arc;
use std::time::Duration;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::model::Identity;

struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = params.self_signed(&key).unwrap();
    Ca { cert: cert.der().clone(), issuer: Issuer::new(params, key) }
}

fn uri(s: &str) -> SanType {
    SanType::URI(Ia5String::try_from(s).unwrap())
}

/// A leaf with `sans`, valid from `start` for `ttl`; returns (key PEM, leaf).
fn leaf_at(ca: &Ca, sans: Vec<SanType>, start: OffsetDateTime, ttl: Duration) -> (String, CertificateDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = start;
    params.not_after = start + ttl;
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (key.serialize_pem(), cert.der().clone())
}

fn leaf(ca: &Ca, sans: Vec<SanType>) -> (String, CertificateDer<'static>) {
    leaf_at(ca, sans, OffsetDateTime::now_utc() - Duration::from_secs(60), Duration::from_secs(3600))
}

fn workload(ca: &Ca, identity: &str) -> WorkloadCertificate {
    let (key, cert) = leaf(ca, vec![uri(identity)]);
    let chain = vec![pem::cert_to_pem(&cert), pem::cert_to_pem(&ca.cert)];
    WorkloadCertificate::from_pem(&key, &chain).unwrap()
}

fn roots(ca: &Ca) -> TrustRoots {
    TrustRoots::new("test roots", vec![ca.cert.clone()]).unwrap()
}

fn id(s: &str) -> Identity {
    s.parse().unwrap()
}

#[test]
fn pem_round_trip_and_errors_name_the_origin() {
    let root = ca("root");
    let text = pem::cert_to_pem(&root.cert);
    assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n") && text.ends_with("-----END CERTIFICATE-----\n"));
    assert!(text.lines().all(|l| l.len() <= 64));
    assert_eq!(pem::parse_certs("x", format!("{text}{text}").as_bytes()).unwrap(), vec![root.cert.clone(); 2]);

    let err = pem::parse_certs("/etc/ca/root.pem", b"nothing here").unwrap_err().to_string();
    assert_eq!(err, "/etc/ca/root.pem: no PEM certificate (-----BEGIN CERTIFICATE-----) found");
    let err = pem::parse_key("/etc/ca/key.pem", text.as_bytes()).unwrap_err().to_string();
    assert!(err.starts_with("/etc/ca/key.pem: no PEM private key"), "{err}");
    let err = pem::read_certs(std::path::Path::new("/nonexistent/root.pem")).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/root.pem: cannot read"), "{err}");
}

#[test]
fn spiffe_identity_needs_exactly_one_uri_san() {
    let root = ca("root");
    let (_, one) = leaf(&root, vec![uri("spiffe://td/ns/a/sa/b"), SanType::DnsName("b.a".try_into().unwrap())]);
    assert_eq!(spiffe_identity(&one).unwrap(), id("spiffe://td/ns/a/sa/b"));
    let (_, none) = leaf(&root, vec![SanType::DnsName("b.a".try_into().unwrap())]);
    assert!(matches!(spiffe_identity(&none), Err(CertificateError::NoUriSan)));
    let (_, two) = leaf(&root, vec![uri("spiffe://td/ns/a/sa/b"), uri("spiffe://td/ns/a/sa/c")]);
    let err = spiffe_identity(&two).unwrap_err().to_string();
    assert!(err.contains("2 URI SANs (spiffe://td/ns/a/sa/b, spiffe://td/ns/a/sa/c)"), "{err}");
    let (_, bad) = leaf(&root, vec![uri("spiffe://td/a/b")]);
    assert!(matches!(spiffe_identity(&bad), Err(CertificateError::Identity(_))));
}

#[test]
fn verifier_checks_the_chain_before_the_identity() {
    let root = ca("root");
    let stranger = ca("stranger");
    let expected = vec![id("spiffe://td/ns/a/sa/b")];
    let verifier = SpiffeServerVerifier::new(roots(&root), expected.clone());
    let now = UnixTime::now();

    let (_, good) = leaf(&root, vec![uri("spiffe://td/ns/a/sa/b")]);
    assert_eq!(verifier.verify(&good, &[], now).unwrap(), expected[0]);

    // Right identity, wrong issuer: refused by the chain check.
    let (_, forged) = leaf(&stranger, vec![uri("spiffe://td/ns/a/sa/b")]);
    let err = verifier.verify(&forged, &[], now).unwrap_err();
    assert!(matches!(err, VerifyError::Chain(webpki::Error::UnknownIssuer)), "{err}");
    assert!(matches!(
        rustls::Error::from(err),
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    ));

    // Expired.
    let long_ago = OffsetDateTime::now_utc() - Duration::from_secs(7200);
    let (_, expired) = leaf_at(&root, vec![uri("spiffe://td/ns/a/sa/b")], long_ago, Duration::from_secs(3600));
    assert!(matches!(verifier.verify(&expired, &[], now), Err(VerifyError::Chain(webpki::Error::CertExpired { .. }))));

    // Valid chain, other identity.
    let (_, other) = leaf(&root, vec![uri("spiffe://td/ns/a/sa/c")]);
    let err = verifier.verify(&other, &[], now).unwrap_err().to_string();
    assert_eq!(err, "peer identity spiffe://td/ns/a/sa/c is not the expected spiffe://td/ns/a/sa/b");

    // Client side: any identity of the trust domain.
    let clients = SpiffeClientVerifier::new(roots(&root), "td");
    assert_eq!(clients.verify(&other, &[], now).unwrap(), id("spiffe://td/ns/a/sa/c"));
    let (_, foreign) = leaf(&root, vec![uri("spiffe://elsewhere/ns/a/sa/c")]);
    assert!(matches!(clients.verify(&foreign, &[], now), Err(VerifyError::TrustDomain { .. })));
    assert!(clients.verify(&forged, &[], now).is_err());
}

#[test]
fn roots_must_be_usable_certificates() {
    assert!(matches!(TrustRoots::new("empty", vec![]), Err(VerifyError::NoRoots)));
    let err = TrustRoots::new("roots.pem", vec![CertificateDer::from(vec![1, 2, 3])]).unwrap_err().to_string();
    assert!(err.starts_with("roots.pem: certificate 0 cannot be a trust root"), "{err}");
}

/// Runs a TLS handshake over an in-memory pipe and one echo round trip; returns the client's
/// result (the server's failure shows up there too).
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<Vec<u8>, std::io::Error> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let mut stream = acceptor.accept(b).await?;
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await?;
        stream.write_all(&buf).await?;
        stream.flush().await?;
        Ok::<_, std::io::Error>(stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
    });
    let connector = tokio_rustls::TlsConnector::from(client);
    let result = async {
        let mut stream = connector.connect(ServerName::try_from(name.to_string()).unwrap(), a).await?;
        stream.write_all(b"hello").await?;
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"hello");
        Ok(stream.get_ref().1.alpn_protocol().unwrap_or_default().to_vec())
    }
    .await;
    let server_result = server_task.await.unwrap();
    if result.is_ok() {
        assert_eq!(server_result.unwrap().as_deref(), Some(config::ALPN_H2));
    }
    result
}

#[tokio::test]
async fn workload_mtls_checks_spiffe_identities_both_ways() {
    let root = ca("root");
    let server_cert = workload(&root, "spiffe://td/ns/shop/sa/db");
    let client_cert = workload(&root, "spiffe://td/ns/shop/sa/web");
    let server = workload_server_config(&server_cert, roots(&root), "td").unwrap();

    let client = workload_client_config(&client_cert, roots(&root), vec![id("spiffe://td/ns/shop/sa/db")]).unwrap();
    assert_eq!(handshake(server.clone(), client, "ignored.example").await.unwrap(), b"h2");

    let wrong = workload_client_config(&client_cert, roots(&root), vec![id("spiffe://td/ns/shop/sa/cache")]).unwrap();
    let err = handshake(server.clone(), wrong, "ignored.example").await.unwrap_err().to_string();
    assert!(err.contains("spiffe://td/ns/shop/sa/db is not the expected"), "{err}");

    // A client whose certificate comes from another CA is refused by the server.
    let stranger = ca("stranger");
    let foreign = workload(&stranger, "spiffe://td/ns/shop/sa/web");
    let client = workload_client_config(&foreign, roots(&root), vec![id("spiffe://td/ns/shop/sa/db")]).unwrap();
    assert!(handshake(server, client, "ignored.example").await.is_err());
}

#[tokio::test]
async fn control_plane_endpoint_is_verified_by_name_against_the_root() {
    let root = ca("root");
    let (key, cert) = leaf(&root, vec![SanType::DnsName("localhost".try_into().unwrap())]);
    let server =
        control_plane_server_config(vec![cert, root.cert.clone()], pem::parse_key("key", key.as_bytes()).unwrap())
            .unwrap();
    let client = control_plane_client_config(&roots(&root)).unwrap();
    assert_eq!(handshake(server.clone(), client.clone(), "localhost").await.unwrap(), b"h2");
    assert!(handshake(server.clone(), client, "istiod.istio-system.svc").await.is_err(), "name not in the cert");
    let other = control_plane_client_config(&roots(&ca("other"))).unwrap();
    assert!(handshake(server, other, "localhost").await.is_err(), "untrusted root");
}

#[test]
fn provider_prefers_aes128_gcm_and_post_quantum_key_exchange() {
    let provider = provider();
    assert_eq!(provider.cipher_suites[0].suite(), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    assert_eq!(provider.kx_groups[0].name(), rustls::NamedGroup::X25519MLKEM768);
    // Every suite ring offers is offered, nothing else.
    let mut ours: Vec<_> = provider.cipher_suites.iter().map(|s| u16::from(s.suite())).collect();
    let mut ring: Vec<_> = rustls::crypto::ring::DEFAULT_CIPHER_SUITES.iter().map(|s| u16::from(s.suite())).collect();
    ours.sort_unstable();
    ring.sort_unstable();
    assert_eq!(ours, ring);
}
