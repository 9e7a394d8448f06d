//! [`Authenticator`](crate::xds::auth::Authenticator)s for the control plane's clients (the
//! xDS server and the CA share them):
//! - files mode: [`TokensAuthenticator`], static tokens from a file (format in [`tokens`]);
//! - kube mode: [`TokenReviewAuthenticator`], Kubernetes TokenReview of service account tokens.

pub mod kube;
pub mod tokens;

#[cfg(test)]
mod tests;

pub use self::kube::{ISTIO_CA_AUDIENCE, TokenReviewAuthenticator, caller_from_review};
pub use self::tokens::{TokenTable, TokensAuthenticator, TokensError};
