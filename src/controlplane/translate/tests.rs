//! Translation tests: YAML in, decoded xDS messages out, checked field by field against Istio's
//! semantics.

use prost::Message;

use super::{TranslateConfig, Translator};
use crate::config::yaml::{DecodeOptions, decode_stream};
use crate::config::{Store, Write};
use crate::mesh::{MeshConfig, MeshIndex};
use crate::xds::proto::security::{Action, Authorization, Scope, string_match::MatchType};
use crate::xds::proto::workload::{Address, Service, TunnelProtocol, Workload, WorkloadStatus, address};
use crate::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};
use crate::xds::{Resource, ResourceUpdate};

struct Fixture {
    store: Store,
    index: MeshIndex,
    translator: Translator,
}

fn objects(yaml: &str) -> Vec<Write> {
    decode_stream("test.yaml", yaml, &DecodeOptions::default())
        .into_iter()
        .map(|d| {
            assert!(d.diagnostics.is_empty(), "fixture has problems: {:?}", d.diagnostics);
            Write::Put(d.resource.expect("fixture decodes"))
        })
        .collect()
}

impl Fixture {
    fn new(yaml: &str) -> Self {
        let store = Store::new();
        store.apply(objects(yaml));
        let mut index = MeshIndex::new(MeshConfig::default());
        index.reset(&store.snapshot());
        Fixture { store, index, translator: Translator::new(TranslateConfig::default()) }
    }

    fn full(&self) -> ResourceUpdate {
        self.translator.full(&self.index)
    }

    /// Applies `yaml` as one change and returns the translated update.
    fn change(&mut self, writes: Vec<Write>) -> ResourceUpdate {
        let changes = self.store.apply(writes).expect("the change changes something");
        let events = self.index.apply(&changes);
        self.translator.changes(&self.index, &events)
    }
}

fn find<'a>(update: &'a ResourceUpdate, type_url: &str, name: &str) -> &'a Resource {
    let found = update.upserts.iter().find(|r| r.type_url == type_url && r.name == name);
    found.unwrap_or_else(|| panic!("no {type_url} {name} in {:?}", names(update)))
}

fn names(update: &ResourceUpdate) -> Vec<String> {
    update.upserts.iter().map(|r| r.name.clone()).collect()
}

fn workload(update: &ResourceUpdate, name: &str) -> Workload {
    let resource = find(update, ADDRESS_TYPE, name);
    match Address::decode(resource.body.clone()).unwrap().r#type {
        Some(address::Type::Workload(w)) => w,
        other => panic!("{name} is not a workload: {other:?}"),
    }
}

fn service(update: &ResourceUpdate, name: &str) -> Service {
    let resource = find(update, ADDRESS_TYPE, name);
    match Address::decode(resource.body.clone()).unwrap().r#type {
        Some(address::Type::Service(s)) => s,
        other => panic!("{name} is not a service: {other:?}"),
    }
}

fn authorization(update: &ResourceUpdate, name: &str) -> Authorization {
    Authorization::decode(find(update, AUTHORIZATION_TYPE, name).body.clone()).unwrap()
}

const MESH: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v2}}
spec:
  serviceAccountName: web
  nodeName: node-a
  containers: [{name: web, image: web, ports: [{name: http, containerPort: 8080}]}]
status: {podIP: 10.0.0.5, podIPs: [{ip: 10.0.0.5}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: legacy, labels: {app: db}}
spec:
  nodeName: node-b
  containers: [{name: db, image: db}]
status:
  podIP: 10.0.1.7
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}, {name: admin, port: 9000, targetPort: 9001}, {name: dns, port: 53, protocol: UDP}]
"#;

