//! Verifying a peer: the chain first, with webpki against the trust roots (signatures,
//! validity period, CA constraints, extended key usage), and only then its SPIFFE identity
//! (the leaf's one URI SAN), which webpki does not look at.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use super::certificate::{CertificateError, spiffe_identity};
use super::pem::{PemError, parse_certs};
use super::provider;
use crate::model::Identity;

/// Why a peer's certificate was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("{origin}: certificate {index} cannot be a trust root: {error}")]
    InvalidRoot { origin: String, index: usize, error: webpki::Error },
    #[error("no trust roots to verify against")]
    NoRoots,
    #[error("the certificate chain does not verify against the trust roots: {0}")]
    Chain(webpki::Error),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("peer identity {found} is not the expected {}", list(.expected))]
    IdentityMismatch { found: Identity, expected: Vec<Identity> },
    #[error("peer identity {found} is not in trust domain {expected}")]
    TrustDomain { found: Identity, expected: String },
}

fn list(ids: &[Identity]) -> String {
    ids.iter().map(Identity::to_string).collect::<Vec<_>>().join(" or ")
}

impl From<VerifyError> for rustls::Error {
    fn from(error: VerifyError) -> Self {
        use rustls::CertificateError as C;
        let kind = match error {
            VerifyError::Chain(webpki::Error::UnknownIssuer) => C::UnknownIssuer,
            VerifyError::Chain(webpki::Error::CertExpired { .. }) => C::Expired,
            VerifyError::Chain(webpki::Error::CertNotValidYet { .. }) => C::NotValidYet,
            VerifyError::Chain(webpki::Error::InvalidSignatureForPublicKey) => C::BadSignature,
            VerifyError::Certificate(CertificateError::Parse(_)) => C::BadEncoding,
            other => C::Other(rustls::OtherError(Arc::new(Readable(other)))),
        };
        rustls::Error::InvalidCertificate(kind)
    }
}

/// rustls shows an `OtherError` with `Debug`; this shows the message instead.
struct Readable(VerifyError);

impl std::fmt::Debug for Readable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Readable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Readable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The certificates a peer's chain must lead to.
#[derive(Clone, Debug)]
pub struct TrustRoots {
    certs: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustRoots {
    /// From DER root certificates. `origin` names where they came from, for errors.
    pub fn new(origin: &str, certs: Vec<CertificateDer<'static>>) -> Result<Self, VerifyError> {
        if certs.is_empty() {
            return Err(VerifyError::NoRoots);
        }
        let anchors = certs
            .iter()
            .enumerate()
            .map(|(index, cert)| {
                webpki::anchor_from_trusted_cert(cert)
                    .map(|anchor| anchor.to_owned())
                    .map_err(|error| VerifyError::InvalidRoot { origin: origin.to_string(), index, error })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustRoots { certs, anchors })
    }

    /// From PEM text holding one or more root certificates.
    pub fn from_pem(origin: &str, pem: &[u8]) -> Result<Self, VerifyError> {
        Self::new(origin, parse_certs(origin, pem)?)
    }

    /// The root certificates.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// The roots as a rustls store (for standard, DNS-name based server verification).
    pub fn root_store(&self) -> RootCertStore {
        RootCertStore { roots: self.anchors.clone() }
    }

    /// Verifies the chain of `leaf` (with `intermediates` as sent by the peer) to one of the
    /// roots at `now`, for `usage` (client or server authentication).
    pub fn verify_chain(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
    ) -> Result<(), VerifyError> {
        let cert = EndEntityCert::try_from(leaf).map_err(VerifyError::Chain)?;
        cert.verify_for_usage(
            provider().signature_verification_algorithms.all,
            &self.anchors,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map_err(VerifyError::Chain)?;
        Ok(())
    }

    /// Verifies the chain, then returns the leaf's SPIFFE identity.
    pub fn verify_identity(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
    ) -> Result<Identity, VerifyError> {
        self.verify_chain(leaf, intermediates, now, usage)?;
        Ok(spiffe_identity(leaf)?)
    }

    /// Verifies a chain as a CA returns it (leaf first; intermediates; the root may be included
    /// and is then simply one more candidate issuer) and returns the leaf's identity.
    pub fn verify_issued(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Result<Identity, VerifyError> {
        let (leaf, rest) =
            chain.split_first().ok_or(VerifyError::Certificate(CertificateError::Pem(PemError::NoCertificate {
                origin: "chain".into(),
            })))?;
        self.verify_identity(leaf, rest, now, KeyUsage::client_auth())
    }
}

fn verify_tls12(message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> SignatureResult {
    rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
}

fn verify_tls13(message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> SignatureResult {
    rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
}

type SignatureResult = Result<HandshakeSignatureValid, rustls::Error>;

fn schemes() -> Vec<SignatureScheme> {
    provider().signature_verification_algorithms.supported_schemes()
}

/// Client side of workload mTLS: the server must chain to the roots and present one of the
/// expected identities. The TLS server name is not used: identities are checked instead.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: TrustRoots,
    expected: Vec<Identity>,
}

impl SpiffeServerVerifier {
    pub fn new(roots: TrustRoots, expected: Vec<Identity>) -> Self {
        SpiffeServerVerifier { roots, expected }
    }

    /// The server's identity if its chain verifies and it is one of the expected identities.
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Identity, VerifyError> {
        let found = self.roots.verify_identity(leaf, intermediates, now, KeyUsage::server_auth())?;
        if self.expected.contains(&found) {
            Ok(found)
        } else {
            Err(VerifyError::IdentityMismatch { found, expected: self.expected.clone() })
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        verify_tls12(m, c, d)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        verify_tls13(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}

/// Server side of workload mTLS: a client certificate is required, must chain to the roots and
/// carry an identity of the trust domain; which identities may do what is left to
/// authorization.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    roots: TrustRoots,
    trust_domain: String,
}

impl SpiffeClientVerifier {
    pub fn new(roots: TrustRoots, trust_domain: impl Into<String>) -> Self {
        SpiffeClientVerifier { roots, trust_domain: trust_domain.into() }
    }

    /// The client's identity if its chain verifies and it is in the trust domain.
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Identity, VerifyError> {
        let found = self.roots.verify_identity(leaf, intermediates, now, KeyUsage::client_auth())?;
        if found.trust_domain == self.trust_domain {
            Ok(found)
        } else {
            Err(VerifyError::TrustDomain { found, expected: self.trust_domain.clone() })
        }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        verify_tls12(m, c, d)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        verify_tls13(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}
