//! Certificates and TLS, shared by the control plane and the node proxies.
//!
//! - [`provider`]: the one rustls crypto provider (aws-lc-rs), passed explicitly everywhere;
//! - [`pem`]: reading certificates and keys from PEM text or files, errors naming the source;
//! - [`certificate`]: a [`WorkloadCertificate`] (key, leaf, chain) and the SPIFFE identity of a
//!   leaf (its one URI SAN);
//! - [`verify`]: [`TrustRoots`] and the SPIFFE verifiers: the chain is verified with webpki
//!   against the roots first, then the identity in the URI SAN is matched;
//! - [`config`]: rustls server and client configurations for the control plane's endpoint and
//!   for workload mTLS;
//! - [`incoming`]: a TLS listener as a stream of connections for tonic.

pub mod certificate;
pub mod config;
pub mod incoming;
pub mod pem;
pub mod verify;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use self::certificate::{CertificateError, WorkloadCertificate, spiffe_identity, uri_sans};
pub use self::config::{
    ConfigError, control_plane_client_config, control_plane_server_config, workload_client_config,
    workload_server_config,
};
pub use self::incoming::tls_incoming;
pub use self::pem::PemError;
pub use self::verify::{SpiffeClientVerifier, SpiffeServerVerifier, TrustRoots, VerifyError};

/// The crypto provider every TLS configuration of this crate uses: aws-lc-rs for key exchange
/// (its default groups, X25519MLKEM768 first), signatures, randomness and keys, with the record
/// ciphers of ring, TLS 1.3's AES-128-GCM preferred.
///
/// Record encryption is what every HBONE byte pays for. ring's AES-GCM has a VAES/AVX2
/// implementation that aws-lc 0.47 lacks (it has the AVX-512 one only), so on CPUs with VAES
/// but no AVX-512 (AMD Zen 3, this project's benchmark machine) ring seals and opens records at
/// about twice the speed (`cargo bench --bench micro -- record`); elsewhere both use AES-NI.
/// AES-128 costs about a quarter less than AES-256 (10 rounds instead of 14), at a security
/// level TLS 1.3 makes mandatory to implement. The other suites stay available for peers that
/// want them.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = rustls::crypto::aws_lc_rs::default_provider();
            provider.cipher_suites = rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec();
            let preferred = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;
            provider.cipher_suites.sort_by_key(|suite| suite.suite() != preferred);
            Arc::new(provider)
        })
        .clone()
}

/// Installs [`provider`] as the process default, for libraries that build their own rustls
/// configurations from the default (the Kubernetes client). Call once at start; a provider
/// already installed is kept.
pub fn install_default_provider() {
    let _ = CryptoProvider::install_default(provider().as_ref().clone());
}
