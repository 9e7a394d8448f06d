//! The certificate authority: issues workload certificates to authenticated callers over
//! `istio.v1.auth.IstioCertificateService`, and the control plane's own serving certificate.
//!
//! Wiring, in order:
//! 1. [`CaSource::load`] the signer: operator files (`--ca-cert`, `--ca-key`, optionally
//!    `--ca-chain`, `--ca-root`), else a root generated once and kept in `<state-dir>/ca/`
//!    (files mode) or the Secret `<root-ns>/ambient-ca` (kube mode);
//! 2. publish [`CertificateAuthority::root_pem`] to clients (files mode: it is
//!    `<state-dir>/ca/root-cert.pem`);
//! 3. [`CertificateAuthority::serving_certificate`] with [`serving_names`] for the TLS endpoint;
//! 4. [`CaService::new`] with an [`Authenticator`](crate::xds::auth::Authenticator), the mesh,
//!    an [`IssuancePolicy`] and [`CaMetrics::register`], then `into_server()`.
//!
//! Layout: `authority` (signing), `store` (where the CA's key lives), `csr` (requests),
//! `authorize` (who may get what), `service` (gRPC), `metrics`.

mod authority;
mod authorize;
mod csr;
mod metrics;
pub mod publish;
mod service;
mod store;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use self::authority::{
    CLOCK_SKEW, CertificateAuthority, PemSource, ROOT_TTL, SERVING_TTL, ServingCertificate, SigningMaterial,
    generate_root, serving_names,
};
pub use self::authorize::{
    Grant, Refusal, ServiceAccountRef, ServiceAccountRefError, authorize, caller_node, default_node_proxies,
};
pub use self::csr::{CsrError, SigningRequest, parse_csr};
pub use self::metrics::CaMetrics;
pub use self::service::{CaService, DEFAULT_CERT_TTL, DEFAULT_MAX_CERT_TTL, IMPERSONATED_IDENTITY, IssuancePolicy};
pub use self::store::{
    CaSource, DEFAULT_SECRET_NAME, ROOT_CERT_FILE, ROOT_KEY_FILE, SECRET_CERT_KEY, SECRET_KEY_KEY,
    load_or_create_in_dir, load_or_create_secret,
};

/// Why the CA cannot be set up or cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Pem(#[from] crate::tls::PemError),
    #[error("{origin}: not a usable certificate: {detail}")]
    Certificate { origin: String, detail: String },
    #[error("{origin}: the certificate is not a CA (basicConstraints CA:TRUE), it cannot sign")]
    NotCa { origin: String },
    #[error("{origin}: not a usable CA private key: {detail}")]
    Key { origin: String, detail: String },
    #[error("the key in {key} is not the key of the certificate in {cert}")]
    KeyMismatch { key: String, cert: String },
    #[error(
        "{origin}: the root certificate is not self-signed (give the root with --ca-root, or end --ca-chain with it)"
    )]
    RootNotSelfSigned { origin: String },
    #[error("certificates issued by this CA do not verify against its root: {detail}")]
    Chain { detail: String },
    #[error(
        "{present} exists but {missing} does not: the kept CA root is incomplete; restore it, or remove both to generate a new root (every workload certificate will change)"
    )]
    Incomplete { present: PathBuf, missing: PathBuf },
    #[error("Secret {secret}: not a usable CA root: {detail}")]
    Secret { secret: String, detail: String },
    #[error("cannot {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a key or certificate: {0}")]
    Generate(rcgen::Error),
    #[error("cannot sign the certificate: {0}")]
    Sign(rcgen::Error),
    #[error("the requester's public key is not supported: {0}")]
    UnsupportedKey(String),
    #[error("{0:?} is not a valid DNS name or IP address for the serving certificate")]
    InvalidName(String),
    #[error("the system random number generator failed")]
    Random,
    #[error("the CA setup task failed: {0}")]
    Task(String),
}

/// Parses a lifetime such as `24h`, `90d`, `30m`, `3600s` or `3600` (seconds), for
/// `--cert-ttl` and `--max-cert-ttl`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 24h, 90d, 30m or 3600s"))?;
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    let seconds = number.checked_mul(unit_seconds).ok_or_else(|| format!("{text:?} is too long"))?;
    if seconds == 0 {
        return Err(format!("{text:?}: a certificate lifetime must be positive"));
    }
    Ok(Duration::from_secs(seconds))
}
