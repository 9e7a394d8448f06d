//! L4 authorization, with the semantics of Istio's ztunnel (`istio.security.Authorization`):
//!
//! - the policies that apply to a destination workload are the GLOBAL ones, the NAMESPACE ones
//!   of its namespace, and the WORKLOAD_SELECTOR ones it lists (`namespace/name`);
//! - a matching DENY policy denies; then, if any ALLOW policy applies, one must match;
//!   otherwise the connection is allowed. Dry-run policies are evaluated and logged, never
//!   enforced;
//! - a policy matches if any rule does (no rules: never); a rule if all its clauses do; a
//!   clause if any of its matches does (a clause without matches: always; an empty match:
//!   never); a match if every non-empty positive field has a matching value and no `not_*`
//!   field does;
//! - principals are compared as `<trust-domain>/ns/<ns>/sa/<sa>`. Without a peer identity
//!   (plaintext) no identity field matches, positive or negative: so STRICT's DENY
//!   `not_principals: [presence]` matches exactly the plaintext connections.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;
use tracing::{debug, info};

use crate::model::Identity;
use crate::xds::proto::security as xds;
use crate::ztunnel::state::model::{InvalidField, invalid, ip_from_bytes, port};
use crate::ztunnel::state::{ProxyState, Workload};

#[cfg(test)]
mod tests;

/// What authorization sees of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionAttrs {
    /// The verified peer identity; `None` for plaintext.
    pub src_identity: Option<Identity>,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
}

/// The outcome for a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// `policy` is the `namespace/name` of the DENY policy that matched; when ALLOW policies
    /// apply and none matched, it lists those ALLOW policies, comma-separated.
    Deny {
        policy: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyScope {
    Global,
    Namespace,
    WorkloadSelector,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyAction {
    Allow,
    Deny,
}

/// An L4 authorization policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub name: String,
    pub namespace: String,
    pub scope: PolicyScope,
    pub action: PolicyAction,
    pub rules: Vec<Rule>,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub clauses: Vec<Clause>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Clause {
    pub matches: Vec<Match>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Any non-empty value.
    Presence,
}

impl StringMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(s) => value == s,
            StringMatch::Prefix(s) => value.starts_with(s.as_str()),
            StringMatch::Suffix(s) => value.ends_with(s.as_str()),
            StringMatch::Presence => !value.is_empty(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountMatch {
    pub namespace: String,
    pub service_account: String,
}

/// One match: every non-empty field must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<StringMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<StringMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccountMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<ServiceAccountMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<StringMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<StringMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<IpNet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_source_ips: Vec<IpNet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_ips: Vec<IpNet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_destination_ips: Vec<IpNet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_ports: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_destination_ports: Vec<u16>,
}

/// Positive values: none given, or one matches. Negative values: none matches.
fn field<T>(positive: &[T], negative: &[T], test: impl Fn(&T) -> bool) -> bool {
    (positive.is_empty() || positive.iter().any(&test)) && !negative.iter().any(&test)
}

impl Match {
    fn is_empty(&self) -> bool {
        *self == Match::default()
    }

    fn matches(&self, conn: &ConnectionAttrs, principal: Option<&str>) -> bool {
        let identity = conn.src_identity.as_ref();
        let (src, dst) = (conn.src_ip.to_canonical(), conn.dst_ip.to_canonical());
        field(&self.destination_ports, &self.not_destination_ports, |p| *p == conn.dst_port)
            && field(&self.destination_ips, &self.not_destination_ips, |net| net.contains(&dst))
            && field(&self.source_ips, &self.not_source_ips, |net| net.contains(&src))
            && field(&self.namespaces, &self.not_namespaces, |m| identity.is_some_and(|i| m.matches(&i.namespace)))
            && field(&self.principals, &self.not_principals, |m| principal.is_some_and(|p| m.matches(p)))
            && field(&self.service_accounts, &self.not_service_accounts, |m| {
                identity.is_some_and(|i| i.namespace == m.namespace && i.service_account == m.service_account)
            })
    }
}

impl Authorization {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn matches(&self, conn: &ConnectionAttrs) -> bool {
        let principal = conn.src_identity.as_ref().map(Identity::principal);
        self.rules.iter().any(|rule| {
            rule.clauses.iter().all(|clause| {
                clause.matches.is_empty()
                    || clause.matches.iter().any(|m| !m.is_empty() && m.matches(conn, principal.as_deref()))
            })
        })
    }
}

fn string_matches(field: &str, list: &[xds::StringMatch]) -> Result<Vec<StringMatch>, InvalidField> {
    use xds::string_match::MatchType;
    list.iter()
        .enumerate()
        .map(|(i, m)| match &m.match_type {
            Some(MatchType::Exact(s)) => Ok(StringMatch::Exact(s.clone())),
            Some(MatchType::Prefix(s)) => Ok(StringMatch::Prefix(s.clone())),
            Some(MatchType::Suffix(s)) => Ok(StringMatch::Suffix(s.clone())),
            Some(MatchType::Presence(_)) => Ok(StringMatch::Presence),
            None => Err(invalid(format!("{field}[{i}]"), "no match type (exact, prefix, suffix or presence)")),
        })
        .collect()
}

fn service_accounts(list: &[xds::ServiceAccountMatch]) -> Vec<ServiceAccountMatch> {
    list.iter()
        .map(|m| ServiceAccountMatch { namespace: m.namespace.clone(), service_account: m.service_account.clone() })
        .collect()
}

fn networks(field: &str, list: &[xds::Address]) -> Result<Vec<IpNet>, InvalidField> {
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let field = format!("{field}[{i}]");
            let ip = ip_from_bytes(&format!("{field}.address"), &a.address)?;
            let length = u8::try_from(a.length).ok();
            length.and_then(|l| IpNet::new(ip, l).ok()).ok_or_else(|| {
                invalid(format!("{field}.length"), format!("{} is not a prefix length for {ip}", a.length))
            })
        })
        .collect()
}

