//! Who is calling: the bearer token a gRPC client presents (xDS and CA alike), and the trait
//! that turns it into a verified [`Caller`]. Implementations live with the control plane
//! (Kubernetes TokenReview, a tokens file); the servers here only depend on this contract.

use futures::future::BoxFuture;
use tonic::metadata::MetadataMap;

/// An authenticated client: the service account its token belongs to and, when the token says,
/// the pod it was issued for and that pod's node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub namespace: String,
    pub service_account: String,
    /// Name of the pod the token is bound to, when known (Kubernetes bound tokens carry it).
    pub pod: Option<String>,
    /// Node the caller runs on, when known (from the tokens file, or the bound pod's node).
    pub node: Option<String>,
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service_account)?;
        if let Some(pod) = &self.pod {
            write!(f, " (pod {pod})")?;
        }
        if let Some(node) = &self.node {
            write!(f, " on node {node}")?;
        }
        Ok(())
    }
}

/// Why a caller was not authenticated. The message is safe to return to the client: it never
/// contains the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send the 'authorization: Bearer <token>' header")]
    MissingToken,
    #[error("the authorization header is not 'Bearer <token>'")]
    MalformedHeader,
    #[error("token rejected: {0}")]
    Rejected(String),
    #[error("cannot check the token right now: {0}")]
    Unavailable(String),
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unavailable(_) => tonic::Status::unavailable(error.to_string()),
            _ => tonic::Status::unauthenticated(error.to_string()),
        }
    }
}

/// Checks bearer tokens. Shared by the xDS server and the CA.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>>;
}

/// The bearer token of a request's metadata.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str, AuthError> {
    let value = metadata.get("authorization").ok_or(AuthError::MissingToken)?;
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::MalformedHeader)?;
    Ok(token)
}
