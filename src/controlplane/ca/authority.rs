//! The signer: a CA certificate and its key (a self-signed root, or an intermediate under a
//! plug-in root), issuing workload leaves for public keys it is given and the control plane's
//! own serving certificate.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::PublicKeyData as _;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CaError;
use crate::model::Identity;
use crate::tls::pem::{cert_to_pem, parse_certs};
use crate::tls::{TrustRoots, control_plane_server_config};

/// How long a generated root is valid.
pub const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How far in the past issued certificates start, for peers whose clocks run behind.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Default lifetime of the control plane's serving certificate.
pub const SERVING_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// PEM text and where it came from (a file, a Secret key), for error messages.
#[derive(Clone)]
pub struct PemSource {
    pub origin: String,
    pub text: Vec<u8>,
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // May hold a private key: show where it came from only.
        f.debug_struct("PemSource").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl PemSource {
    pub fn new(origin: impl Into<String>, text: impl Into<Vec<u8>>) -> Self {
        PemSource { origin: origin.into(), text: text.into() }
    }

    /// Reads a file, the error naming it.
    pub fn read(path: &std::path::Path) -> Result<Self, CaError> {
        Ok(PemSource { origin: path.display().to_string(), text: crate::tls::pem::read(path)? })
    }
}

/// What a CA is made of: its certificate and key, and for an intermediate the chain up to the
/// root and the root itself.
#[derive(Clone, Debug)]
pub struct SigningMaterial {
    /// The CA certificate that signs leaves (the first certificate of the text).
    pub cert: PemSource,
    pub key: PemSource,
    /// Certificates between `cert` and the root (in order, upward); `cert` itself and the root
    /// may also appear in it.
    pub chain: Option<PemSource>,
    /// The root, when `cert` is an intermediate and `chain` does not end with it.
    pub root: Option<PemSource>,
}

/// The control plane's serving certificate: chain (leaf first) and key.
pub struct ServingCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ServingCertificate {
    /// A rustls server configuration presenting this certificate (ALPN h2, TLS 1.3 and 1.2).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, crate::tls::ConfigError> {
        control_plane_server_config(self.chain.clone(), self.key.clone_key())
    }
}

impl std::fmt::Debug for ServingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCertificate").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

/// A certificate authority ready to sign.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    /// PEM certificates served after a leaf: the signing certificate, intermediates, the root.
    chain: Vec<String>,
    chain_der: Vec<CertificateDer<'static>>,
    root_pem: String,
    roots: TrustRoots,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("chain_len", &self.chain.len())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn parse_x509<'a>(origin: &str, der: &'a [u8]) -> Result<X509Certificate<'a>, CaError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| CaError::Certificate { origin: origin.to_string(), detail: e.to_string() })
}

fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.subject() == cert.issuer() && cert.verify_signature(None).is_ok()
}

fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CaError::Random)?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and 16 bytes long
    Ok(SerialNumber::from_slice(&bytes))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Generates a self-signed root (ECDSA P-256, CA, valid for [`ROOT_TTL`]) for `trust_domain`.