fn ports(field: &str, list: &[u32]) -> Result<Vec<u16>, InvalidField> {
    list.iter().enumerate().map(|(i, p)| port(&format!("{field}[{i}]"), *p)).collect()
}

impl TryFrom<&xds::Match> for Match {
    type Error = InvalidField;

    fn try_from(m: &xds::Match) -> Result<Self, InvalidField> {
        Ok(Match {
            namespaces: string_matches("namespaces", &m.namespaces)?,
            not_namespaces: string_matches("not_namespaces", &m.not_namespaces)?,
            service_accounts: service_accounts(&m.service_accounts),
            not_service_accounts: service_accounts(&m.not_service_accounts),
            principals: string_matches("principals", &m.principals)?,
            not_principals: string_matches("not_principals", &m.not_principals)?,
            source_ips: networks("source_ips", &m.source_ips)?,
            not_source_ips: networks("not_source_ips", &m.not_source_ips)?,
            destination_ips: networks("destination_ips", &m.destination_ips)?,
            not_destination_ips: networks("not_destination_ips", &m.not_destination_ips)?,
            destination_ports: ports("destination_ports", &m.destination_ports)?,
            not_destination_ports: ports("not_destination_ports", &m.not_destination_ports)?,
        })
    }
}

impl TryFrom<&xds::Authorization> for Authorization {
    type Error = InvalidField;

    fn try_from(a: &xds::Authorization) -> Result<Self, InvalidField> {
        let scope = match xds::Scope::try_from(a.scope) {
            Ok(xds::Scope::Global) => PolicyScope::Global,
            Ok(xds::Scope::Namespace) => PolicyScope::Namespace,
            Ok(xds::Scope::WorkloadSelector) => PolicyScope::WorkloadSelector,
            Err(_) => return Err(invalid("scope", format!("unknown value {}", a.scope))),
        };
        let action = match xds::Action::try_from(a.action) {
            Ok(xds::Action::Allow) => PolicyAction::Allow,
            Ok(xds::Action::Deny) => PolicyAction::Deny,
            Err(_) => return Err(invalid("action", format!("unknown value {}", a.action))),
        };
        let mut rules = Vec::with_capacity(a.rules.len());
        for (r, rule) in a.rules.iter().enumerate() {
            let mut clauses = Vec::with_capacity(rule.clauses.len());
            for (c, clause) in rule.clauses.iter().enumerate() {
                let matches = clause.matches.iter().enumerate().map(|(m, xm)| {
                    Match::try_from(xm)
                        .map_err(|e| invalid(format!("rules[{r}].clauses[{c}].matches[{m}].{}", e.field), e.problem))
                });
                clauses.push(Clause { matches: matches.collect::<Result<_, _>>()? });
            }
            rules.push(Rule { clauses });
        }
        Ok(Authorization {
            name: a.name.clone(),
            namespace: a.namespace.clone(),
            scope,
            action,
            rules,
            dry_run: a.dry_run,
        })
    }
}