#[test]
fn pods_become_workloads_with_istio_names_and_fields() {
    let f = Fixture::new(MESH);
    let full = f.full();
    assert!(full.full);
    let web = workload(&full, "Kubernetes//Pod/shop/web-1");
    assert_eq!(web.name, "web-1");
    assert_eq!(web.namespace, "shop");
    assert_eq!(web.addresses, vec![vec![10, 0, 0, 5]]);
    assert_eq!(web.tunnel_protocol, TunnelProtocol::Hbone as i32);
    assert_eq!(web.trust_domain, "cluster.local");
    assert_eq!(web.service_account, "web");
    assert_eq!(web.node, "node-a");
    assert_eq!(web.canonical_name, "web");
    assert_eq!(web.canonical_revision, "v2");
    assert_eq!(web.status, WorkloadStatus::Healthy as i32);
    assert_eq!(web.cluster_id, "Kubernetes");
    let ports = &web.services["shop/web.shop.svc.cluster.local"].ports;
    let pairs: Vec<(u32, u32)> = ports.iter().map(|p| (p.service_port, p.target_port)).collect();
    assert_eq!(pairs, vec![(80, 8080), (9000, 9001)], "named target resolved per pod, UDP left out");
    let resource = find(&full, ADDRESS_TYPE, "Kubernetes//Pod/shop/web-1");
    assert_eq!(resource.aliases, vec!["/10.0.0.5"]);

    let db = workload(&full, "Kubernetes//Pod/legacy/db-1");
    assert_eq!(db.tunnel_protocol, TunnelProtocol::None as i32, "not enrolled: plain TCP");
    assert_eq!(db.service_account, "default");
    assert_eq!(db.status, WorkloadStatus::Unhealthy as i32, "Ready=False");
}

#[test]
fn services_carry_vips_ports_and_hostname() {
    let f = Fixture::new(MESH);
    let full = f.full();
    let web = service(&full, "shop/web.shop.svc.cluster.local");
    assert_eq!(web.name, "web");
    assert_eq!(web.hostname, "web.shop.svc.cluster.local");
    assert_eq!(web.addresses.len(), 1);
    assert_eq!(web.addresses[0].address, vec![10, 96, 0, 10]);
    let ports: Vec<(u32, u32)> = web.ports.iter().map(|p| (p.service_port, p.target_port)).collect();
    assert_eq!(ports, vec![(80, 0), (9000, 9001)], "named target is 0, resolved per workload");
    assert_eq!(find(&full, ADDRESS_TYPE, "shop/web.shop.svc.cluster.local").aliases, vec!["/10.96.0.10"]);
}

#[test]
fn waypoints_are_hbone_gateway_addresses() {
    let f = Fixture::new(&format!(
        "{MESH}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: shop, labels: {{istio.io/dataplane-mode: ambient, istio.io/use-waypoint: wp}}}}\n"
    ));
    let full = f.full();
    for waypoint in [
        workload(&full, "Kubernetes//Pod/shop/web-1").waypoint,
        service(&full, "shop/web.shop.svc.cluster.local").waypoint,
    ] {
        let waypoint = waypoint.expect("waypoint set");
        assert_eq!(waypoint.hbone_mtls_port, 15008);
        match waypoint.destination {
            Some(crate::xds::proto::workload::gateway_address::Destination::Hostname(h)) => {
                assert_eq!((h.namespace.as_str(), h.hostname.as_str()), ("shop", "wp.shop.svc.cluster.local"));
            }
            other => panic!("unexpected waypoint destination {other:?}"),
        }
    }
}

