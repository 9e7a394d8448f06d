//! rustls configurations: the control plane's TLS endpoint (xDS and CA) and its clients, and
//! workload mTLS (TLS 1.3 only, SPIFFE verification both ways). All speak ALPN `h2`.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::certificate::WorkloadCertificate;
use super::provider;
use super::verify::{SpiffeClientVerifier, SpiffeServerVerifier, TrustRoots};
use crate::model::Identity;

/// ALPN protocol of gRPC and HBONE.
pub const ALPN_H2: &[u8] = b"h2";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS configuration: cannot build the server verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// Server side of the control plane's endpoint: presents `chain` (leaf first) with `key`; does
/// not ask for client certificates (callers authenticate with bearer tokens). TLS 1.3 and 1.2.
pub fn control_plane_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Client side of the control plane's endpoint: trusts `roots` and checks the server name (DNS
/// or IP SAN) as usual. TLS 1.3 only.
pub fn control_plane_client_config(roots: &TrustRoots) -> Result<Arc<ClientConfig>, ConfigError> {
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots.root_store()), provider()).build()?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Server side of workload mTLS: presents `cert`, requires a client certificate chaining to
/// `roots` with an identity in `trust_domain`. TLS 1.3 only.
pub fn workload_server_config(
    cert: &WorkloadCertificate,
    roots: TrustRoots,
    trust_domain: &str,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let verifier = Arc::new(SpiffeClientVerifier::new(roots, trust_domain));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(cert.certified_key())));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Client side of workload mTLS: presents `cert`, requires the server to chain to `roots` and
/// present one of `expected`. TLS 1.3 only.
pub fn workload_client_config(
    cert: &WorkloadCertificate,
    roots: TrustRoots,
    expected: Vec<Identity>,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let verifier = Arc::new(SpiffeServerVerifier::new(roots, expected));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(cert.certified_key())));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}
