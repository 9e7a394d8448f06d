use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};

use super::client::connect_request;
use super::headers::*;
use super::{HboneError, PoolConfig};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn forwarded_names_the_source_and_host_as_istio_does() {
    assert_eq!(forwarded(addr("127.0.0.1:80"), None), r#"for="127.0.0.1:80""#);
    assert_eq!(forwarded(addr("[::1]:80"), None), r#"for="[::1]:80""#);
    assert_eq!(
        forwarded(addr("10.0.0.1:4321"), Some("web.shop.svc.cluster.local")),
        r#"for="10.0.0.1:4321";host=web.shop.svc.cluster.local"#
    );
    // A host that would break the header syntax is left out rather than sent.
    assert_eq!(forwarded(addr("10.0.0.1:1"), Some("a;b=c")), r#"for="10.0.0.1:1""#);
}

#[test]
fn forwarded_round_trips_and_parses_rfc7239_forms() {
    let value = forwarded(addr("[2001:db8::1]:4711"), Some("svc.example"));
    let parsed = parse_forwarded(&value);
    assert_eq!(parsed.for_ip, Some("2001:db8::1".parse::<IpAddr>().unwrap()));
    assert_eq!(parsed.for_port, Some(4711));
    assert_eq!(parsed.host.as_deref(), Some("svc.example"));

    let cases: &[(&str, Option<&str>, Option<u16>)] = &[
        ("for=192.0.2.60;proto=http;by=203.0.113.43", Some("192.0.2.60"), None),
        (r#"For="[2001:db8:cafe::17]""#, Some("2001:db8:cafe::17"), None),
        (r#"for="192.0.2.43:_hidden""#, Some("192.0.2.43"), None),
        ("for=unknown", None, None),
        ("for=_gazonk", None, None),
        ("for=192.0.2.43, for=198.51.100.17", Some("192.0.2.43"), None),
        ("proto=https", None, None),
        ("garbage", None, None),
    ];
    for (text, ip, port) in cases {
        let parsed = parse_forwarded(&HeaderValue::from_str(text).unwrap());
        assert_eq!(parsed.for_ip, ip.map(|i| i.parse().unwrap()), "{text}");
        assert_eq!(parsed.for_port, *port, "{text}");
    }
    assert_eq!(parse_forwarded(&HeaderValue::from_static("for=1.2.3.4;host=")).host, None);
}

fn full_baggage() -> Baggage {
    Baggage {
        cluster_id: Some("K1".into()),
        namespace: Some("NS1".into()),
        workload_name: Some("N1".into()),
        service_name: Some("N2".into()),
        revision: Some("V1".into()),
        region: Some("r".into()),
        zone: Some("z".into()),
    }
}

#[test]
fn baggage_uses_istio_keys_and_round_trips() {
    let value = baggage(&full_baggage(), "deployment").unwrap();
    assert_eq!(
        value,
        "k8s.cluster.name=K1,k8s.namespace.name=NS1,k8s.deployment.name=N1,service.name=N2,service.version=V1,\
         cloud.region=r,cloud.availability_zone=z"
    );
    let mut headers = HeaderMap::new();
    headers.append(BAGGAGE, value);
    assert_eq!(parse_baggage(&headers), full_baggage());

    let partial = Baggage { namespace: Some("shop".into()), workload_name: Some("web-1".into()), ..Default::default() };
    assert_eq!(baggage(&partial, "pod").unwrap(), "k8s.namespace.name=shop,k8s.pod.name=web-1");
    assert_eq!(baggage(&Baggage::default(), "pod"), None);
    // A value that is not baggage text is dropped, not sent broken.
    let bad = Baggage { namespace: Some("a,b".into()), ..Default::default() };
    assert_eq!(baggage(&bad, "pod"), None);
}

#[test]
fn baggage_parsing_spreads_over_headers_and_ignores_the_unknown() {
    let mut headers = HeaderMap::new();
    headers.append(BAGGAGE, HeaderValue::from_static("k8s.cluster.name=K1, k8s.namespace.name=NS1;prop=1"));
    headers.append(BAGGAGE, HeaderValue::from_static("k8s.job.name=J,other=x,novalue,service.name="));
    headers.append(BAGGAGE, HeaderValue::from_static("service.version=V1,k8s.node.name=ignored"));
    let parsed = parse_baggage(&headers);
    assert_eq!(parsed.cluster_id.as_deref(), Some("K1"));
    assert_eq!(parsed.namespace.as_deref(), Some("NS1"));
    assert_eq!(parsed.workload_name.as_deref(), Some("J"));
    assert_eq!(parsed.service_name, None);
    assert_eq!(parsed.revision.as_deref(), Some("V1"));
    assert_eq!(parse_baggage(&HeaderMap::new()), Baggage::default());
}

#[test]
fn connect_request_is_authority_form_connect() {
    let mut headers = HeaderMap::new();
    headers.insert(FORWARDED, forwarded(addr("10.0.0.1:1234"), None));
    let request = connect_request("10.0.0.2:8080", &headers).unwrap();
    assert_eq!(request.method(), http::Method::CONNECT);
    assert_eq!(request.uri().authority().unwrap().as_str(), "10.0.0.2:8080");
    assert_eq!(request.uri().scheme(), None);
    assert_eq!(request.uri().path_and_query(), None);
    assert_eq!(request.headers()[FORWARDED], r#"for="10.0.0.1:1234""#);
    assert!(connect_request("[fd00::2]:80", &headers).is_ok());

    for bad in ["10.0.0.2", "web:80", "", "10.0.0.2:80/path", "http://10.0.0.2:80", "fd00::2:80"] {
        let err = connect_request(bad, &headers).unwrap_err();
        assert!(matches!(err, HboneError::InvalidAuthority(ref a) if a == bad), "{bad}: {err}");
    }
}

#[test]
fn errors_read_well() {
    assert_eq!(HboneError::Status(401).to_string(), "HBONE: CONNECT rejected with status 401 Unauthorized");
    assert_eq!(HboneError::Status(599).to_string(), "HBONE: CONNECT rejected with status 599");
    let config = PoolConfig::default();
    assert_eq!(config.max_streams_per_connection, 100);
}