const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: global-deny, namespace: istio-system}
spec:
  action: DENY
  rules: [{from: [{source: {notNamespaces: ["shop", "kube-*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-allow, namespace: shop, annotations: {istio.io/dry-run: "true"}}
spec:
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/*", "*"], serviceAccounts: []}}]
    to: [{operation: {ports: ["80", "8080"], notPorts: ["9000"]}}]
    when: [{key: source.ip, values: ["10.0.0.0/8"], notValues: ["10.0.0.9"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-only, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {serviceAccounts: ["client", "other/sa"], ipBlocks: ["192.168.0.0/16"], notIpBlocks: ["192.168.1.1"]}}]
  - to: [{operation: {methods: ["GET"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-l7, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin"], ports: ["8080"]}}]
    when: [{key: "request.headers[x-user]", values: ["bob"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: for-waypoint, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: web}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: shop}
spec: {action: AUDIT}
"#;

#[test]
fn authorization_scopes_actions_and_dry_run() {
    let f = Fixture::new(&format!("{MESH}---{POLICIES}"));
    let full = f.full();
    let global = authorization(&full, "istio-system/global-deny");
    assert_eq!((global.scope, global.action), (Scope::Global as i32, Action::Deny as i32));
    let ns = authorization(&full, "shop/ns-allow");
    assert_eq!((ns.scope, ns.action, ns.dry_run), (Scope::Namespace as i32, Action::Allow as i32, true));
    let selected = authorization(&full, "shop/web-only");
    assert_eq!(selected.scope, Scope::WorkloadSelector as i32);
    assert!(!names(&full).contains(&"shop/for-waypoint".to_string()), "targetRef policies are for waypoints");
    assert!(!names(&full).contains(&"shop/audit".to_string()), "AUDIT is not enforced by ztunnel");
    let web = workload(&full, "Kubernetes//Pod/shop/web-1");
    assert_eq!(web.authorization_policies, vec!["shop/deny-l7", "shop/web-only"], "only selector policies are listed");
}

#[test]
fn l4_matches_translate_like_istio() {
    let f = Fixture::new(&format!("{MESH}---{POLICIES}"));
    let full = f.full();
    let global = authorization(&full, "istio-system/global-deny");
    let not_ns: Vec<_> =
        global.rules[0].clauses[0].matches[0].not_namespaces.iter().map(|m| m.match_type.clone().unwrap()).collect();
    assert_eq!(not_ns, vec![MatchType::Exact("shop".into()), MatchType::Prefix("kube-".into())]);

    let ns = authorization(&full, "shop/ns-allow");
    let clauses = &ns.rules[0].clauses;
    assert_eq!(clauses.len(), 3, "to, from and one when: all must hold");
    assert_eq!(clauses[0].matches[0].destination_ports, vec![80, 8080]);
    assert_eq!(clauses[0].matches[0].not_destination_ports, vec![9000]);
    let principals: Vec<_> = clauses[1].matches[0].principals.iter().map(|m| m.match_type.clone().unwrap()).collect();
    assert!(matches!(&principals[0], MatchType::Prefix(p) if p == "cluster.local/ns/shop/sa/"));
    assert!(matches!(principals[1], MatchType::Presence(_)));
    let when = &clauses[2].matches[0];
    assert_eq!((when.source_ips[0].address.as_slice(), when.source_ips[0].length), (&[10, 0, 0, 0][..], 8));
    assert_eq!((when.not_source_ips[0].address.as_slice(), when.not_source_ips[0].length), (&[10, 0, 0, 9][..], 32));

    let selected = authorization(&full, "shop/web-only");
    assert_eq!(selected.rules.len(), 1, "the ALLOW rule using methods is dropped: it can never match at L4");
    let from = &selected.rules[0].clauses[0].matches[0];
    let accounts: Vec<_> =
        from.service_accounts.iter().map(|s| (s.namespace.as_str(), s.service_account.as_str())).collect();
    assert_eq!(accounts, vec![("shop", "client"), ("other", "sa")]);
    assert_eq!(from.source_ips[0].length, 16);
    assert_eq!(from.not_source_ips[0].length, 32);
}

#[test]
fn l7_attributes_fail_closed() {
    let allow_only_l7 = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: get-only, namespace: shop}
spec:
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
"#;
    let f = Fixture::new(&format!("{MESH}---{allow_only_l7}---{POLICIES}"));
    let full = f.full();
    let allow = authorization(&full, "shop/get-only");
    assert_eq!(allow.action, Action::Allow as i32);
    assert!(allow.rules.is_empty(), "an ALLOW policy whose rules all need L7 allows nothing");

    let deny = authorization(&full, "shop/deny-l7");
    assert_eq!(deny.rules.len(), 1, "the DENY rule is kept without its L7 parts");
    let clauses = &deny.rules[0].clauses;
    assert_eq!(clauses[0].matches[0].destination_ports, vec![8080], "paths dropped, port kept");
    assert_eq!(clauses.len(), 1, "the L7 condition is left out (it would match anything): a broader deny");
}

#[test]
fn empty_rules_follow_istio() {
    let yaml = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: shop}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: shop}
spec: {rules: [{}]}
"#;
    let f = Fixture::new(&format!("{MESH}---{yaml}"));
    let full = f.full();
    assert!(authorization(&full, "shop/allow-nothing").rules.is_empty());
    let all = authorization(&full, "shop/allow-all");
    assert_eq!(all.rules.len(), 1);
    assert!(all.rules[0].clauses.is_empty(), "a rule with no conditions matches every connection");
}

const STRICT_NAMESPACE: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {mtls: {mode: STRICT}}
"#;

#[test]
fn strict_peer_authentication_references_the_static_policy() {
    let f = Fixture::new(&format!("{MESH}---{STRICT_NAMESPACE}"));
    let full = f.full();
    let web = workload(&full, "Kubernetes//Pod/shop/web-1");
    assert_eq!(web.authorization_policies, vec!["istio-system/istio_converted_static_strict"]);
    let db = workload(&full, "Kubernetes//Pod/legacy/db-1");
    assert!(db.authorization_policies.is_empty(), "another namespace is not affected");
    let strict = authorization(&full, "istio-system/istio_converted_static_strict");
    assert_eq!((strict.action, strict.scope), (Action::Deny as i32, Scope::WorkloadSelector as i32));
    let m = &strict.rules[0].clauses[0].matches[0];
    assert!(
        matches!(m.not_principals[0].match_type, Some(MatchType::Presence(_))),
        "denies connections without identity"
    );
}

#[test]
fn port_level_exceptions_become_a_converted_policy() {
    let yaml = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web-ports, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  portLevelMtls: {"9090": {mode: PERMISSIVE}}
"#;
    let f = Fixture::new(&format!("{MESH}---{STRICT_NAMESPACE}---{yaml}"));
    let full = f.full();
    let web = workload(&full, "Kubernetes//Pod/shop/web-1");
    assert_eq!(web.authorization_policies, vec!["shop/converted_peer_authentication_web-ports"]);
    let converted = authorization(&full, "shop/converted_peer_authentication_web-ports");
    assert_eq!(converted.action, Action::Deny as i32);
    assert_eq!(converted.rules.len(), 1);
    let clauses = &converted.rules[0].clauses;
    assert_eq!(clauses.len(), 2, "deny when not port 9090 and plaintext");
    assert_eq!(clauses[0].matches[0].not_destination_ports, vec![9090]);
    assert!(!clauses[1].matches[0].not_principals.is_empty());
}

#[test]
fn changes_carry_upserts_and_removals() {
    let mut f = Fixture::new(&format!("{MESH}---{POLICIES}"));
    let delete_pod = objects("apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop}\n");
    let Write::Put(pod) = &delete_pod[0] else { unreachable!() };
    let update = f.change(vec![Write::Remove(pod.object_ref())]);
    assert!(!update.full);
    assert!(update.removals.contains(&(ADDRESS_TYPE, "Kubernetes//Pod/shop/web-1".to_string())));

    let Write::Put(policy) = &objects(POLICIES)[2] else { unreachable!() };
    let update = f.change(vec![Write::Remove(policy.object_ref())]);
    assert!(update.removals.contains(&(AUTHORIZATION_TYPE, "shop/web-only".to_string())));

    let update = f.change(objects(STRICT_NAMESPACE));
    let db = names(&update);
    assert!(!db.contains(&"Kubernetes//Pod/legacy/db-1".to_string()), "other namespaces untouched: {db:?}");
}

#[test]
fn full_and_incremental_agree() {
    let mut f = Fixture::new(MESH);
    let changes = [POLICIES, STRICT_NAMESPACE];
    let mut served: std::collections::BTreeMap<String, Resource> =
        f.full().upserts.into_iter().map(|r| (r.name.clone(), r)).collect();
    for yaml in changes {
        let update = f.change(objects(yaml));
        for (_, name) in update.removals {
            served.remove(&name);
        }
        for r in update.upserts {
            served.insert(r.name.clone(), r);
        }
    }
    let rebuilt: std::collections::BTreeMap<String, Resource> =
        f.full().upserts.into_iter().map(|r| (r.name.clone(), r)).collect();
    assert_eq!(served, rebuilt);
}
