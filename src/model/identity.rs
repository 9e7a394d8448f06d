//! SPIFFE workload identities: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid Istio SPIFFE identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity {0:?} does not start with spiffe://")]
    Scheme(String),
    #[error("identity {0:?} is not of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>")]
    Shape(String),
    #[error("identity {id:?}: invalid trust domain {domain:?} (lowercase letters, digits, '.', '-', '_')")]
    TrustDomain { id: String, domain: String },
    #[error("identity {id:?}: invalid {what} {value:?}")]
    Segment { id: String, what: &'static str, value: String },
}

/// An Istio workload identity, as carried in a certificate's URI SAN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl Identity {
    /// Builds an identity from parts, validating each.
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Result<Self, IdentityError> {
        format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}").parse()
    }

    /// The principal form used in AuthorizationPolicy (`<td>/ns/<ns>/sa/<sa>`, no scheme).
    pub fn principal(&self) -> String {
        format!("{}/ns/{}/sa/{}", self.trust_domain, self.namespace, self.service_account)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.principal())
    }
}

fn valid_trust_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
}

/// Path segments per the SPIFFE spec: letters, digits, '.', '-', '_', and not '.' or '..'.
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("spiffe://").ok_or_else(|| IdentityError::Scheme(s.to_string()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [domain, "ns", namespace, "sa", service_account] = parts.as_slice() else {
            return Err(IdentityError::Shape(s.to_string()));
        };
        if !valid_trust_domain(domain) {
            return Err(IdentityError::TrustDomain { id: s.to_string(), domain: domain.to_string() });
        }
        for (what, value) in [("namespace", namespace), ("service account", service_account)] {
            if !valid_segment(value) {
                return Err(IdentityError::Segment { id: s.to_string(), what, value: value.to_string() });
            }
        }
        Ok(Identity {
            trust_domain: domain.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let id: Identity = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage".parse().unwrap();
        assert_eq!(id.trust_domain, "cluster.local");
        assert_eq!(id.namespace, "default");
        assert_eq!(id.service_account, "bookinfo-productpage");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
        assert_eq!(id.principal(), "cluster.local/ns/default/sa/bookinfo-productpage");
        assert_eq!(Identity::new("cluster.local", "default", "bookinfo-productpage").unwrap(), id);
    }

    #[test]
    fn rejects_malformed_identities() {
        let cases = [
            ("http://cluster.local/ns/a/sa/b", "does not start with spiffe://"),
            ("spiffe://cluster.local/ns/a", "is not of the form"),
            ("spiffe://cluster.local/ns/a/sa/b/extra", "is not of the form"),
            ("spiffe://cluster.local/sa/a/ns/b", "is not of the form"),
            ("spiffe://Cluster.Local/ns/a/sa/b", "invalid trust domain"),
            ("spiffe:///ns/a/sa/b", "invalid trust domain"),
            ("spiffe://td/ns//sa/b", "invalid namespace"),
            ("spiffe://td/ns/a/sa/..", "invalid service account"),
            ("spiffe://td/ns/a/sa/b c", "invalid service account"),
        ];
        for (input, want) in cases {
            let err = input.parse::<Identity>().unwrap_err().to_string();
            assert!(err.contains(want), "{input}: got {err:?}, want {want:?}");
        }
    }
}
