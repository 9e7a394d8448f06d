//! `security.istio.io` resources: AuthorizationPolicy, PeerAuthentication, RequestAuthentication.
//!
//! Field names and meaning follow Istio's published schema; `v1` is served, `v1beta1` documents are
//! accepted by the decoder and read into the same types. Unknown fields are ignored.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::{Validate, Validator};

/// Selects workloads in the policy's namespace by their labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// Names a resource (Service, Gateway, ServiceEntry) a policy attaches to instead of a selector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationAction {
    #[default]
    Allow,
    Deny,
    Audit,
    Custom,
}

/// `security.istio.io/v1` AuthorizationPolicy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "security.istio.io", version = "v1", kind = "AuthorizationPolicy", namespaced)]
#[kube(derive = "PartialEq", derive = "Default")]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default)]
    pub action: AuthorizationAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
    /// `None` means the field was absent; `Some(vec![])` is an explicit empty list. For ALLOW the
    /// two differ: no `rules` field matches nothing, while `rules: [{}]` matches everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ExtensionProvider {
    pub name: String,
}

/// One rule: every present part (`from`, `to`, `when`) must match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RuleFrom {
    #[serde(default)]
    pub source: Source,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RuleTo {
    #[serde(default)]
    pub operation: Operation,
}

/// Who the request comes from. Fields are ANDed; values within a field are ORed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
}

/// What the request is for. Ports are strings in Istio's schema.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

impl Validate for AuthorizationPolicySpec {
    fn validate(&self, v: &mut Validator) {
        one_attachment(v, self.selector.is_some(), self.target_ref.is_some(), !self.target_refs.is_empty());
        if self.action == AuthorizationAction::Custom && self.provider.is_none() {
            v.error_at("provider", "action CUSTOM requires a provider");
        }
        if self.action != AuthorizationAction::Custom && self.provider.is_some() {
            v.error_at("provider", "provider is only allowed with action CUSTOM");
        }
        v.each("rules", self.rules.as_deref().unwrap_or_default(), |v, rule| {
            v.each("from", &rule.from, |v, from| {
                v.at("source", |v| from.source.validate(v));
            });
            v.each("to", &rule.to, |v, to| {
                v.at("operation", |v| to.operation.validate(v));
            });
            v.each("when", &rule.when, |v, cond| {
                if cond.key.is_empty() {
                    v.error_at("key", "condition key must not be empty");
                }
                if cond.values.is_empty() && cond.not_values.is_empty() {
                    v.error("condition needs values or notValues");
                }
            });
        });
    }
}

impl Validate for Source {
    fn validate(&self, v: &mut Validator) {
        v.ip_blocks("ipBlocks", &self.ip_blocks);
        v.ip_blocks("notIpBlocks", &self.not_ip_blocks);
        v.ip_blocks("remoteIpBlocks", &self.remote_ip_blocks);
        v.ip_blocks("notRemoteIpBlocks", &self.not_remote_ip_blocks);
        let empty = |s: &Vec<String>| s.iter().any(String::is_empty);
        for (name, values) in [
            ("principals", &self.principals),
            ("notPrincipals", &self.not_principals),
            ("namespaces", &self.namespaces),
            ("notNamespaces", &self.not_namespaces),
        ] {
            if empty(values) {
                v.error_at(name, "empty string is not a valid value");
            }
        }
        if (!self.principals.is_empty() || !self.not_principals.is_empty())
            && (!self.service_accounts.is_empty() || !self.not_service_accounts.is_empty())
        {
            v.error("principals and serviceAccounts cannot be set together");
        }
    }
}

impl Validate for Operation {
    fn validate(&self, v: &mut Validator) {
        v.port_strings("ports", &self.ports);
        v.port_strings("notPorts", &self.not_ports);
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    #[default]
    Unset,
    Disable,
    Permissive,
    Strict,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MutualTls {
    #[serde(default)]
    pub mode: MtlsMode,
}

/// `security.istio.io/v1` PeerAuthentication.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "security.istio.io", version = "v1", kind = "PeerAuthentication", namespaced)]
#[kube(derive = "PartialEq", derive = "Default")]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Keyed by port number (a string key in YAML, as in Istio's schema).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<String, MutualTls>,
}

impl Validate for PeerAuthenticationSpec {
    fn validate(&self, v: &mut Validator) {
        v.at("portLevelMtls", |v| {
            for port in self.port_level_mtls.keys() {
                match port.parse::<i64>() {
                    Ok(n) => v.port(port, n),
                    Err(_) => v.error_at(port, format!("{port:?} is not a port number")),
                }
            }
        });
        if !self.port_level_mtls.is_empty() && self.selector.is_none() {
            v.error_at("portLevelMtls", "portLevelMtls requires a workload selector");
        }
    }
}

/// `security.istio.io/v1` RequestAuthentication.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "security.istio.io", version = "v1", kind = "RequestAuthentication", namespaced)]
#[kube(derive = "PartialEq", derive = "Default")]
#[serde(rename_all = "camelCase")]
pub struct RequestAuthenticationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtRule {
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub forward_original_token: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct JwtHeader {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

impl Validate for RequestAuthenticationSpec {
    fn validate(&self, v: &mut Validator) {
        one_attachment(v, self.selector.is_some(), self.target_ref.is_some(), !self.target_refs.is_empty());
        v.each("jwtRules", &self.jwt_rules, |v, rule| {
            if rule.issuer.is_empty() {
                v.error_at("issuer", "issuer must not be empty");
            }
            if rule.jwks.is_some() && rule.jwks_uri.is_some() {
                v.error("only one of jwks and jwksUri may be set");
            }
            if let Some(uri) = &rule.jwks_uri
                && !(uri.starts_with("https://") || uri.starts_with("http://"))
            {
                v.error_at("jwksUri", format!("{uri:?} is not an http(s) URL"));
            }
        });
    }
}

/// A policy attaches by at most one of `selector`, `targetRef` and `targetRefs`.
fn one_attachment(v: &mut Validator, selector: bool, target_ref: bool, target_refs: bool) {
    if [selector, target_ref, target_refs].into_iter().filter(|set| *set).count() > 1 {
        v.error("only one of selector, targetRef and targetRefs may be set");
    }
}
