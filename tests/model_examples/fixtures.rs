//! Loading the fixtures; every fixture decodes, every kind is covered, and the decoded values,
//! kind by kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use ambient::config::files::FileLoader;
use ambient::config::yaml::{DecodeOptions, decode_document, split_documents};
use ambient::model::gateway::{HeaderMatchType, HttpMethod, PathMatchType};
use ambient::model::networking::{ServiceEntryLocation, ServiceEntryResolution};
use ambient::model::security::{AuthorizationAction, AuthorizationPolicySpec, MtlsMode, Rule};
use ambient::model::validate::parse_ip_block;
use ambient::model::{Kind, ObjectRef, Resource};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::{decode_all, decode_all_with, decode_one, labels, strings};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples")
}

/// One decoded fixture document.
pub struct Example {
    file: String,
    line: usize,
    api_version: String,
    text: String,
    pub resource: Resource,
}

#[derive(Default)]
pub struct Examples {
    /// Documents per fixture file.
    pub per_file: BTreeMap<String, usize>,
    objects: BTreeMap<ObjectRef, Example>,
    /// Every document that did not decode cleanly, described.
    failures: Vec<String>,
}

/// The `apiVersion:` value written in a document's text.
fn written_api_version(text: &str) -> String {
    text.lines().find_map(|l| l.strip_prefix("apiVersion:")).map(|v| v.trim().to_string()).unwrap_or_default()
}

fn load_examples() -> Examples {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Examples::default();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("fixture readable");
        let docs = split_documents(&text);
        out.per_file.insert(file.clone(), docs.len());
        for doc in &docs {
            let decoded = decode_document(&file, doc, &DecodeOptions::default());
            let resource = match (decoded.resource, decoded.diagnostics.is_empty()) {
                (Some(r), true) => r,
                (_, _) => {
                    let diags: Vec<String> = decoded.diagnostics.iter().map(ToString::to_string).collect();
                    out.failures.push(format!("{file}:{} did not decode cleanly: {diags:#?}", doc.start_line));
                    continue;
                }
            };
            let example = Example {
                file: file.clone(),
                line: doc.start_line,
                api_version: written_api_version(doc.text),
                text: doc.text.to_string(),
                resource,
            };
            let key = example.resource.object_ref();
            if let Some(first) = out.objects.get(&key) {
                out.failures
                    .push(format!("{key} defined twice: {}:{} and {file}:{}", first.file, first.line, doc.start_line));
            }
            out.objects.insert(key, example);
        }
    }
    out
}

pub static EXAMPLES: LazyLock<Examples> = LazyLock::new(load_examples);

pub fn example(kind: Kind, namespace: &str, name: &str) -> &'static Example {
    let key = ObjectRef::new(kind, namespace, name);
    EXAMPLES.objects.get(&key).unwrap_or_else(|| panic!("no fixture {key}; failures: {:#?}", EXAMPLES.failures))
}

