//! AuthorizationPolicy → `istio.security.Authorization`, as ztunnel enforces it at L4.
//!
//! The rule for what ztunnel cannot see (HTTP attributes: hosts, methods, paths, request
//! principals, remote IPs, and `when` keys other than the L4 ones), which is Istio's and always
//! fails closed:
//! - in an **ALLOW** policy a rule that uses any of them is dropped: it never matches, so it
//!   allows nothing (a policy left with no rules allows nothing, and, as any ALLOW policy does,
//!   denies what no other ALLOW policy allows);
//! - in a **DENY** policy those attributes are left out and the rest of the rule applies: it
//!   denies at least what was asked, possibly more.
//!
//! Not translated at all (ztunnel does not enforce them): policies attached by `targetRef(s)`
//! (their waypoint does), and actions AUDIT and CUSTOM.

use std::net::IpAddr;

use ipnet::IpNet;

use super::TranslateConfig;
use crate::mesh::{MeshPolicy, PolicyScope, PolicySpec};
use crate::model::security::{AuthorizationAction, Condition, Rule};
use crate::xds::proto::google::protobuf::Empty;
use crate::xds::proto::security::{
    Action, Address, Authorization, Clause, Match, Rule as XdsRule, Scope, ServiceAccountMatch, StringMatch,
    string_match::MatchType,
};

/// `when` keys ztunnel evaluates.
const L4_CONDITION_KEYS: &[&str] =
    &["source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"];

/// Rule attributes only a waypoint (L7) can evaluate; a rule using one is handled as the module
/// documentation says.
pub const L7_ONLY_ATTRIBUTES: &[&str] = &[
    "hosts",
    "notHosts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
    "requestPrincipals",
    "notRequestPrincipals",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
    "when (keys other than source.ip, source.namespace, source.principal, destination.ip, destination.port)",
];

pub fn resource_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Whether workloads must list the policy by name (it is bound by a selector).
pub fn is_selector_scoped(policy: &MeshPolicy) -> bool {
    matches!(policy.scope, PolicyScope::MeshSelector(_) | PolicyScope::NamespaceSelector(_))
}

/// The Authorization an AuthorizationPolicy becomes; `None` when ztunnel does not enforce it.
pub fn translate_authorization(policy: &MeshPolicy, config: &TranslateConfig) -> Option<Authorization> {
    let PolicySpec::Authorization(spec) = &policy.spec else { return None };
    let scope = match &policy.scope {
        PolicyScope::Targets(_) => return None,
        PolicyScope::MeshSelector(_) | PolicyScope::NamespaceSelector(_) => Scope::WorkloadSelector,
        PolicyScope::Mesh => Scope::Global,
        PolicyScope::Namespace if policy.key.namespace == config.root_namespace => Scope::Global,
        PolicyScope::Namespace => Scope::Namespace,
    };
    let action = match spec.action {
        AuthorizationAction::Allow => Action::Allow,
        AuthorizationAction::Deny => Action::Deny,
        AuthorizationAction::Audit | AuthorizationAction::Custom => return None,
    };
    let rules = spec.rules.iter().flatten().filter_map(|rule| translate_rule(rule, action, &policy.key.namespace));
    Some(Authorization {
        name: policy.key.name.clone(),
        namespace: policy.key.namespace.clone(),
        scope: scope as i32,
        action: action as i32,
        rules: rules.collect(),
        dry_run: policy.dry_run,
        extensions: Vec::new(),
    })
}

