//! Workload certificates: a private key, its leaf certificate and the chain above it, and the
//! SPIFFE identity a leaf carries (exactly one URI SAN).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::pem::{PemError, parse_certs, parse_key};
use crate::model::{Identity, IdentityError};

/// Why a certificate cannot be used as a workload certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("the certificate is not valid DER X.509: {0}")]
    Parse(String),
    #[error("the certificate has no URI SAN: a workload certificate carries exactly one SPIFFE ID")]
    NoUriSan,
    #[error("the certificate has {} URI SANs ({}): a workload certificate carries exactly one", .0.len(), .0.join(", "))]
    ManyUriSans(Vec<String>),
    #[error("the certificate's URI SAN is not a SPIFFE workload identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("the private key does not match the leaf certificate, or cannot be used: {0}")]
    Key(rustls::Error),
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertificateError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertificateError::Parse(e.to_string()))?;
    Ok(cert)
}

/// A readable form of a subject alternative name: `URI:spiffe://...`, `DNS:name`, `IP:addr`.
pub(crate) fn describe_san(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::URI(uri) => format!("URI:{uri}"),
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::RFC822Name(email) => format!("email:{email}"),
        GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
            Ok(v4) => format!("IP:{}", IpAddr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*bytes) {
                Ok(v6) => format!("IP:{}", IpAddr::from(v6)),
                Err(_) => format!("IP:<{} bytes>", bytes.len()),
            },
        },
        GeneralName::DirectoryName(name) => format!("DirName:{name}"),
        GeneralName::OtherName(oid, _) => format!("otherName:{oid}"),
        GeneralName::RegisteredID(oid) => format!("RID:{oid}"),
        GeneralName::X400Address(_) => "X400Address".to_string(),
        GeneralName::EDIPartyName(_) => "EDIPartyName".to_string(),
        GeneralName::Invalid(tag, _) => format!("invalid SAN (tag {})", tag.0),
    }
}

/// The URI SANs of a DER certificate, in order.
pub fn uri_sans(cert: &CertificateDer<'_>) -> Result<Vec<String>, CertificateError> {
    let cert = parse(cert.as_ref())?;
    let sans = cert.subject_alternative_name().map_err(|e| CertificateError::Parse(e.to_string()))?;
    Ok(sans
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The SPIFFE identity of a leaf certificate: its one and only URI SAN.
pub fn spiffe_identity(cert: &CertificateDer<'_>) -> Result<Identity, CertificateError> {
    let mut uris = uri_sans(cert)?;
    match uris.len() {
        0 => Err(CertificateError::NoUriSan),
        1 => Ok(uris.remove(0).parse()?),
        _ => Err(CertificateError::ManyUriSans(uris)),
    }
}

/// When a DER certificate stops being valid.
pub fn not_after(cert: &CertificateDer<'_>) -> Result<SystemTime, CertificateError> {
    let cert = parse(cert.as_ref())?;
    let seconds = cert.validity().not_after.timestamp();
    Ok(if seconds >= 0 { SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64) } else { SystemTime::UNIX_EPOCH })
}

/// A workload's certificate: its private key, its leaf (carrying its SPIFFE identity) and the
/// certificates above the leaf as the CA returned them (intermediates, then the root).
#[derive(Clone)]
pub struct WorkloadCertificate {
    identity: Identity,
    certified: Arc<CertifiedKey>,
    not_after: SystemTime,
}

impl std::fmt::Debug for WorkloadCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("WorkloadCertificate")
            .field("identity", &self.identity.to_string())
            .field("chain_len", &self.certified.cert.len())
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl WorkloadCertificate {
    /// From a DER key and chain (leaf first). Checks that the key matches the leaf and that the
    /// leaf carries exactly one SPIFFE ID.
    pub fn new(key: PrivateKeyDer<'static>, chain: Vec<CertificateDer<'static>>) -> Result<Self, CertificateError> {
        let leaf = chain.first().ok_or(CertificateError::Pem(PemError::NoCertificate { origin: "chain".into() }))?;
        let identity = spiffe_identity(leaf)?;
        let not_after = not_after(leaf)?;
        let certified = CertifiedKey::from_der(chain, key, &super::provider()).map_err(CertificateError::Key)?;
        Ok(WorkloadCertificate { identity, certified: Arc::new(certified), not_after })
    }

    /// From the PEM key kept by the requester and the PEM chain a CA returned (leaf first, one
    /// certificate per entry, as in `IstioCertificateResponse.cert_chain`).
    pub fn from_pem(key_pem: &str, chain_pem: &[String]) -> Result<Self, CertificateError> {
        let key = parse_key("workload key", key_pem.as_bytes())?;
        let mut chain = Vec::with_capacity(chain_pem.len());
        for (i, pem) in chain_pem.iter().enumerate() {
            chain.extend(parse_certs(&format!("certificate chain entry {i}"), pem.as_bytes())?);
        }
        Self::new(key, chain)
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.certified.cert[0]
    }

    /// The certificates above the leaf, as the CA returned them.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert[1..]
    }

    /// When the leaf expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Key and full chain, ready for a rustls certificate resolver.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        self.certified.clone()
    }
}
