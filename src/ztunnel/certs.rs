//! Workload certificates from the mesh CA (`istio.v1.auth.IstioCertificateService`), for the
//! identities of the pods this ztunnel serves.
//!
//! Per identity, one background task owns the certificate: it generates an ECDSA P-256 key
//! locally, sends a CSR carrying the SPIFFE URI SAN (with `ImpersonatedIdentity` metadata, as a
//! node proxy asks on behalf of a pod), checks that what comes back chains to the mesh root and
//! names the identity, then refreshes at `refresh_fraction` of the remaining lifetime. Failures
//! are retried with exponential backoff; meanwhile a still-valid certificate keeps being
//! served. Concurrent [`CertManager::fetch`] calls wait for the same request.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tracing::{info, warn};

use crate::model::Identity;
use crate::tls::pem::cert_to_pem;
use crate::tls::{TrustRoots, WorkloadCertificate};
use crate::xds::client::{TlsOptions, TokenSource, control_plane_endpoint};
use crate::xds::proto::IMPERSONATED_IDENTITY;
use crate::xds::proto::ca::IstioCertificateRequest;
use crate::xds::proto::ca::istio_certificate_service_client::IstioCertificateServiceClient;
use crate::xds::proto::google::protobuf::{Struct, Value, value::Kind};

#[cfg(test)]
mod tests;

/// First retry delay after a failed request, doubling up to [`RETRY_MAX`] (Istio's values).
const RETRY_INITIAL: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(150);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach the CA and what to ask it for.
#[derive(Clone, Debug)]
pub struct CaClientConfig {
    /// `https://host:port`.
    pub address: String,
    /// The mesh root (PEM): verifies the CA's serving certificate and the issued chains, and is
    /// what [`CertManager::roots`] returns for workload mTLS.
    pub root_cert_pem: Vec<u8>,
    /// Name to verify the CA's certificate for (default: the host of `address`).
    pub server_name: Option<String>,
    pub token: Option<TokenSource>,
    /// Sent as the `clusterid` header.
    pub cluster_id: String,
    /// Lifetime asked for.
    pub ttl: Duration,
    /// Share of the remaining lifetime after which a certificate is renewed.
    pub refresh_fraction: f64,
}

impl CaClientConfig {
    /// Istio's defaults: 24h certificates renewed at half their lifetime.
    pub fn new(address: impl Into<String>, root_cert_pem: Vec<u8>) -> Self {
        CaClientConfig {
            address: address.into(),
            root_cert_pem,
            server_name: None,
            token: None,
            cluster_id: "Kubernetes".to_string(),
            ttl: Duration::from_secs(24 * 3600),
            refresh_fraction: 0.5,
        }
    }
}

/// Why a certificate could not be had. Cloned to every caller waiting for the same request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("invalid CA client configuration: {0}")]
    Config(String),
    #[error("cannot read the CA token file {}: {detail}", path.display())]
    TokenFile { path: PathBuf, detail: String },
    #[error("cannot create a key or CSR for {identity}: {detail}")]
    Csr { identity: Identity, detail: String },
    #[error("the CA at {address} is unavailable for {identity}: {message}")]
    Unavailable { address: String, identity: Identity, message: String },
    #[error("the CA refused a certificate for {identity} ({code:?}): {message}")]
    Refused { identity: Identity, code: tonic::Code, message: String },
    #[error("the CA returned an unusable certificate for {identity}: {detail}")]
    Invalid { identity: Identity, detail: String },
    #[error("the CA returned a certificate for {got} when {requested} was asked for")]
    WrongIdentity { requested: Identity, got: String },
    #[error("the certificate of {identity} expired and could not be renewed: {last_error}")]
    Expired { identity: Identity, last_error: String },
    #[error("the certificate of {0} is no longer wanted (forgotten while fetching)")]
    Forgotten(Identity),
}