/// The typed object of a fixture: `typed!(AuthorizationPolicy, "ns", "name")`.
macro_rules! typed {
    ($variant:ident, $ns:expr, $name:expr) => {
        match &example(Kind::$variant, $ns, $name).resource {
            Resource::$variant(o) => o,
            other => panic!("expected {}, got {:?}", stringify!($variant), other.kind()),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Every fixture decodes, and every kind is covered
// ---------------------------------------------------------------------------------------------

#[test]
fn every_fixture_document_decodes_without_diagnostics() {
    assert!(EXAMPLES.failures.is_empty(), "fixture problems:\n{}", EXAMPLES.failures.join("\n"));
    let documents: usize = EXAMPLES.per_file.values().sum();
    assert_eq!(documents, EXAMPLES.objects.len(), "every document yields exactly one object");
    assert!(documents >= 50, "expected a broad set of examples, found {documents}");
}

#[test]
fn the_file_loader_reads_all_fixtures_as_one_stream() {
    // All fixture files joined into one stream, as `ambient analyze -` would read them.
    let mut stream = String::new();
    for file in EXAMPLES.per_file.keys() {
        stream.push_str("---\n");
        stream.push_str(&std::fs::read_to_string(fixtures_dir().join(file)).unwrap());
    }
    let loader = FileLoader::from_text("<stdin>", stream, DecodeOptions::default());
    assert_eq!(loader.diagnostics(), vec![]);
    let objects = loader.objects();
    assert_eq!(objects.len(), EXAMPLES.objects.len());
    for (key, resource) in &objects {
        assert_eq!(resource, &EXAMPLES.objects[key].resource, "{key}");
    }
}

#[test]
fn fixtures_cover_every_kind_in_several_files_of_several_documents() {
    for kind in Kind::ALL {
        let n = EXAMPLES.objects.keys().filter(|k| k.kind == *kind).count();
        assert!(n >= 2, "{kind}: only {n} example(s)");
    }
    assert!(EXAMPLES.per_file.len() >= 5, "fixture files: {:?}", EXAMPLES.per_file);
    for (file, docs) in &EXAMPLES.per_file {
        assert!(*docs >= 3, "{file} has only {docs} document(s)");
    }
}

#[test]
fn fixture_documents_know_where_they_start() {
    // Each recorded start line is where the document's text starts in its file.
    for ex in EXAMPLES.objects.values() {
        let text = std::fs::read_to_string(fixtures_dir().join(&ex.file)).unwrap();
        let from_line: String = text.split_inclusive('\n').skip(ex.line - 1).collect();
        assert!(from_line.starts_with(&ex.text), "{}:{} does not start the document", ex.file, ex.line);
    }
}

#[test]
fn fixtures_survive_a_json_round_trip() {
    // What `to_json` writes (as the API server would return it) decodes back to the same object.
    for (key, ex) in &EXAMPLES.objects {
        let json = serde_json::to_string_pretty(&ex.resource.to_json()).unwrap();
        let decoded = decode_one(&json);
        assert!(decoded.diagnostics.is_empty(), "{key}: {:?}\n{json}", decoded.diagnostics);
        assert_eq!(decoded.resource.as_ref(), Some(&ex.resource), "{key} changed in a round trip:\n{json}");
        let written = &ex.resource.to_json()["apiVersion"];
        assert_eq!(written, &serde_json::json!(key.kind.api_version()), "{key} is written with the preferred version");
    }
}

// ---------------------------------------------------------------------------------------------
// Decoded values, kind by kind
// ---------------------------------------------------------------------------------------------

#[test]
fn authorization_policy_allow_nothing_and_allow_all() {
    // `spec: {}`: ALLOW with no rules field at all; matches nothing.
    let nothing = typed!(AuthorizationPolicy, "storefront", "allow-nothing");
    assert_eq!(nothing.spec, AuthorizationPolicySpec::default());
    assert_eq!(nothing.spec.action, AuthorizationAction::Allow);
    assert_eq!(nothing.spec.rules, None);

    // `rules: [{}]`: one empty rule; matches everything.
    let all = typed!(AuthorizationPolicy, "sandbox", "allow-everything");
    assert_eq!(all.spec.action, AuthorizationAction::Allow);
    assert_eq!(all.spec.rules, Some(vec![Rule::default()]));
    assert_ne!(nothing.spec, all.spec);
}

#[test]
fn authorization_policy_allow_with_sources_operations_and_conditions() {
    let ap = typed!(AuthorizationPolicy, "storefront", "catalog-access");
    assert_eq!(ap.metadata.labels.as_ref().unwrap()["team"], "catalog");
    let selector = ap.spec.selector.as_ref().expect("selector");
    assert_eq!(selector.match_labels, labels(&[("app", "catalog"), ("version", "v2")]));
    assert_eq!(ap.spec.action, AuthorizationAction::Allow);
    let rules = ap.spec.rules.as_ref().expect("rules");
    assert_eq!(rules.len(), 2);

    let reads = &rules[0];
    assert_eq!(reads.from.len(), 2, "two sources, ORed");
    assert_eq!(reads.from[0].source.principals, strings(&["cluster.local/ns/storefront/sa/web-frontend"]));
    assert!(reads.from[0].source.namespaces.is_empty());
    assert_eq!(reads.from[1].source.namespaces, strings(&["qa"]));
    assert_eq!(reads.to[0].operation.methods, strings(&["GET", "HEAD"]));
    assert_eq!(reads.to[0].operation.paths, strings(&["/items", "/items/*"]));
    assert!(reads.when.is_empty());

    let writes = &rules[1];
    assert_eq!(writes.from[0].source.request_principals, strings(&["https://login.shop.example/*"]));
    assert_eq!(writes.to[0].operation.ports, strings(&["8080"]));
    assert_eq!(writes.when.len(), 2);
    assert_eq!(writes.when[0].key, "request.auth.claims[iss]");
    assert_eq!(writes.when[0].values, strings(&["https://login.shop.example"]));
    assert_eq!(writes.when[1].key, "request.auth.claims[groups]");
    assert_eq!(writes.when[1].values, strings(&["catalog-editors", "catalog-admins"]));
    assert_eq!(writes.when[1].not_values, strings(&["suspended"]));
}

#[test]
fn authorization_policy_deny_with_negative_forms_and_ip_blocks() {
    let ap = typed!(AuthorizationPolicy, "storefront", "no-foreign-writes");
    assert_eq!(ap.spec.action, AuthorizationAction::Deny);
    assert!(ap.spec.selector.is_none());
    let rule = &ap.spec.rules.as_ref().unwrap()[0];
    let src = &rule.from[0].source;
    assert_eq!(src.not_namespaces, strings(&["storefront"]));
    assert_eq!(src.not_principals, strings(&["cluster.local/ns/batch/sa/nightly-reindex"]));
    assert_eq!(src.not_request_principals, strings(&["https://login.shop.example/service-*"]));
    let op = &rule.to[0].operation;
    assert_eq!(op.not_methods, strings(&["GET", "HEAD", "OPTIONS"]));
    assert_eq!(op.not_paths, strings(&["/healthz"]));
    assert_eq!(op.not_ports, strings(&["9090"]));
    assert!(op.methods.is_empty() && op.paths.is_empty() && op.ports.is_empty());

    let ap = typed!(AuthorizationPolicy, "istio-system", "block-abusive-clients");
    assert_eq!(ap.spec.action, AuthorizationAction::Deny);
    let rules = ap.spec.rules.as_ref().unwrap();
    assert_eq!(rules[0].from[0].source.ip_blocks, strings(&["203.0.113.0/24", "198.51.100.7"]));
    assert_eq!(rules[0].from[0].source.not_ip_blocks, strings(&["203.0.113.128/25"]));
    assert_eq!(rules[1].from[0].source.remote_ip_blocks, strings(&["192.0.2.0/24", "2001:db8:bad::/48"]));
    assert_eq!(rules[1].from[0].source.not_remote_ip_blocks, strings(&["192.0.2.10"]));
    // Every block in the fixture is one the mesh can use.
    for block in rules.iter().flat_map(|r| &r.from).flat_map(|f| {
        let s = &f.source;
        s.ip_blocks.iter().chain(&s.not_ip_blocks).chain(&s.remote_ip_blocks).chain(&s.not_remote_ip_blocks)
    }) {
        parse_ip_block(block).unwrap();
    }

    let ap = typed!(AuthorizationPolicy, "storefront", "search-callers");
    assert_eq!(ap.spec.action, AuthorizationAction::Allow, "ALLOW is the default action");
    let src = &ap.spec.rules.as_ref().unwrap()[0].from[0].source;
    assert_eq!(src.service_accounts, strings(&["storefront/web-frontend", "qa/load-tester"]));
    assert!(src.principals.is_empty());

    let ap = typed!(AuthorizationPolicy, "data", "orders-db-clients");
    let rule = &ap.spec.rules.as_ref().unwrap()[0];
    assert_eq!(rule.from[0].source.principals.len(), 2);
    assert_eq!(rule.to[0].operation.ports, strings(&["5432", "5433"]));
}

#[test]
fn authorization_policy_custom_audit_and_target_refs() {
    let ap = typed!(AuthorizationPolicy, "storefront", "admin-ext-authz");
    assert_eq!(ap.spec.action, AuthorizationAction::Custom);
    assert_eq!(ap.spec.provider.as_ref().map(|p| p.name.as_str()), Some("ext-authz-grpc"));
    let op = &ap.spec.rules.as_ref().unwrap()[0].to[0].operation;
    assert_eq!(op.hosts, strings(&["admin.shop.example"]));
    assert_eq!(op.paths, strings(&["/admin", "/admin/*"]));

    let ap = typed!(AuthorizationPolicy, "bookshop", "reviews-via-waypoint");
    assert!(ap.spec.selector.is_none() && ap.spec.target_ref.is_none());
    assert_eq!(ap.spec.target_refs.len(), 1);
    let target = &ap.spec.target_refs[0];
    assert_eq!(
        (target.group.as_str(), target.kind.as_str(), target.name.as_str()),
        ("gateway.networking.k8s.io", "Gateway", "waypoint")
    );
    assert_eq!(target.namespace, None);

    let ap = typed!(AuthorizationPolicy, "bookshop", "ratings-read-only");
    assert_eq!(ap.spec.action, AuthorizationAction::Deny);
    let target = &ap.spec.target_refs[0];
    assert_eq!((target.group.as_str(), target.kind.as_str(), target.name.as_str()), ("", "Service", "ratings"));

    // No namespace in the document: the loader's default applies.
    let ap = typed!(AuthorizationPolicy, "default", "audit-payments");
    assert_eq!(ap.spec.action, AuthorizationAction::Audit);
    assert_eq!(ap.metadata.namespace.as_deref(), Some("default"));
}

#[test]
fn peer_authentication_examples() {
    let mesh = typed!(PeerAuthentication, "istio-system", "default");
    assert!(mesh.spec.selector.is_none());
    assert_eq!(mesh.spec.mtls.as_ref().unwrap().mode, MtlsMode::Strict);
    assert!(mesh.spec.port_level_mtls.is_empty());

    let ns = typed!(PeerAuthentication, "legacy-billing", "default");
    assert_eq!(ns.spec.mtls.as_ref().unwrap().mode, MtlsMode::Permissive);

    let ports = typed!(PeerAuthentication, "legacy-billing", "ledger-ports");
    assert_eq!(ports.spec.selector.as_ref().unwrap().match_labels, labels(&[("app", "ledger")]));
    assert_eq!(ports.spec.mtls.as_ref().unwrap().mode, MtlsMode::Permissive);
    // A bare number key (`8080:`, as Istio's docs write it) and a quoted one both read as strings.
    let modes: Vec<(&str, MtlsMode)> = ports.spec.port_level_mtls.iter().map(|(k, v)| (k.as_str(), v.mode)).collect();
    assert_eq!(modes, vec![("8080", MtlsMode::Strict), ("9102", MtlsMode::Disable)]);

    let inherit = typed!(PeerAuthentication, "legacy-billing", "inherit");
    assert_eq!(inherit.spec.mtls.as_ref().unwrap().mode, MtlsMode::Unset);
}

#[test]
fn request_authentication_examples() {
    let ra = typed!(RequestAuthentication, "legacy-billing", "ledger-jwt");
    assert_eq!(ra.spec.selector.as_ref().unwrap().match_labels, labels(&[("app", "ledger")]));
    let rule = &ra.spec.jwt_rules[0];
    assert_eq!(rule.issuer, "https://auth.billing.example");
    assert_eq!(rule.audiences, strings(&["ledger-api", "ledger-admin"]));
    assert_eq!(rule.jwks_uri.as_deref(), Some("https://auth.billing.example/.well-known/jwks.json"));
    assert_eq!(rule.jwks, None);
    assert_eq!(rule.from_headers.len(), 1);
    assert_eq!(rule.from_headers[0].name, "x-jwt-assertion");
    assert_eq!(rule.from_headers[0].prefix.as_deref(), Some("Bearer "), "trailing space of a quoted scalar kept");
    assert_eq!(rule.from_params, strings(&["access_token"]));
    let claims: Vec<(&str, &str)> =
        rule.output_claim_to_headers.iter().map(|c| (c.header.as_str(), c.claim.as_str())).collect();
    assert_eq!(claims, vec![("x-jwt-subject", "sub"), ("x-jwt-tenant", "tenant")]);
    assert!(rule.forward_original_token);

    let ra = typed!(RequestAuthentication, "istio-system", "ingress-jwt");
    assert_eq!(ra.spec.jwt_rules.len(), 2);
    let inline = &ra.spec.jwt_rules[0];
    assert_eq!(inline.issuer, "partner-sso@billing.example");
    let jwks: serde_json::Value = serde_json::from_str(inline.jwks.as_deref().unwrap()).expect("inline JWKS is JSON");
    assert_eq!(jwks["keys"][0]["kid"], "partner-signing-1");
    assert_eq!(inline.from_cookies, strings(&["session"]));
    assert_eq!(inline.output_payload_to_header.as_deref(), Some("x-jwt-payload"));
    assert!(!inline.forward_original_token, "defaults to false");
    assert_eq!(ra.spec.jwt_rules[1].timeout.as_deref(), Some("10s"));

    let ra = typed!(RequestAuthentication, "bookshop", "waypoint-jwt");
    assert_eq!(ra.spec.target_refs[0].kind, "Gateway");
    assert_eq!(ra.spec.target_refs[0].name, "waypoint");
}

#[test]
fn service_entry_examples() {
    let se = typed!(ServiceEntry, "storefront", "payment-apis");
    assert_eq!(se.spec.hosts, strings(&["api.payments.example", "hooks.payments.example"]));
    assert_eq!(se.spec.location, ServiceEntryLocation::MeshExternal);
    assert_eq!(se.spec.resolution, ServiceEntryResolution::Dns);
    assert_eq!(se.spec.ports[0].number, 443);
    assert_eq!(se.spec.ports[0].name, "https");
    assert_eq!(se.spec.ports[0].protocol.as_deref(), Some("TLS"));
    assert_eq!(se.spec.export_to, strings(&["."]));

    let se = typed!(ServiceEntry, "data", "inventory-db");
    assert_eq!(se.spec.location, ServiceEntryLocation::MeshInternal);
    assert_eq!(se.spec.resolution, ServiceEntryResolution::Static);
    assert_eq!(se.spec.addresses, strings(&["240.240.10.0/24"]));
    let addresses: Vec<&str> = se.spec.endpoints.iter().filter_map(|e| e.address.as_deref()).collect();
    assert_eq!(addresses, vec!["10.20.0.11", "10.20.0.12", "2001:db8:20::13"]);
    assert_eq!(se.spec.endpoints[1].labels, labels(&[("zone", "b")]));
    assert_eq!(se.spec.subject_alt_names, strings(&["spiffe://cluster.local/ns/data/sa/inventory-db"]));

    let se = typed!(ServiceEntry, "logistics", "shipping-legacy");
    assert_eq!(se.spec.ports[0].target_port, Some(8080));
    assert!(se.spec.endpoints.is_empty());
    assert_eq!(se.spec.workload_selector.as_ref().unwrap().labels, labels(&[("app", "shipping-vm")]));

    let se = typed!(ServiceEntry, "logistics", "geo-lookup");
    let eu = &se.spec.endpoints[0];
    assert_eq!(eu.address.as_deref(), Some("eu.geo.vendor.example"));
    assert_eq!(eu.ports, BTreeMap::from([("https".to_string(), 8443)]));
    assert_eq!(eu.locality.as_deref(), Some("europe-west1/europe-west1-b"));
    assert_eq!((eu.weight, se.spec.endpoints[1].weight), (Some(3), Some(1)));

    let se = typed!(ServiceEntry, "storefront", "partner-wildcard");
    assert_eq!(se.spec.hosts, strings(&["*.partners.example"]));
    assert_eq!(se.spec.resolution, ServiceEntryResolution::None);

    let se = typed!(ServiceEntry, "observability", "local-agent");
    assert_eq!(se.spec.endpoints[0].address.as_deref(), Some("unix:///var/run/telemetry/agent.sock"));
}

#[test]
fn workload_entry_examples() {
    let we = typed!(WorkloadEntry, "logistics", "shipping-vm-1");
    assert_eq!(we.spec.service_account.as_deref(), Some("shipping-legacy"));
    assert_eq!(we.spec.address.as_deref(), Some("10.128.0.17"));
    assert_eq!(we.spec.labels, labels(&[("app", "shipping-vm"), ("instance-id", "vm-7f3a")]));
    assert_eq!(we.spec.ports, BTreeMap::from([("http".to_string(), 8080)]));
    assert_eq!(we.spec.network.as_deref(), Some("vpc-east"));
    assert_eq!(we.spec.locality.as_deref(), Some("us-east1/us-east1-b"));
    assert_eq!(we.spec.weight, Some(10));

    let we = typed!(WorkloadEntry, "logistics", "shipping-vm-2");
    assert_eq!(we.spec.address.as_deref(), Some("vm2.shipping.corp.example"));
    assert!(we.spec.ports.is_empty());
}

#[test]
fn gateway_examples() {
    let gw = typed!(Gateway, "bookshop", "waypoint");
    assert_eq!(gw.spec.gateway_class_name, "istio-waypoint");
    assert_eq!(gw.metadata.labels.as_ref().unwrap()["istio.io/waypoint-for"], "service");
    assert_eq!(gw.spec.listeners.len(), 1);
    let hbone = &gw.spec.listeners[0];
    assert_eq!((hbone.name.as_str(), hbone.port, hbone.protocol.as_str()), ("mesh", 15008, "HBONE"));

    let gw = typed!(Gateway, "edge", "public-edge");
    assert_eq!(gw.spec.gateway_class_name, "istio");
    assert_eq!(gw.spec.addresses[0].type_.as_deref(), Some("IPAddress"));
    assert_eq!(gw.spec.addresses[0].value, "198.51.100.40");
    let summary: Vec<(&str, i32, &str)> =
        gw.spec.listeners.iter().map(|l| (l.name.as_str(), l.port, l.protocol.as_str())).collect();
    assert_eq!(summary, vec![("http", 80, "HTTP"), ("https", 443, "HTTPS")]);
    assert_eq!(gw.spec.listeners[0].hostname.as_deref(), Some("*.shop.example"));
    let tls = gw.spec.listeners[1].tls.as_ref().expect("tls kept");
    assert_eq!(tls["mode"], "Terminate");
    assert_eq!(tls["certificateRefs"][0]["name"], "www-shop-cert");
    let routes = gw.spec.listeners[1].allowed_routes.as_ref().expect("allowedRoutes kept");
    assert_eq!(routes["namespaces"]["selector"]["matchLabels"]["shared-gateway-access"], "true");
}

#[test]
fn http_route_examples() {
    let hr = typed!(HttpRoute, "storefront", "shop-routes");
    let parent = &hr.spec.parent_refs[0];
    assert_eq!(parent.name, "public-edge");
    assert_eq!(parent.namespace.as_deref(), Some("edge"));
    assert_eq!(parent.section_name.as_deref(), Some("https"));
    assert_eq!(hr.spec.hostnames, strings(&["www.shop.example"]));
    assert_eq!(hr.spec.rules.len(), 3);

    let login = &hr.spec.rules[0];
    let path = login.matches[0].path.as_ref().unwrap();
    assert_eq!((path.type_, path.value.as_str()), (PathMatchType::PathPrefix, "/login"));
    assert_eq!((login.backend_refs[0].name.as_str(), login.backend_refs[0].port), ("auth-svc", Some(8080)));
    assert_eq!(login.backend_refs[0].weight, None);

    let canary = &hr.spec.rules[1];
    let header = &canary.matches[0].headers[0];
    assert_eq!(header.type_, Some(HeaderMatchType::Exact));
    assert_eq!((header.name.as_str(), header.value.as_str()), ("x-shop-env", "canary"));
    assert!(canary.matches[0].path.is_none());

    let split = &hr.spec.rules[2];
    let weights: Vec<(&str, Option<i32>)> = split.backend_refs.iter().map(|b| (b.name.as_str(), b.weight)).collect();
    assert_eq!(weights, vec![("catalog", Some(90)), ("catalog-canary", Some(10))]);
    assert_eq!(split.filters.len(), 1);
    assert_eq!(split.filters[0]["type"], "RequestHeaderModifier");
    assert_eq!(split.filters[0]["requestHeaderModifier"]["add"][0]["name"], "x-shop-route");
    let timeouts = split.timeouts.as_ref().unwrap();
    assert_eq!((timeouts.request.as_deref(), timeouts.backend_request.as_deref()), (Some("10s"), Some("2s")));

    let redirect = typed!(HttpRoute, "edge", "force-https");
    assert!(redirect.spec.rules[0].backend_refs.is_empty());
    assert_eq!(redirect.spec.rules[0].filters[0]["requestRedirect"]["statusCode"], 301);

    let mesh = typed!(HttpRoute, "bookshop", "reviews-split");
    let parent = &mesh.spec.parent_refs[0];
    assert_eq!(
        (parent.group.as_deref(), parent.kind.as_deref(), parent.name.as_str(), parent.port),
        (Some(""), Some("Service"), "reviews", Some(9080))
    );
    let beta = &mesh.spec.rules[0];
    assert_eq!(beta.name.as_deref(), Some("beta-testers"));
    let m = &beta.matches[0];
    assert_eq!(m.path.as_ref().unwrap().type_, PathMatchType::Exact);
    assert_eq!(m.method, Some(HttpMethod::Get));
    assert_eq!(m.query_params[0].type_, Some(HeaderMatchType::RegularExpression));
    assert_eq!(m.query_params[0].value, "^beta(-[0-9]+)?$");
    assert_eq!(beta.filters[0]["urlRewrite"]["path"]["replacePrefixMatch"], "/reviews");
    let weights: Vec<Option<i32>> = mesh.spec.rules[1].backend_refs.iter().map(|b| b.weight).collect();
    assert_eq!(weights, vec![Some(75), Some(25)]);
}

#[test]
fn http_route_path_defaults() {
    // A path match with only a value is a prefix match (Gateway API's default type).
    let hr = typed!(HttpRoute, "legacy-billing", "legacy-ledger-route");
    let path = hr.spec.rules[0].matches[0].path.as_ref().unwrap();
    assert_eq!((path.type_, path.value.as_str()), (PathMatchType::PathPrefix, "/statements"));
}

#[test]
fn namespace_examples() {
    let ns = typed!(Namespace, "", "bookshop");
    assert_eq!(ns.metadata.namespace, None, "a Namespace has no namespace");
    let l = ns.metadata.labels.as_ref().unwrap();
    assert_eq!(l["istio.io/dataplane-mode"], "ambient");
    assert_eq!(l["istio.io/use-waypoint"], "waypoint");

    let out = typed!(Namespace, "", "build-agents");
    assert_eq!(out.metadata.labels.as_ref().unwrap()["istio.io/dataplane-mode"], "none");
}

#[test]
fn pod_example() {
    let pod = typed!(Pod, "bookshop", "reviews-v1-6d7f9c5b8-x2kqp");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("bookshop-reviews"));
    assert_eq!(spec.containers.len(), 2);
    let ports: Vec<(Option<&str>, i32, Option<&str>)> = spec.containers[0]
        .ports
        .as_deref()
        .unwrap()
        .iter()
        .map(|p| (p.name.as_deref(), p.container_port, p.protocol.as_deref()))
        .collect();
    assert_eq!(ports, vec![(Some("http-api"), 9080, Some("TCP")), (Some("metrics"), 9102, None)]);
    assert!(spec.containers[1].ports.is_none());
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some("10.244.3.17"));
    let ips: Vec<&str> = status.pod_ips.as_deref().unwrap().iter().map(|p| p.ip.as_str()).collect();
    assert_eq!(ips, vec!["10.244.3.17", "fd00:10:244:3::11"]);
    assert_eq!(status.host_ip.as_deref(), Some("10.0.3.21"));

    let pending = typed!(Pod, "build-agents", "image-builder-0");
    assert_eq!(pending.metadata.labels.as_ref().unwrap()["istio.io/dataplane-mode"], "none");
    assert_eq!(pending.spec.as_ref().unwrap().host_network, Some(true));
    let status = pending.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(status.pod_ip.is_none() && status.pod_ips.is_none());
}

#[test]
fn service_examples() {
    let svc = typed!(Service, "bookshop", "reviews");
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.14.200"));
    let ports = spec.ports.as_deref().unwrap();
    assert_eq!(ports[0].port, 9080);
    assert_eq!(ports[0].target_port, Some(IntOrString::String("http-api".to_string())));
    assert_eq!(ports[1].target_port, Some(IntOrString::Int(9102)));
    assert_eq!(spec.selector.as_ref().unwrap()["app"], "reviews");

    let headless = typed!(Service, "data", "orders-db");
    let spec = headless.spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.ports.as_deref().unwrap()[0].target_port, None);

    let alias = typed!(Service, "storefront", "payments-gateway");
    let spec = alias.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
    assert_eq!(spec.external_name.as_deref(), Some("api.payments.example"));
    assert!(spec.ports.is_none());
}

