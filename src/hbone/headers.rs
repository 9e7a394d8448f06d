//! The request headers Istio's ztunnel puts on a CONNECT besides the authority:
//!
//! - `forwarded` (RFC 7239): `for="<source ip:port>"`, plus `;host=<service hostname>` when the
//!   client addressed a service. The server takes the original client address from it when
//!   the tunnel came through a proxy (waypoint, gateway).
//! - `baggage` (W3C baggage, OpenTelemetry keys): who the source is, as comma-separated
//!   `key=value` pairs: `k8s.cluster.name`, `k8s.namespace.name`, `k8s.<workload type>.name`
//!   (`deployment`, `pod`, `job`, `cronjob`...), `service.name`, `service.version`,
//!   `cloud.region`, `cloud.availability_zone`. Telemetry uses it when the source workload is
//!   not known locally.

use std::net::{IpAddr, SocketAddr};

use http::HeaderValue;
use http::header::HeaderName;

/// The `forwarded` header.
pub const FORWARDED: HeaderName = http::header::FORWARDED;
/// The `baggage` header.
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");
/// The `traceparent` header (W3C trace context), passed through unchanged.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The `forwarded` value for a connection from `source`, naming the service hostname the
/// client addressed when there is one: `for="10.0.0.1:4321";host=web.shop.svc.cluster.local`.
/// A hostname that cannot be a header value is left out.
pub fn forwarded(source: SocketAddr, host: Option<&str>) -> HeaderValue {
    // A socket address always needs quotes (it holds ':'), an IPv6 one is bracketed by Display.
    let mut text = format!("for=\"{source}\"");
    if let Some(host) = host.filter(|h| !h.is_empty() && h.bytes().all(is_token_byte)) {
        text.push_str(";host=");
        text.push_str(host);
    }
    HeaderValue::from_str(&text).expect("an address and a token are valid header text")
}

/// RFC 7230 `tchar`: what an unquoted parameter value may hold.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What a `forwarded` header says about the first hop (the original client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's address, when `for=` names one (not `unknown` or an obfuscated name).
    pub for_ip: Option<IpAddr>,
    /// The client's port, when given.
    pub for_port: Option<u16>,
    /// The `host=` parameter.
    pub host: Option<String>,
}

/// Parses the first element of a `forwarded` value (the hop nearest the original client).
/// Unknown parameters are ignored; malformed ones are left `None`.
pub fn parse_forwarded(value: &HeaderValue) -> Forwarded {
    let mut parsed = Forwarded::default();
    let Ok(text) = value.to_str() else { return parsed };
    let first = text.split(',').next().unwrap_or_default();
    for pair in first.split(';') {
        let Some((name, value)) = pair.split_once('=') else { continue };
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        match name.trim().to_ascii_lowercase().as_str() {
            "for" => (parsed.for_ip, parsed.for_port) = parse_node(value),
            "host" if !value.is_empty() => parsed.host = Some(value.to_string()),
            _ => {}
        }
    }
    parsed
}

/// An RFC 7239 node: `ip`, `ip:port`, `[v6]`, `[v6]:port`; anything else names no address.
fn parse_node(node: &str) -> (Option<IpAddr>, Option<u16>) {
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return (Some(addr.ip()), Some(addr.port()));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return (Some(ip), None);
    }
    if let Some(ip) = node.strip_prefix('[').and_then(|n| n.strip_suffix(']')).and_then(|n| n.parse().ok()) {
        return (Some(IpAddr::V6(ip)), None);
    }
    // `ip:_obfuscated` or `[v6]:_obfuscated`: the address without a port.
    if let Some((host, _)) = node.rsplit_once(':') {
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return (Some(ip), None);
        }
    }
    (None, None)
}

/// Who a workload is, as carried in `baggage`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baggage {
    pub cluster_id: Option<String>,
    pub namespace: Option<String>,
    /// The workload's name (its controller's, e.g. the Deployment's, or the pod's).
    pub workload_name: Option<String>,
    /// The canonical service name.
    pub service_name: Option<String>,
    /// The canonical revision.
    pub revision: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
}

/// Workload types whose `k8s.<type>.name` key names the workload.
const WORKLOAD_TYPES: &[&str] = &["deployment", "statefulset", "daemonset", "replicaset", "cronjob", "job", "pod"];

/// The `baggage` value for `baggage`, the workload named under `k8s.<workload_type>.name`
/// (`deployment`, `pod`...). Fields that are `None`, or that cannot be header text, are left
/// out. `None` when nothing is left.
pub fn baggage(baggage: &Baggage, workload_type: &str) -> Option<HeaderValue> {
    let workload_key = format!("k8s.{workload_type}.name");
    let fields = [
        ("k8s.cluster.name", &baggage.cluster_id),
        ("k8s.namespace.name", &baggage.namespace),
        (workload_key.as_str(), &baggage.workload_name),
        ("service.name", &baggage.service_name),
        ("service.version", &baggage.revision),
        ("cloud.region", &baggage.region),
        ("cloud.availability_zone", &baggage.zone),
    ];
    let text = fields
        .iter()
        .filter_map(|(key, value)| value.as_deref().filter(|v| is_baggage_value(v)).map(|v| format!("{key}={v}")))
        .collect::<Vec<_>>()
        .join(",");
    if text.is_empty() { None } else { HeaderValue::from_str(&text).ok() }
}

/// W3C baggage value characters that need no percent-encoding (Kubernetes names always fit).
fn is_baggage_value(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

/// Reads every `baggage` header of `headers`. Later entries win; empty values count as absent;
/// properties (`;...`) and unknown keys are ignored.
pub fn parse_baggage(headers: &http::HeaderMap) -> Baggage {
    let mut parsed = Baggage::default();
    for value in headers.get_all(&BAGGAGE) {
        let Ok(text) = value.to_str() else { continue };
        for member in text.split(',') {
            let member = member.split(';').next().unwrap_or_default();
            let Some((key, value)) = member.split_once('=') else { continue };
            let value = value.trim();
            let value = (!value.is_empty()).then(|| value.to_string());
            let slot = match key.trim() {
                "k8s.cluster.name" => &mut parsed.cluster_id,
                "k8s.namespace.name" => &mut parsed.namespace,
                "service.name" => &mut parsed.service_name,
                "service.version" => &mut parsed.revision,
                "cloud.region" => &mut parsed.region,
                "cloud.availability_zone" => &mut parsed.zone,
                key => match key.strip_prefix("k8s.").and_then(|k| k.strip_suffix(".name")) {
                    Some(kind) if WORKLOAD_TYPES.contains(&kind) => &mut parsed.workload_name,
                    _ => continue,
                },
            };
            *slot = value;
        }
    }
    parsed
}
