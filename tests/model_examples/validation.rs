//! Validation helpers, through the public API.

use ambient::model::security::{AuthorizationAction, AuthorizationPolicySpec, Rule, RuleFrom, Source};
use ambient::model::validate::parse_ip_block;
use ambient::model::{Kind, KindError, Validate, Validator, valid_dns_label, valid_dns_subdomain};

use crate::strings;

#[test]
fn parse_ip_block_accepts_addresses_and_cidrs() {
    let ok = [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3", "10.1.2.3/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("fd00::/64", "fd00::/64"),
        ("::1", "::1/128"),
        ("2001:db8::1/128", "2001:db8::1/128"),
    ];
    for (input, net) in ok {
        assert_eq!(parse_ip_block(input).map(|n| n.to_string()), Ok(net.to_string()), "{input}");
    }
    let bad =
        ["", "10.0.0.0/33", "10.0.0.256", "10.0.0", "10.0.0.0/", "/8", "fd00::/129", "example.com", "10.0.0.0/8 "];
    for input in bad {
        let err = parse_ip_block(input).expect_err(input);
        assert!(err.contains(&format!("{input:?}")), "message {err:?} names the value");
    }
    assert!(parse_ip_block("10.0.0.0/33").unwrap_err().contains("CIDR"));
}

#[test]
fn validator_builds_field_paths() {
    let mut v = Validator::new();
    assert_eq!(v.path(), "");
    v.at("spec", |v| {
        assert_eq!(v.path(), "spec");
        v.each("rules", &[1, 2], |v, n| {
            if *n == 2 {
                v.at("to", |v| v.error("bad"));
                v.port_strings("ports", &strings(&["80", "0", "x"]));
            }
        });
        v.port("port", 0);
        v.port("ok", 65535);
        v.ip_blocks("blocks", &strings(&["10.0.0.0/8", "nope"]));
        v.error_at("name", "named");
        assert_eq!(v.path(), "spec");
    });
    v.error("root");
    let got: Vec<String> = v.finish().iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        vec![
            "field `spec.rules[1].to`: bad",
            "field `spec.rules[1].ports[1]`: port 0 is out of range 1-65535",
            "field `spec.rules[1].ports[2]`: \"x\" is not a port number",
            "field `spec.port`: port 0 is out of range 1-65535",
            "field `spec.blocks[1]`: \"nope\" is not a valid IP address or CIDR block",
            "field `spec.name`: named",
            "field ``: root",
        ]
    );
}

#[test]
fn spec_validation_paths_are_relative_to_the_spec() {
    let spec = AuthorizationPolicySpec {
        action: AuthorizationAction::Custom,
        rules: Some(vec![Rule {
            from: vec![RuleFrom { source: Source { ip_blocks: strings(&["1.2.3.4/40"]), ..Default::default() } }],
            ..Default::default()
        }]),
        ..Default::default()
    };
    let fields: Vec<String> = spec.validation_errors().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, vec!["provider", "rules[0].from[0].source.ipBlocks[0]"]);
}

#[test]
fn kind_resolution_and_name_rules() {
    assert_eq!(Kind::from_api("security.istio.io/v1beta1", "AuthorizationPolicy"), Ok(Kind::AuthorizationPolicy));
    assert_eq!(Kind::from_api("v1", "Service"), Ok(Kind::Service));
    assert_eq!(Kind::from_api("gateway.networking.k8s.io/v1", "HTTPRoute"), Ok(Kind::HttpRoute));
    assert!(matches!(Kind::from_api("apps/v1", "Deployment"), Err(KindError::UnknownKind { .. })));
    assert!(matches!(
        Kind::from_api("networking.istio.io/v1alpha1", "ServiceEntry"),
        Err(KindError::UnsupportedVersion { .. })
    ));
    for kind in Kind::ALL {
        assert_eq!(Kind::from_api(&kind.api_version(), kind.name()), Ok(*kind));
        for version in kind.versions() {
            let api = if kind.group().is_empty() { version.to_string() } else { format!("{}/{version}", kind.group()) };
            assert_eq!(Kind::from_api(&api, kind.name()), Ok(*kind), "{api}");
        }
    }
    assert!(!Kind::Namespace.namespaced() && Kind::Pod.namespaced());

    assert!(valid_dns_label("bookshop") && valid_dns_label("a-1") && !valid_dns_label("a.b"));
    assert!(!valid_dns_label("-a") && !valid_dns_label("A") && !valid_dns_label(&"a".repeat(64)));
    assert!(valid_dns_subdomain("reviews.v1") && !valid_dns_subdomain("a..b") && !valid_dns_subdomain(""));
    assert!(valid_dns_subdomain(&"a".repeat(253)) && !valid_dns_subdomain(&"a".repeat(254)));
}