#[test]
fn service_account_examples_and_default_namespace() {
    let sa = typed!(ServiceAccount, "bookshop", "bookshop-reviews");
    assert_eq!(sa.metadata.namespace.as_deref(), Some("bookshop"));

    let ci = typed!(ServiceAccount, "default", "ci-runner");
    assert_eq!(ci.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(ci.automount_service_account_token, Some(false));
}

#[test]
fn endpoint_slice_examples() {
    let es = typed!(EndpointSlice, "bookshop", "reviews-7hx2c");
    assert_eq!(es.address_type, "IPv4");
    assert_eq!(es.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"], "reviews");
    let port = &es.ports.as_deref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("http"), Some(9080), Some("TCP")));
    assert_eq!(es.endpoints.len(), 2);
    assert_eq!(es.endpoints[0].addresses, strings(&["10.244.3.17"]));
    let ready: Vec<Option<bool>> = es.endpoints.iter().map(|e| e.conditions.as_ref().and_then(|c| c.ready)).collect();
    assert_eq!(ready, vec![Some(true), Some(false)]);
    assert_eq!(es.endpoints[1].conditions.as_ref().unwrap().terminating, Some(true));
    assert_eq!(es.endpoints[0].target_ref.as_ref().unwrap().name.as_deref(), Some("reviews-v1-6d7f9c5b8-x2kqp"));

    let v6 = typed!(EndpointSlice, "bookshop", "reviews-v6-p9d4k");
    assert_eq!(v6.address_type, "IPv6");
    assert_eq!(v6.endpoints[0].addresses, strings(&["fd00:10:244:3::11"]));
}

