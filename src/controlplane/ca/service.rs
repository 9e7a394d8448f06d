//! `istio.v1.auth.IstioCertificateService/CreateCertificate`: authenticate the caller, work out
//! the identity asked for, check the CSR asks for exactly that, authorize, sign.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::authority::CertificateAuthority;
use super::authorize::{ServiceAccountRef, authorize, default_node_proxies};
use super::csr::{CsrError, parse_csr};
use super::metrics::CaMetrics;
use crate::mesh::Mesh;
use crate::model::Identity;
use crate::xds::auth::{AuthError, Authenticator, Caller, bearer_token};
use crate::xds::proto::ca::istio_certificate_service_server::{IstioCertificateService, IstioCertificateServiceServer};
use crate::xds::proto::ca::{IstioCertificateRequest, IstioCertificateResponse};
use crate::xds::proto::google::protobuf::Struct;
use crate::xds::proto::google::protobuf::value::Kind;

pub use crate::xds::proto::IMPERSONATED_IDENTITY;

/// Default lifetime of workload certificates (Istio's).
pub const DEFAULT_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default longest lifetime a requester may ask for.
pub const DEFAULT_MAX_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// What the CA grants: trust domain, trusted node proxies, certificate lifetimes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuancePolicy {
    pub trust_domain: String,
    /// Service accounts allowed to ask on behalf of pods on their node.
    pub node_proxies: Vec<ServiceAccountRef>,
    /// Lifetime when the request does not ask for one.
    pub default_ttl: Duration,
    /// Longest lifetime granted.
    pub max_ttl: Duration,
}

impl IssuancePolicy {
    /// Defaults: ztunnel in `istio-system` and `root_namespace` trusted, 24h certificates, at
    /// most 90 days.
    pub fn new(trust_domain: impl Into<String>, root_namespace: &str) -> Self {
        IssuancePolicy {
            trust_domain: trust_domain.into(),
            node_proxies: default_node_proxies(root_namespace),
            default_ttl: DEFAULT_CERT_TTL,
            max_ttl: DEFAULT_MAX_CERT_TTL,
        }
    }

    /// The lifetime to grant for a request asking for `requested_seconds` (0 or less: none).
    pub fn ttl(&self, requested_seconds: i64) -> Duration {
        let wanted =
            if requested_seconds > 0 { Duration::from_secs(requested_seconds as u64) } else { self.default_ttl };
        wanted.min(self.max_ttl)
    }
}

/// The certificate service.
pub struct CaService {
    ca: Arc<CertificateAuthority>,
    authenticator: Arc<dyn Authenticator>,
    mesh: Mesh,
    policy: IssuancePolicy,
    metrics: CaMetrics,
}

impl CaService {
    pub fn new(
        ca: Arc<CertificateAuthority>,
        authenticator: Arc<dyn Authenticator>,
        mesh: Mesh,
        policy: IssuancePolicy,
        metrics: CaMetrics,
    ) -> Self {
        CaService { ca, authenticator, mesh, policy, metrics }
    }

    /// The tonic service, ready for `Server::add_service`.
    pub fn into_server(self) -> IstioCertificateServiceServer<Self> {
        IstioCertificateServiceServer::new(self)
    }

    fn refuse(&self, reason: &'static str, status: Status) -> Status {
        self.metrics.record_refused(reason);
        status
    }

    async fn caller(&self, request: &Request<IstioCertificateRequest>) -> Result<Caller, Status> {
        let result = match bearer_token(request.metadata()) {
            Ok(token) => self.authenticator.authenticate(token).await,
            Err(e) => Err(e),
        };
        result.map_err(|error| {
            let reason =
                if matches!(error, AuthError::Unavailable(_)) { "auth_unavailable" } else { "unauthenticated" };
            warn!(%error, "certificate request not authenticated");
            self.refuse(reason, error.into())
        })
    }

    fn issue(&self, caller: &Caller, request: &IstioCertificateRequest) -> Result<Vec<String>, Status> {
        let invalid = |message: String| {
            warn!(%caller, %message, "invalid certificate request");
            self.refuse("invalid_request", Status::invalid_argument(message))
        };
        let csr = parse_csr(&request.csr).map_err(|e| invalid(e.to_string()))?;
        let requested = match impersonated_identity(request.metadata.as_ref()) {
            Some(Ok(identity)) => identity,
            Some(Err(message)) => return Err(invalid(message)),
            None => csr.identity().map_err(|e| invalid(e.to_string()))?,
        };
        csr.check_for(&requested).map_err(|e: CsrError| invalid(e.to_string()))?;

        let policy = &self.policy;
        let decision =
            self.mesh.read(|index| authorize(caller, &requested, &policy.trust_domain, &policy.node_proxies, index));
        let grant = decision.map_err(|refusal| {
            warn!(%caller, %requested, %refusal, "certificate refused");
            self.refuse(refusal.reason(), Status::permission_denied(refusal.to_string()))
        })?;

        let ttl = policy.ttl(request.validity_duration);
        let chain = self.ca.issue(&csr.spki, &requested, ttl).map_err(|error| {
            warn!(%caller, %requested, %error, "cannot sign certificate");
            let status = match error {
                super::CaError::UnsupportedKey(_) => Status::invalid_argument(error.to_string()),
                _ => Status::internal(format!("cannot sign the certificate: {error}")),
            };
            self.refuse("signing_failed", status)
        })?;
        self.metrics.record_issued(grant.kind());
        info!(%caller, %requested, grant = grant.kind(), ttl_seconds = ttl.as_secs(), "certificate issued");
        Ok(chain)
    }
}

/// The `ImpersonatedIdentity` of request metadata: absent, a valid identity, or an error.
fn impersonated_identity(metadata: Option<&Struct>) -> Option<Result<Identity, String>> {
    let value = metadata?.fields.get(IMPERSONATED_IDENTITY)?;
    Some(match &value.kind {
        Some(Kind::StringValue(s)) => {
            s.parse().map_err(|e| format!("metadata {IMPERSONATED_IDENTITY} is not a SPIFFE identity: {e}"))
        }
        _ => Err(format!("metadata {IMPERSONATED_IDENTITY} must be a string")),
    })
}

#[tonic::async_trait]
impl IstioCertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let caller = self.caller(&request).await?;
        let cert_chain = self.issue(&caller, request.get_ref())?;
        Ok(Response::new(IstioCertificateResponse { cert_chain }))
    }
}
