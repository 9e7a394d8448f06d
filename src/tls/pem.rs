//! PEM text to DER certificates and keys, and back. Every error names where the text came from
//! (a file path, a Secret key), so a bad input can be found.

use std::path::Path;

use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why PEM text could not be used. `origin` is the file or object it came from.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: invalid PEM: {detail}")]
    Invalid { origin: String, detail: String },
    #[error("{origin}: no PEM certificate (-----BEGIN CERTIFICATE-----) found")]
    NoCertificate { origin: String },
    #[error("{origin}: no PEM private key (PKCS#8, SEC1 or PKCS#1) found")]
    NoKey { origin: String },
}

/// Every certificate in `pem`, in order. At least one is required.
pub fn parse_certs(origin: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Invalid { origin: origin.to_string(), detail: e.to_string() })?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate { origin: origin.to_string() });
    }
    Ok(certs)
}

/// The first private key in `pem`.
pub fn parse_key(origin: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => PemError::NoKey { origin: origin.to_string() },
        e => PemError::Invalid { origin: origin.to_string(), detail: e.to_string() },
    })
}

/// Reads a file whole, the error naming it.
pub fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read { origin: path.display().to_string(), source })
}

/// Every certificate of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    parse_certs(&path.display().to_string(), &read(path)?)
}

/// The private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    parse_key(&path.display().to_string(), &read(path)?)
}

/// PEM text of one DER object, e.g. `encode("CERTIFICATE", der)`: 64-column base64 lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// PEM text of a certificate.
pub fn cert_to_pem(cert: &CertificateDer<'_>) -> String {
    encode("CERTIFICATE", cert.as_ref())
}