#[test]
fn older_api_versions_read_into_the_same_types() {
    let older: Vec<&Example> = EXAMPLES.objects.values().filter(|e| e.file == "older-api-versions.yaml").collect();
    assert!(older.len() >= 8);
    let mut versions = std::collections::BTreeSet::new();
    for ex in older {
        let kind = ex.resource.kind();
        assert_ne!(ex.api_version, kind.api_version(), "{}:{} uses the preferred version", ex.file, ex.line);
        assert_eq!(Kind::from_api(&ex.api_version, kind.name()), Ok(kind));
        versions.insert(ex.api_version.rsplit('/').next().unwrap().to_string());
        // The same text with the preferred apiVersion decodes to an identical object.
        let current = ex.text.replacen(&ex.api_version, &kind.api_version(), 1);
        let decoded = decode_one(&current);
        assert_eq!(decoded.resource.as_ref(), Some(&ex.resource), "{}:{}", ex.file, ex.line);
    }
    assert_eq!(versions, ["v1alpha3", "v1beta1"].map(String::from).into());

    // Spot checks of values through the older versions.
    let ap = typed!(AuthorizationPolicy, "legacy-billing", "legacy-deny-delete");
    assert_eq!(ap.spec.action, AuthorizationAction::Deny);
    let pa = typed!(PeerAuthentication, "legacy-billing", "legacy-strict");
    assert_eq!(pa.spec.mtls.as_ref().unwrap().mode, MtlsMode::Strict);
    let se = typed!(ServiceEntry, "legacy-billing", "legacy-smtp");
    assert_eq!(
        example(Kind::ServiceEntry, "legacy-billing", "legacy-smtp").api_version,
        "networking.istio.io/v1alpha3"
    );
    assert_eq!((se.spec.ports[0].number, se.spec.resolution), (587, ServiceEntryResolution::Dns));
    let se = typed!(ServiceEntry, "legacy-billing", "legacy-ledger-vms");
    assert_eq!(se.spec.resolution, ServiceEntryResolution::DnsRoundRobin);
    let we = typed!(WorkloadEntry, "legacy-billing", "legacy-ledger-a");
    assert_eq!(we.spec.address.as_deref(), Some("172.16.4.10"));
    let gw = typed!(Gateway, "legacy-billing", "legacy-waypoint");
    assert_eq!((gw.spec.gateway_class_name.as_str(), gw.spec.listeners[0].port), ("istio-waypoint", 15008));
}

#[test]
fn default_namespace_comes_from_the_options() {
    let text = "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: builder
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
";
    let opts = DecodeOptions { default_namespace: "team-a".to_string() };
    let decoded = decode_all_with(text, &opts);
    let refs: Vec<ObjectRef> = decoded.iter().map(|d| d.object.clone().unwrap()).collect();
    assert_eq!(
        refs,
        vec![
            ObjectRef::new(Kind::ServiceAccount, "team-a", "builder"),
            ObjectRef::new(Kind::PeerAuthentication, "team-a", "default"),
            ObjectRef::new(Kind::Namespace, "", "team-a"),
        ]
    );
    for (d, ns) in decoded.iter().zip([Some("team-a"), Some("team-a"), None]) {
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
        let r = d.resource.as_ref().unwrap();
        assert_eq!(r.meta().namespace.as_deref(), ns, "{}", r.object_ref());
    }
    // With the default options, the kubectl default applies.
    let decoded = decode_all(text);
    assert_eq!(decoded[0].resource.as_ref().unwrap().namespace(), "default");
}
