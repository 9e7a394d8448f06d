//! PeerAuthentication → what ztunnel enforces for it, following Istio's ambient conversion.
//!
//! ztunnel has no mTLS mode setting: STRICT is expressed as a DENY Authorization that matches
//! connections without a peer identity (plaintext). So:
//! - one static policy, [`STATIC_STRICT_POLICY`] in the root namespace, denies plaintext; every
//!   workload whose effective mode is STRICT lists it;
//! - the effective mode of a workload comes from the oldest mesh-wide policy (root namespace,
//!   no selector), overridden by the oldest namespace-wide one, overridden by the oldest
//!   workload one (a selector, outside the root namespace); UNSET inherits;
//! - a workload policy with `portLevelMtls` that differs from its effective mode becomes its own
//!   DENY Authorization, `converted_peer_authentication_<name>`, listed by the workloads it
//!   selects instead of the static one.
//!
//! "Oldest" is by `creationTimestamp`, then by name when timestamps are equal or absent.

use std::sync::Arc;

use super::TranslateConfig;
use crate::mesh::{MeshIndex, MeshPolicy, PolicyScope, PolicySpec};
use crate::model::security::{MtlsMode, PeerAuthenticationSpec};
use crate::xds::Resource;
use crate::xds::proto::AUTHORIZATION_TYPE;
use crate::xds::proto::google::protobuf::Empty;
use crate::xds::proto::security::{
    Action, Authorization, Clause, Match, Rule, Scope, StringMatch, string_match::MatchType,
};

/// Name of the static policy that rejects plaintext (underscores: never a Kubernetes name).
pub const STATIC_STRICT_POLICY: &str = "istio_converted_static_strict";
/// Prefix of converted port-level policies (underscores: never a Kubernetes name).
const CONVERTED_PREFIX: &str = "converted_peer_authentication_";

/// Resource name of the Authorization a PeerAuthentication may become.
pub fn resource_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{CONVERTED_PREFIX}{name}")
}

/// A match for connections without a peer identity.
fn plaintext() -> Match {
    Match {
        not_principals: vec![StringMatch { match_type: Some(MatchType::Presence(Empty {})) }],
        ..Default::default()
    }
}

fn rule(m: Match) -> Rule {
    Rule { clauses: vec![Clause { matches: vec![m] }] }
}

/// The static STRICT policy, always served.
pub fn static_strict(root_namespace: &str) -> Resource {
    let message = Authorization {
        name: STATIC_STRICT_POLICY.to_string(),
        namespace: root_namespace.to_string(),
        scope: Scope::WorkloadSelector as i32,
        action: Action::Deny as i32,
        rules: vec![rule(plaintext())],
        ..Default::default()
    };
    Resource::new(AUTHORIZATION_TYPE, format!("{root_namespace}/{STATIC_STRICT_POLICY}"), &message)
}

fn pa_spec(policy: &MeshPolicy) -> Option<&PeerAuthenticationSpec> {
    match &policy.spec {
        PolicySpec::PeerAuthentication(spec) => Some(spec),
        PolicySpec::Authorization(_) => None,
    }
}

fn mode(spec: &PeerAuthenticationSpec) -> MtlsMode {
    spec.mtls.as_ref().map_or(MtlsMode::Unset, |m| m.mode)
}

/// The oldest of `policies` (creation time, then name).
fn oldest<'a>(policies: impl Iterator<Item = &'a MeshPolicy>) -> Option<&'a MeshPolicy> {
    policies.min_by(|a, b| {
        let created = |p: &MeshPolicy| (p.created.is_none(), p.created);
        created(a).cmp(&created(b)).then_with(|| a.key.name.cmp(&b.key.name))
    })
}

/// The policies in force at each level for one workload.
struct Levels<'a> {
    mesh: Option<&'a MeshPolicy>,
    namespace: Option<&'a MeshPolicy>,
    workload: Option<&'a MeshPolicy>,
}

impl<'a> Levels<'a> {
    /// Sorts the PeerAuthentications that apply to one workload into levels.
    fn of(policies: &'a [&'a Arc<MeshPolicy>]) -> Self {
        let pick = |f: fn(&PolicyScope) -> bool| {
            oldest(policies.iter().map(|p| p.as_ref()).filter(|p| pa_spec(p).is_some() && f(&p.scope)))
        };
        Levels {
            mesh: pick(|s| matches!(s, PolicyScope::Mesh)),
            namespace: pick(|s| matches!(s, PolicyScope::Namespace)),
            // Istio ignores selector policies in the root namespace.
            workload: pick(|s| matches!(s, PolicyScope::NamespaceSelector(_))),
        }
    }

    fn mode(policy: Option<&MeshPolicy>) -> MtlsMode {
        policy.and_then(pa_spec).map_or(MtlsMode::Unset, mode)
    }

    /// STRICT inherited from the namespace or, failing that, the mesh.
    fn parent_strict(&self) -> bool {
        match Self::mode(self.namespace) {
            MtlsMode::Unset => Self::mode(self.mesh) == MtlsMode::Strict,
            ns => ns == MtlsMode::Strict,
        }
    }
}

