//! Certificate signing requests: parsed, their self-signature verified (the requester holds the
//! key), and their subject alternative names checked against the identity to be granted.

use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::model::{Identity, IdentityError};
use crate::tls::certificate::describe_san;

/// Why a CSR cannot be signed. Safe to return to the requester.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("the CSR is not PEM (-----BEGIN CERTIFICATE REQUEST-----): {0}")]
    Pem(String),
    #[error("the CSR is not a valid PKCS#10 request: {0}")]
    Parse(String),
    #[error("the CSR's signature does not verify with its own public key")]
    Signature,
    #[error(
        "the CSR has no subject alternative name: it must carry exactly one, the URI SAN of the SPIFFE ID asked for"
    )]
    NoSan,
    #[error(
        "the CSR must carry exactly one subject alternative name, the URI SAN of the SPIFFE ID asked for; it has {}",
        .0.join(", ")
    )]
    NotOneUri(Vec<String>),
    #[error("the CSR's URI SAN {san:?} is not a SPIFFE workload identity: {error}")]
    Identity { san: String, error: IdentityError },
    #[error("the CSR's SAN URI:{found} is not the identity asked for, {requested}")]
    Mismatch { found: String, requested: Identity },
}

/// A parsed, signature-checked CSR: the requester's public key and the SANs it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRequest {
    /// DER SubjectPublicKeyInfo of the requester's key.
    pub spki: Vec<u8>,
    /// Every SAN, described (`URI:...`, `DNS:...`, `IP:...`).
    pub sans: Vec<String>,
    uris: Vec<String>,
}

/// Parses a PEM CSR and verifies its signature.
pub fn parse_csr(pem: &str) -> Result<SigningRequest, CsrError> {
    let der = CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).map_err(|e| CsrError::Pem(e.to_string()))?;
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref()).map_err(|e| CsrError::Parse(e.to_string()))?;
    csr.verify_signature().map_err(|_| CsrError::Signature)?;
    let mut sans = Vec::new();
    let mut uris = Vec::new();
    for extension in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(names) = extension {
            for name in &names.general_names {
                sans.push(describe_san(name));
                if let GeneralName::URI(uri) = name {
                    uris.push(uri.to_string());
                }
            }
        }
    }
    Ok(SigningRequest { spki: csr.certification_request_info.subject_pki.raw.to_vec(), sans, uris })
}

impl SigningRequest {
    /// The identity the CSR asks for: its only SAN, a SPIFFE URI.
    pub fn identity(&self) -> Result<Identity, CsrError> {
        match (self.sans.len(), self.uris.as_slice()) {
            (0, _) => Err(CsrError::NoSan),
            (1, [uri]) => uri.parse().map_err(|error| CsrError::Identity { san: uri.clone(), error }),
            _ => Err(CsrError::NotOneUri(self.sans.clone())),
        }
    }

    /// Checks that the CSR asks for exactly `requested` and nothing else.
    pub fn check_for(&self, requested: &Identity) -> Result<(), CsrError> {
        let found = self.identity()?;
        if &found == requested {
            Ok(())
        } else {
            Err(CsrError::Mismatch { found: found.to_string(), requested: requested.clone() })
        }
    }
}