/// What the owner task of an identity has.
#[derive(Clone, Debug)]
enum CertState {
    /// The first request is in flight.
    Pending,
    Available {
        cert: Arc<WorkloadCertificate>,
        /// Renewal time, or the next retry after a failed renewal.
        next_refresh: SystemTime,
        /// The last renewal failure, until a renewal succeeds.
        last_error: Option<CertError>,
    },
    /// No usable certificate; retrying at `next_retry`.
    Failed { error: CertError, next_retry: SystemTime },
}

struct Entry {
    state: watch::Receiver<CertState>,
    task: JoinHandle<()>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fetches, caches and renews workload certificates.
pub struct CertManager {
    requester: Arc<Requester>,
    roots: TrustRoots,
    entries: RwLock<HashMap<Identity, Entry>>,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager").field("address", &self.requester.config.address).finish()
    }
}

impl CertManager {
    /// Validates the configuration; connects lazily, on the first request.
    pub fn new(config: CaClientConfig) -> Result<Arc<CertManager>, CertError> {
        let roots = TrustRoots::from_pem("CA root certificate", &config.root_cert_pem)
            .map_err(|e| CertError::Config(e.to_string()))?;
        if !(config.refresh_fraction > 0.0 && config.refresh_fraction < 1.0) {
            return Err(CertError::Config(format!("refresh_fraction {} is not in (0, 1)", config.refresh_fraction)));
        }
        let channel =
            grpc_endpoint(&config.address, &config.root_cert_pem, config.server_name.as_deref())?.connect_lazy();
        let requester =
            Arc::new(Requester { client: IstioCertificateServiceClient::new(channel), roots: roots.clone(), config });
        Ok(Arc::new(CertManager { requester, roots, entries: RwLock::default() }))
    }

    /// The mesh root workload certificates chain to.
    pub fn roots(&self) -> TrustRoots {
        self.roots.clone()
    }

    /// The certificate of `id`: cached, or requested (once, however many callers wait).
    pub async fn fetch(&self, id: &Identity) -> Result<Arc<WorkloadCertificate>, CertError> {
        if let Some(cert) = self.current(id) {
            return Ok(cert);
        }
        let mut state = {
            let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
            let entry = entries.entry(id.clone()).or_insert_with(|| self.start(id.clone()));
            entry.state.clone()
        };
        let state =
            state.wait_for(|s| !matches!(s, CertState::Pending)).await.map_err(|_| CertError::Forgotten(id.clone()))?;
        match &*state {
            CertState::Available { cert, .. } if valid(cert) => Ok(cert.clone()),
            CertState::Available { last_error, .. } => Err(CertError::Expired {
                identity: id.clone(),
                last_error: last_error.as_ref().map_or_else(|| "none".to_string(), ToString::to_string),
            }),
            CertState::Failed { error, .. } => Err(error.clone()),
            CertState::Pending => unreachable!("waited for a state other than Pending"),
        }
    }

    /// The certificate of `id` if one is cached and valid; never waits (for TLS resolvers).
    pub fn current(&self, id: &Identity) -> Option<Arc<WorkloadCertificate>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        match &*entries.get(id)?.state.borrow() {
            CertState::Available { cert, .. } if valid(cert) => Some(cert.clone()),
            _ => None,
        }
    }

    /// Identities held (issued, or being requested).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every identity not in `ids` (their renewals stop).
    pub fn retain(&self, ids: &HashSet<Identity>) {
        let removed: Vec<Entry> = {
            let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
            let gone: Vec<Identity> = entries.keys().filter(|id| !ids.contains(*id)).cloned().collect();
            gone.iter().filter_map(|id| entries.remove(id)).collect()
        };
        // Dropped (tasks aborted) outside the lock.
        drop(removed);
    }

    /// Every identity's certificate and state, for `/config_dump`: never private keys.
    pub fn dump(&self) -> serde_json::Value {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<&Identity> = entries.keys().collect();
        ids.sort();
        let dumped: Vec<serde_json::Value> = ids
            .into_iter()
            .map(|id| {
                let state = entries[id].state.borrow().clone();
                let mut value = match state {
                    CertState::Pending => json!({ "state": "pending" }),
                    CertState::Available { cert, next_refresh, last_error } => {
                        let mut value = describe(&cert);
                        value["state"] = json!(if valid(&cert) { "available" } else { "expired" });
                        value["nextRefresh"] = json!(rfc3339(next_refresh));
                        value["lastError"] = json!(last_error.map(|e| e.to_string()));
                        value
                    }
                    CertState::Failed { error, next_retry } => {
                        json!({ "state": "failed", "lastError": error.to_string(), "nextRefresh": rfc3339(next_retry) })
                    }
                };
                value["identity"] = json!(id.to_string());
                value
            })
            .collect();
        json!(dumped)
    }

    fn start(&self, id: Identity) -> Entry {
        let (sender, state) = watch::channel(CertState::Pending);
        let task = tokio::spawn(maintain(self.requester.clone(), id, sender));
        Entry { state, task }
    }
}

