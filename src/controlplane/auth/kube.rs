//! Kubernetes mode: bearer tokens are service account tokens, checked by the API server with a
//! TokenReview (`authentication.k8s.io/v1`) for the audience Istio's ztunnel asks for
//! (`istio-ca`). Bound tokens also name the pod (and, on recent clusters, its node).

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;

use crate::xds::auth::{AuthError, Authenticator, Caller};

/// The audience of the tokens node proxies present (Istio's).
pub const ISTIO_CA_AUDIENCE: &str = "istio-ca";
/// TokenReview `user.extra` keys of bound service account tokens.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
pub const NODE_NAME_EXTRA: &str = "authentication.kubernetes.io/node-name";

const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Checks tokens with the Kubernetes API server.
pub struct TokenReviewAuthenticator {
    api: Api<TokenReview>,
    audiences: Vec<String>,
}

impl TokenReviewAuthenticator {
    /// Reviews tokens for `audiences` (usually `[ISTIO_CA_AUDIENCE]`).
    pub fn new(client: kube::Client, audiences: Vec<String>) -> Self {
        TokenReviewAuthenticator { api: Api::all(client), audiences }
    }

    async fn review(&self, token: &str) -> Result<Caller, AuthError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..Default::default()
        };
        let reviewed = self
            .api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Unavailable(format!("TokenReview failed: {e}")))?;
        caller_from_review(&reviewed, &self.audiences)
    }
}

impl Authenticator for TokenReviewAuthenticator {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(self.review(token))
    }
}

fn first_extra(review: &TokenReview, key: &str) -> Option<String> {
    let user = review.status.as_ref()?.user.as_ref()?;
    user.extra.as_ref()?.get(key)?.first().filter(|v| !v.is_empty()).cloned()
}

/// The caller a reviewed token belongs to: an authenticated service account, for one of
/// `audiences` (when any are required).
pub fn caller_from_review(review: &TokenReview, audiences: &[String]) -> Result<Caller, AuthError> {
    let status = review.status.as_ref().ok_or_else(|| AuthError::Unavailable("TokenReview has no status".into()))?;
    if status.authenticated != Some(true) {
        let why = status.error.clone().filter(|e| !e.is_empty()).unwrap_or_else(|| "not authenticated".into());
        return Err(AuthError::Rejected(why));
    }
    if !audiences.is_empty()
        && let Some(granted) = &status.audiences
        && !granted.iter().any(|a| audiences.contains(a))
    {
        return Err(AuthError::Rejected(format!("token is not for audience {}", audiences.join(" or "))));
    }
    let username = status.user.as_ref().and_then(|u| u.username.as_deref()).unwrap_or_default();
    let (namespace, service_account) = username
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
        .ok_or_else(|| AuthError::Rejected(format!("user {username:?} is not a service account")))?;
    Ok(Caller {
        namespace: namespace.to_string(),
        service_account: service_account.to_string(),
        pod: first_extra(review, POD_NAME_EXTRA),
        node: first_extra(review, NODE_NAME_EXTRA),
    })
}