/// Policies by resource name (`namespace/name`), with the GLOBAL and per-namespace sets.
#[derive(Debug, Default)]
pub(crate) struct PolicyStore {
    pub(crate) by_name: HashMap<String, Arc<Authorization>>,
    global: BTreeSet<String>,
    by_namespace: HashMap<String, BTreeSet<String>>,
}

impl PolicyStore {
    pub(crate) fn upsert(&mut self, name: &str, policy: Authorization) {
        self.remove(name);
        match policy.scope {
            PolicyScope::Global => {
                self.global.insert(name.to_string());
            }
            PolicyScope::Namespace => {
                self.by_namespace.entry(policy.namespace.clone()).or_default().insert(name.to_string());
            }
            PolicyScope::WorkloadSelector => {}
        }
        self.by_name.insert(name.to_string(), Arc::new(policy));
    }

    pub(crate) fn remove(&mut self, name: &str) {
        let Some(old) = self.by_name.remove(name) else { return };
        match old.scope {
            PolicyScope::Global => {
                self.global.remove(name);
            }
            PolicyScope::Namespace => {
                if let Some(set) = self.by_namespace.get_mut(&old.namespace) {
                    set.remove(name);
                    if set.is_empty() {
                        self.by_namespace.remove(&old.namespace);
                    }
                }
            }
            PolicyScope::WorkloadSelector => {}
        }
    }

    /// The policies applying to `dst` (a name listed twice is evaluated twice, harmlessly).
    fn applicable<'a>(&'a self, dst: &'a Workload) -> impl Iterator<Item = &'a Authorization> + Clone + 'a {
        let namespace = self.by_namespace.get(&dst.namespace).into_iter().flatten();
        self.global.iter().chain(namespace).chain(dst.authorization_policies.iter()).filter_map(|name| {
            let policy = self.by_name.get(name);
            if policy.is_none() {
                // Normal while a policy is being added or removed.
                debug!(policy = %name, workload = %dst.uid, "skipping a policy that is not known (yet)");
            }
            policy.map(|p| p.as_ref())
        })
    }

    pub(crate) fn decide(&self, dst: &Workload, conn: &ConnectionAttrs) -> Decision {
        let applicable = self.applicable(dst);
        let of = |action: PolicyAction, dry_run: bool| {
            applicable.clone().filter(move |p| p.action == action && p.dry_run == dry_run)
        };
        for policy in of(PolicyAction::Deny, true).filter(|p| p.matches(conn)) {
            info!(policy = %policy.key(), workload = %dst.uid, ?conn, "dry-run: DENY policy matches");
        }
        if let Some(policy) = of(PolicyAction::Deny, false).find(|p| p.matches(conn)) {
            return Decision::Deny { policy: policy.key() };
        }
        let mut dry_run_allow = of(PolicyAction::Allow, true).peekable();
        if dry_run_allow.peek().is_some() {
            match dry_run_allow.find(|p| p.matches(conn)) {
                Some(policy) => {
                    info!(policy = %policy.key(), workload = %dst.uid, ?conn, "dry-run: ALLOW policy matches")
                }
                None => info!(workload = %dst.uid, ?conn, "dry-run: no ALLOW policy matches"),
            }
        }
        let mut allow = of(PolicyAction::Allow, false).peekable();
        if allow.peek().is_none() || allow.clone().any(|p| p.matches(conn)) {
            return Decision::Allow;
        }
        Decision::Deny { policy: allow_keys(allow) }
    }
}

/// How many ALLOW policies a denial names: with thousands applicable, joining every key would
/// cost more than the decision itself (the access log says how many more there were).
const DENY_KEYS_SHOWN: usize = 3;

/// The keys of the ALLOW policies none of which matched, for the denial's `policy` field.
fn allow_keys<'a>(allow: impl Iterator<Item = &'a Authorization>) -> String {
    let mut shown = Vec::with_capacity(DENY_KEYS_SHOWN);
    let mut more = 0usize;
    for policy in allow {
        if shown.len() < DENY_KEYS_SHOWN {
            shown.push(policy.key());
        } else {
            more += 1;
        }
    }
    let mut keys = shown.join(",");
    if more > 0 {
        keys.push_str(&format!(" and {more} more"));
    }
    keys
}

impl ProxyState {
    /// Whether `conn` may reach `dst`, by the policies that apply to it.
    pub fn authorize(&self, dst: &Workload, conn: &ConnectionAttrs) -> Decision {
        self.with_policies(|policies| policies.decide(dst, conn))
    }
}