/// The Authorization names a workload lists for the PeerAuthentications applying to it.
pub fn workload_references(root_namespace: &str, policies: &[&Arc<MeshPolicy>]) -> Vec<String> {
    let levels = Levels::of(policies);
    let mut strict = levels.parent_strict();
    let mut converted = None;
    if let Some(workload) = levels.workload {
        let spec = pa_spec(workload).expect("levels hold PeerAuthentications");
        let own = mode(spec);
        match own {
            MtlsMode::Strict => strict = true,
            MtlsMode::Permissive | MtlsMode::Disable => strict = false,
            MtlsMode::Unset => {}
        }
        let port_modes = || spec.port_level_mtls.values().map(|m| m.mode);
        let differs = match own {
            MtlsMode::Strict => port_modes().any(|m| matches!(m, MtlsMode::Permissive | MtlsMode::Disable)),
            MtlsMode::Permissive | MtlsMode::Disable => port_modes().any(|m| m == MtlsMode::Strict),
            MtlsMode::Unset if strict => port_modes().any(|m| m == MtlsMode::Permissive),
            MtlsMode::Unset => port_modes().any(|m| m == MtlsMode::Strict),
        };
        if differs {
            converted = Some(resource_name(&workload.key.namespace, &workload.key.name));
            // The converted policy carries the workload's STRICT default itself.
            strict = false;
        }
    }
    let mut names: Vec<String> = converted.into_iter().collect();
    if strict {
        names.push(format!("{root_namespace}/{STATIC_STRICT_POLICY}"));
    }
    names
}

/// The port-level Authorization of a workload PeerAuthentication, if it needs one.
pub fn convert(policy: &MeshPolicy, config: &TranslateConfig, index: &MeshIndex) -> Option<Authorization> {
    let spec = pa_spec(policy)?;
    if !matches!(policy.scope, PolicyScope::NamespaceSelector(_)) || spec.port_level_mtls.is_empty() {
        return None;
    }
    let in_namespace = |namespace: &str, scope: fn(&PolicyScope) -> bool| {
        oldest(
            index
                .policies()
                .map(|p| p.as_ref())
                .filter(|p| p.key.namespace == namespace && pa_spec(p).is_some() && scope(&p.scope)),
        )
    };
    let levels = Levels {
        mesh: in_namespace(&config.root_namespace, |s| matches!(s, PolicyScope::Mesh)),
        namespace: in_namespace(&policy.key.namespace, |s| matches!(s, PolicyScope::Namespace)),
        workload: Some(policy),
    };
    let own = mode(spec);
    let parent_strict = levels.parent_strict();
    let mut rules = Vec::new();
    if own == MtlsMode::Strict {
        rules.push(rule(plaintext()));
    }
    let mut strict_ports = Vec::new();
    let mut found_non_strict = false;
    for (port, port_mtls) in &spec.port_level_mtls {
        let Ok(port) = port.parse::<u16>() else { continue };
        match port_mtls.mode {
            MtlsMode::Strict => {
                // Already enforced by the policy's own or inherited STRICT.
                if own == MtlsMode::Strict || (own == MtlsMode::Unset && parent_strict) {
                    continue;
                }
                strict_ports.push(port);
            }
            MtlsMode::Permissive | MtlsMode::Disable => {
                let effective_strict = own == MtlsMode::Strict || (own == MtlsMode::Unset && parent_strict);
                if !effective_strict {
                    continue;
                }
                found_non_strict = true;
                // Deny unless the connection is to this port (plaintext rule above/below).
                rules.push(rule(Match { not_destination_ports: vec![port.into()], ..Default::default() }));
            }
            MtlsMode::Unset => {}
        }
    }
    if own == MtlsMode::Strict && !found_non_strict {
        // Plain STRICT: the static policy covers it.
        return None;
    }
    if own != MtlsMode::Strict && found_non_strict && parent_strict {
        // Inherited STRICT merged in, so the static policy need not be listed too.
        rules.push(rule(plaintext()));
    }
    // Rules here all must hold (one rule, several clauses) for the exempt-port form; the
    // strict-port form needs one rule per port (any may match).
    let mut out: Vec<Rule> = Vec::new();
    if !rules.is_empty() {
        out.push(Rule { clauses: rules.into_iter().flat_map(|r| r.clauses).collect() });
    }
    out.extend(
        strict_ports.into_iter().map(|port| rule(Match { destination_ports: vec![port.into()], ..plaintext() })),
    );
    if out.is_empty() {
        return None;
    }
    Some(Authorization {
        name: format!("{CONVERTED_PREFIX}{}", policy.key.name),
        namespace: policy.key.namespace.clone(),
        scope: Scope::WorkloadSelector as i32,
        action: Action::Deny as i32,
        rules: out,
        ..Default::default()
    })
}