fn valid(cert: &WorkloadCertificate) -> bool {
    SystemTime::now() < cert.not_after()
}

/// A tonic endpoint for the CA at `address` over TLS verified with `root_pem`, as the xDS client
/// dials the control plane.
pub fn grpc_endpoint(address: &str, root_pem: &[u8], server_name: Option<&str>) -> Result<Endpoint, CertError> {
    let tls = TlsOptions { root_ca_pem: root_pem.to_vec(), server_name: server_name.map(str::to_string) };
    let endpoint = control_plane_endpoint(address, CONNECT_TIMEOUT, Some(&tls))
        .map_err(|e| CertError::Config(format!("the CA at {address}: {e}")))?;
    Ok(endpoint.timeout(REQUEST_TIMEOUT))
}

/// Keeps the certificate of `id` fresh until aborted.
async fn maintain(requester: Arc<Requester>, id: Identity, state: watch::Sender<CertState>) {
    let mut retry = RETRY_INITIAL;
    loop {
        let result = requester.request(&id).await;
        let now = SystemTime::now();
        let wait = match result {
            Ok(cert) => {
                retry = RETRY_INITIAL;
                let wait = refresh_delay(now, cert.not_after(), requester.config.refresh_fraction);
                info!(identity = %id, expires = %rfc3339(cert.not_after()), renew_in = ?wait, "workload certificate issued");
                state.send_replace(CertState::Available {
                    cert: Arc::new(cert),
                    next_refresh: now + wait,
                    last_error: None,
                });
                wait
            }
            Err(error) => {
                let mut wait = retry;
                retry = (retry * 2).min(RETRY_MAX);
                let kept = match &*state.borrow() {
                    CertState::Available { cert, .. } if valid(cert) => Some(cert.clone()),
                    _ => None,
                };
                match kept {
                    Some(cert) => {
                        // Retry no later than the expiry, when it stops being served.
                        let left = cert.not_after().duration_since(now).unwrap_or_default();
                        wait = wait.min(left);
                        warn!(identity = %id, %error, retry_in = ?wait, "certificate renewal failed; keeping the current one");
                        let next_refresh = now + wait;
                        state.send_replace(CertState::Available { cert, next_refresh, last_error: Some(error) });
                    }
                    None => {
                        warn!(identity = %id, %error, retry_in = ?wait, "cannot get a certificate");
                        state.send_replace(CertState::Failed { error, next_retry: now + wait });
                    }
                }
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// When to renew a certificate fetched at `now`: `fraction` of its remaining lifetime. From the
/// time it was received, not its `notBefore`: CAs backdate that for clock skew (ours by a
/// minute), which would make short-lived certificates due before they even arrive.
pub fn refresh_delay(now: SystemTime, not_after: SystemTime, fraction: f64) -> Duration {
    not_after.duration_since(now).unwrap_or_default().mul_f64(fraction)
}

/// Talks to the CA.
struct Requester {
    client: IstioCertificateServiceClient<Channel>,
    roots: TrustRoots,
    config: CaClientConfig,
}

impl Requester {
    async fn request(&self, id: &Identity) -> Result<WorkloadCertificate, CertError> {
        let config = &self.config;
        let csr_error = |e: rcgen::Error| CertError::Csr { identity: id.clone(), detail: e.to_string() };
        let key = KeyPair::generate().map_err(csr_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let san = Ia5String::try_from(id.to_string()).map_err(csr_error)?;
        params.subject_alt_names = vec![SanType::URI(san)];
        let csr = params.serialize_request(&key).and_then(|c| c.pem()).map_err(csr_error)?;

        let metadata = Struct {
            fields: [(IMPERSONATED_IDENTITY.to_string(), Value { kind: Some(Kind::StringValue(id.to_string())) })]
                .into(),
        };
        let validity_duration = config.ttl.as_secs().try_into().unwrap_or(i64::MAX);
        let mut request =
            tonic::Request::new(IstioCertificateRequest { csr, validity_duration, metadata: Some(metadata) });
        if let Some(token) = self.token().await? {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| CertError::Config("the CA token is not a valid header value".to_string()))?;
            request.metadata_mut().insert("authorization", value);
        }
        if !config.cluster_id.is_empty() {
            let value = MetadataValue::try_from(config.cluster_id.as_str()).map_err(|_| {
                CertError::Config(format!("cluster id {:?} is not a valid header value", config.cluster_id))
            })?;
            request.metadata_mut().insert("clusterid", value);
        }

        let response = self.client.clone().create_certificate(request).await.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => CertError::Unavailable {
                address: config.address.clone(),
                identity: id.clone(),
                message: status.to_string(),
            },
            code => CertError::Refused { identity: id.clone(), code, message: status.message().to_string() },
        })?;
        let invalid = |detail: String| CertError::Invalid { identity: id.clone(), detail };
        let chain = response.into_inner().cert_chain;
        if chain.is_empty() {
            return Err(invalid("the response has no certificate".to_string()));
        }
        let cert = WorkloadCertificate::from_pem(&key.serialize_pem(), &chain).map_err(|e| invalid(e.to_string()))?;
        if cert.identity() != id {
            return Err(CertError::WrongIdentity { requested: id.clone(), got: cert.identity().to_string() });
        }
        let full: Vec<_> = std::iter::once(cert.leaf().clone()).chain(cert.chain().iter().cloned()).collect();
        self.roots
            .verify_issued(&full, rustls_pki_types::UnixTime::now())
            .map_err(|e| invalid(format!("it does not chain to the mesh root: {e}")))?;
        Ok(cert)
    }

    /// The bearer token; a file is read on every request, so rotated tokens are used.
    async fn token(&self) -> Result<Option<String>, CertError> {
        match &self.config.token {
            None => Ok(None),
            Some(TokenSource::Value(token)) => Ok(Some(token.trim().to_string())),
            Some(TokenSource::File(path)) => tokio::fs::read_to_string(path)
                .await
                .map(|t| Some(t.trim().to_string()))
                .map_err(|e| CertError::TokenFile { path: path.clone(), detail: e.to_string() }),
        }
    }
}

/// Serial, validity and chain (PEM) of a certificate: public parts only.
fn describe(cert: &WorkloadCertificate) -> serde_json::Value {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (serial, not_before) = match X509Certificate::from_der(cert.leaf().as_ref()) {
        Ok((_, parsed)) => {
            let seconds = parsed.validity().not_before.timestamp();
            let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64);
            (parsed.tbs_certificate.raw_serial_as_string(), Some(rfc3339(not_before)))
        }
        Err(_) => (String::new(), None),
    };
    let chain: Vec<String> = std::iter::once(cert.leaf()).chain(cert.chain()).map(cert_to_pem).collect();
    json!({
        "serial": serial,
        "notBefore": not_before,
        "notAfter": rfc3339(cert.not_after()),
        "chain": chain,
    })
}

fn rfc3339(time: SystemTime) -> String {
    let time = time::OffsetDateTime::from(time);
    time.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| time.to_string())
}