/// One policy rule: a clause for its `to`, one for its `from`, one per `when` (all must hold).
fn translate_rule(rule: &Rule, action: Action, namespace: &str) -> Option<XdsRule> {
    let mut uses_l7 = false;
    let mut clauses = Vec::new();
    if !rule.to.is_empty() {
        let matches = rule.to.iter().map(|to| {
            let op = &to.operation;
            uses_l7 |= [&op.hosts, &op.not_hosts, &op.methods, &op.not_methods, &op.paths, &op.not_paths]
                .iter()
                .any(|v| !v.is_empty());
            Match {
                destination_ports: ports(&op.ports),
                not_destination_ports: ports(&op.not_ports),
                ..Default::default()
            }
        });
        push_clause(&mut clauses, matches.collect());
    }
    if !rule.from.is_empty() {
        let matches = rule.from.iter().map(|from| {
            let s = &from.source;
            uses_l7 |= [&s.request_principals, &s.not_request_principals, &s.remote_ip_blocks, &s.not_remote_ip_blocks]
                .iter()
                .any(|v| !v.is_empty());
            Match {
                namespaces: string_matches(&s.namespaces),
                not_namespaces: string_matches(&s.not_namespaces),
                service_accounts: service_accounts(&s.service_accounts, namespace),
                not_service_accounts: service_accounts(&s.not_service_accounts, namespace),
                principals: string_matches(&s.principals),
                not_principals: string_matches(&s.not_principals),
                source_ips: cidrs(&s.ip_blocks),
                not_source_ips: cidrs(&s.not_ip_blocks),
                ..Default::default()
            }
        });
        push_clause(&mut clauses, matches.collect());
    }
    for condition in &rule.when {
        uses_l7 |= !L4_CONDITION_KEYS.contains(&condition.key.as_str());
        push_clause(&mut clauses, vec![condition_match(condition)]);
    }
    // See the module documentation: an ALLOW rule that needs L7 never matches at L4.
    (!(uses_l7 && action == Action::Allow)).then_some(XdsRule { clauses })
}

/// Adds a clause (any of `matches`), unless one of them is empty: an empty match stands for
/// "anything" (an empty source, or an L7-only operation or condition whose L7 part was
/// removed), so the clause would match anything and is left out. ztunnel treats an empty match
/// as matching nothing, so sending it would make a DENY rule never fire.
fn push_clause(clauses: &mut Vec<Clause>, matches: Vec<Match>) {
    if !matches.iter().any(|m| *m == Match::default()) {
        clauses.push(Clause { matches });
    }
}

/// A `when` condition on an L4 key; other keys yield an empty match (anything: the intended
/// effect in a DENY policy; in an ALLOW policy the whole rule is dropped).
fn condition_match(c: &Condition) -> Match {
    let mut m = Match::default();
    match c.key.as_str() {
        "source.namespace" => {
            (m.namespaces, m.not_namespaces) = (string_matches(&c.values), string_matches(&c.not_values))
        }
        "source.principal" => {
            (m.principals, m.not_principals) = (string_matches(&c.values), string_matches(&c.not_values))
        }
        "source.ip" => (m.source_ips, m.not_source_ips) = (cidrs(&c.values), cidrs(&c.not_values)),
        "destination.ip" => (m.destination_ips, m.not_destination_ips) = (cidrs(&c.values), cidrs(&c.not_values)),
        "destination.port" => {
            (m.destination_ports, m.not_destination_ports) = (ports(&c.values), ports(&c.not_values));
        }
        _ => {}
    }
    m
}

/// Istio's string match syntax: `*` any non-empty value, `*x` suffix, `x*` prefix, else exact.
fn string_matches(values: &[String]) -> Vec<StringMatch> {
    values
        .iter()
        .map(|v| {
            let match_type = if v == "*" {
                MatchType::Presence(Empty {})
            } else if let Some(suffix) = v.strip_prefix('*') {
                MatchType::Suffix(suffix.to_string())
            } else if let Some(prefix) = v.strip_suffix('*') {
                MatchType::Prefix(prefix.to_string())
            } else {
                MatchType::Exact(v.clone())
            };
            StringMatch { match_type: Some(match_type) }
        })
        .collect()
}

/// `<namespace>/<sa>`, or `<sa>` in the policy's own namespace.
fn service_accounts(values: &[String], namespace: &str) -> Vec<ServiceAccountMatch> {
    values
        .iter()
        .map(|v| match v.split_once('/') {
            Some((ns, sa)) => ServiceAccountMatch { namespace: ns.to_string(), service_account: sa.to_string() },
            None => ServiceAccountMatch { namespace: namespace.to_string(), service_account: v.clone() },
        })
        .collect()
}

/// Port strings; invalid ones (which validation reports) are skipped, as Istio does.
fn ports(values: &[String]) -> Vec<u32> {
    values.iter().filter_map(|p| p.parse::<u16>().ok()).map(u32::from).collect()
}

/// IPs and CIDRs; invalid ones (which validation reports) are skipped, as Istio does.
fn cidrs(values: &[String]) -> Vec<Address> {
    values
        .iter()
        .filter_map(|v| {
            let net: IpNet = match v.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => IpNet::from(v.parse::<IpAddr>().ok()?),
            };
            let address = match net.network() {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            Some(Address { address, length: net.prefix_len().into() })
        })
        .collect()
}