/// Returns the certificate and key as PEM.
pub fn generate_root(trust_domain: &str) -> Result<(String, String), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, trust_domain);
    name.push(DnType::CommonName, "ambient root CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(random_serial()?);
    let start = now() - CLOCK_SKEW;
    params.not_before = start;
    params.not_after = start + ROOT_TTL;
    let cert = params.self_signed(&key).map_err(CaError::Generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl CertificateAuthority {
    /// Builds a CA from its material, checking it: the key matches the certificate, the
    /// certificate is a CA, the root is self-signed, and a certificate it issues verifies
    /// against the root through the chain.
    pub fn new(material: &SigningMaterial) -> Result<Self, CaError> {
        let mut certs = parse_certs(&material.cert.origin, &material.cert.text)?;
        let signing = certs.remove(0);
        let signing_x509 = parse_x509(&material.cert.origin, &signing)?;
        if !signing_x509.is_ca() {
            return Err(CaError::NotCa { origin: material.cert.origin.clone() });
        }

        let key_text = std::str::from_utf8(&material.key.text)
            .map_err(|_| CaError::Key { origin: material.key.origin.clone(), detail: "not UTF-8 PEM text".into() })?;
        let key = KeyPair::from_pem(key_text)
            .map_err(|e| CaError::Key { origin: material.key.origin.clone(), detail: e.to_string() })?;
        if key.subject_public_key_info() != signing_x509.public_key().raw {
            return Err(CaError::KeyMismatch { key: material.key.origin.clone(), cert: material.cert.origin.clone() });
        }

        // Everything above the signing certificate, in order, without repeats of it.
        let mut above: Vec<(String, CertificateDer<'static>)> =
            certs.into_iter().map(|c| (material.cert.origin.clone(), c)).collect();
        if let Some(chain) = &material.chain {
            above.extend(parse_certs(&chain.origin, &chain.text)?.into_iter().map(|c| (chain.origin.clone(), c)));
        }
        above.retain(|(_, c)| *c != signing);

        let (root_origin, root) = match &material.root {
            Some(root) => (root.origin.clone(), parse_certs(&root.origin, &root.text)?.remove(0)),
            None => match above.last() {
                Some((origin, cert)) => (origin.clone(), cert.clone()),
                None => (material.cert.origin.clone(), signing.clone()),
            },
        };
        if !is_self_signed(&parse_x509(&root_origin, &root)?) {
            return Err(CaError::RootNotSelfSigned { origin: root_origin });
        }
        above.retain(|(_, c)| *c != root);

        let mut chain_der = vec![signing.clone()];
        chain_der.extend(above.into_iter().map(|(_, c)| c));
        if signing != root {
            chain_der.push(root.clone());
        }
        let ca_not_after = OffsetDateTime::from_unix_timestamp(signing_x509.validity().not_after.timestamp())
            .map_err(|e| CaError::Certificate { origin: material.cert.origin.clone(), detail: e.to_string() })?;
        let issuer = Issuer::from_ca_cert_der(&signing, key)
            .map_err(|e| CaError::Certificate { origin: material.cert.origin.clone(), detail: e.to_string() })?;
        let root_pem = cert_to_pem(&root);
        let roots = TrustRoots::new(&root_origin, vec![root]).map_err(|e| CaError::Chain { detail: e.to_string() })?;
        let ca = CertificateAuthority {
            issuer,
            chain: chain_der.iter().map(cert_to_pem).collect(),
            chain_der,
            root_pem,
            roots,
            not_after: ca_not_after,
        };
        ca.self_check()?;
        Ok(ca)
    }

    /// Issues a leaf for a throwaway key and verifies it against the root, so a CA that cannot
    /// produce verifiable certificates fails at start rather than at its first client.
    fn self_check(&self) -> Result<(), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let probe =
            Identity::new("ambient.check", "ca", "self-check").map_err(|e| CaError::Chain { detail: e.to_string() })?;
        let spki = SubjectPublicKeyInfo::from_der(&key.subject_public_key_info()).map_err(CaError::Sign)?;
        let chain = self.issue_der(&spki, &probe, Duration::from_secs(300))?;
        self.roots.verify_issued(&chain, UnixTime::now()).map_err(|e| CaError::Chain { detail: e.to_string() })?;
        Ok(())
    }

    /// The root certificate (PEM) peers must trust.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The root as trust roots, for verifying what this CA issues.
    pub fn roots(&self) -> &TrustRoots {
        &self.roots
    }

    /// The certificates served after an issued leaf (signing certificate ... root), PEM.
    pub fn chain_pem(&self) -> &[String] {
        &self.chain
    }

    /// When the signing certificate expires; nothing issued outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    fn window(&self, ttl: Duration) -> (OffsetDateTime, OffsetDateTime) {
        let now = now();
        (now - CLOCK_SKEW, std::cmp::min(now + ttl, self.not_after))
    }

    fn issue_der(
        &self,
        public_key: &SubjectPublicKeyInfo,
        identity: &Identity,
        ttl: Duration,
    ) -> Result<Vec<CertificateDer<'static>>, CaError> {
        let uri = Ia5String::try_from(identity.to_string()).map_err(CaError::Sign)?;
        let mut params = CertificateParams::default();
        // An empty subject: the SAN carries the identity, and is then marked critical.
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        (params.not_before, params.not_after) = self.window(ttl);
        let leaf = params.signed_by(public_key, &self.issuer).map_err(CaError::Sign)?;
        let mut chain = vec![leaf.der().clone()];
        chain.extend(self.chain_der.iter().cloned());
        Ok(chain)
    }

    /// Issues a workload certificate for `identity` to the holder of the key whose DER
    /// SubjectPublicKeyInfo is `spki`, valid for `ttl` (capped by the CA's own expiry).
    /// Returns the chain as PEM, one certificate per entry: the leaf first, the root last.
    pub fn issue(&self, spki: &[u8], identity: &Identity, ttl: Duration) -> Result<Vec<String>, CaError> {
        let public_key = SubjectPublicKeyInfo::from_der(spki).map_err(|e| CaError::UnsupportedKey(e.to_string()))?;
        let chain = self.issue_der(&public_key, identity, ttl)?;
        Ok(chain.iter().map(cert_to_pem).collect())
    }

    /// A serving certificate for the control plane: a fresh key (it never leaves this
    /// process), DNS or IP SANs for each of `names`, server authentication, valid for `ttl`.
    pub fn serving_certificate(&self, names: &[String], ttl: Duration) -> Result<ServingCertificate, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::Generate)?;
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, "ambient-controlplane");
        params.distinguished_name = subject;
        let mut sans = Vec::new();
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    Ia5String::try_from(name.as_str()).map_err(|_| CaError::InvalidName(name.clone()))?,
                ),
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        (params.not_before, params.not_after) = self.window(ttl);
        let leaf = params.signed_by(&key, &self.issuer).map_err(CaError::Sign)?;
        let mut chain = vec![leaf.der().clone()];
        chain.extend(self.chain_der.iter().cloned());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(ServingCertificate { chain, key })
    }
}

/// The names the control plane's serving certificate carries: the service names Istio's
/// ztunnel and our clients dial (`istiod.istio-system.svc`, `istiod.<root-ns>.svc`,
/// `ambient-controlplane.<root-ns>.svc`), loopback, then `extra`.
pub fn serving_names(root_namespace: &str, extra: &[String]) -> Vec<String> {
    let base = [
        "istiod.istio-system.svc".to_string(),
        format!("istiod.{root_namespace}.svc"),
        format!("ambient-controlplane.{root_namespace}.svc"),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let mut names: Vec<String> = Vec::new();
    for name in base.iter().chain(extra) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}
