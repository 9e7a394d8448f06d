use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::*;
use crate::ztunnel::accesslog::{AccessLog, AccessLogEntry, AccessLogFormat, MemorySink};

fn setup(format: AccessLogFormat) -> (Registry, Metrics, Arc<MemorySink>) {
    let mut registry = Registry::default();
    let sink = MemorySink::new();
    let metrics = Metrics::new(&mut registry, AccessLog::new(format, sink.clone()));
    (registry, metrics, sink)
}

fn scrape(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("encoding into a String cannot fail");
    out
}

/// The value of the sample line `name{labels}`, failing with the whole scrape when missing.
fn sample(scrape: &str, name: &str, labels: &str) -> u64 {
    let prefix = format!("{name}{{{labels}}} ");
    let line = scrape
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no sample {prefix}in:\n{scrape}"));
    line[prefix.len()..].parse().unwrap_or_else(|e| panic!("sample {line}: {e}"))
}

fn identity(namespace: &str, service_account: &str) -> Identity {
    Identity::new("cluster.local", namespace, service_account).expect("valid identity")
}

fn entry() -> AccessLogEntry {
    let src: SocketAddr = "10.10.0.5:43210".parse().unwrap();
    let dst: SocketAddr = "10.10.0.6:8080".parse().unwrap();
    AccessLogEntry::new(src, dst)
}

fn mesh_labels() -> ConnectionLabels {
    let client = WorkloadLabels {
        workload_name: "sleep",
        canonical_service: "sleep",
        canonical_revision: "v1",
        namespace: "default",
        cluster: "Kubernetes",
    };
    let server = WorkloadLabels {
        workload_name: "httpbin",
        canonical_service: "httpbin",
        canonical_revision: "v2",
        namespace: "web",
        cluster: "Kubernetes",
    };
    ConnectionLabels::new(Reporter::Source, SecurityPolicy::MutualTls)
        .with_source(&client, Some(&identity("default", "sleep")))
        .with_destination(&server, Some(&identity("web", "httpbin")))
        .with_destination_service("httpbin.web.svc.cluster.local", "httpbin", "web")
}

/// The encoded label set of `mesh_labels()` with `flags`, in Istio's label order.
fn mesh_label_text(flags: &str) -> String {
    [
        r#"reporter="source""#,
        r#"source_workload="sleep""#,
        r#"source_canonical_service="sleep""#,
        r#"source_canonical_revision="v1""#,
        r#"source_workload_namespace="default""#,
        r#"source_principal="spiffe://cluster.local/ns/default/sa/sleep""#,
        r#"source_app="sleep""#,
        r#"source_version="v1""#,
        r#"source_cluster="Kubernetes""#,
        r#"destination_service="httpbin.web.svc.cluster.local""#,
        r#"destination_service_namespace="web""#,
        r#"destination_service_name="httpbin""#,
        r#"destination_workload="httpbin""#,
        r#"destination_canonical_service="httpbin""#,
        r#"destination_canonical_revision="v2""#,
        r#"destination_workload_namespace="web""#,
        r#"destination_principal="spiffe://cluster.local/ns/web/sa/httpbin""#,
        r#"destination_app="httpbin""#,
        r#"destination_version="v2""#,
        r#"destination_cluster="Kubernetes""#,
        r#"request_protocol="tcp""#,
        &format!(r#"response_flags="{flags}""#),
        r#"connection_security_policy="mutual_tls""#,
    ]
    .join(",")
}

#[test]
fn counters_are_exposed_with_istio_names_and_total_suffix() {
    let (registry, metrics, _) = setup(AccessLogFormat::Off);
    // Families without samples are not encoded at all.
    assert!(!scrape(&registry).contains("istio_tcp"));
    metrics.open(mesh_labels(), entry()).close(None);
    metrics.inbound_denied(DenyReason::BadRequest);
    let text = scrape(&registry);
    for name in [
        "istio_tcp_connections_opened",
        "istio_tcp_connections_closed",
        "istio_tcp_sent_bytes",
        "istio_tcp_received_bytes",
        "ambient_ztunnel_inbound_denied",
    ] {
        assert!(text.contains(&format!("# TYPE {name} counter\n")), "{name} in:\n{text}");
        assert!(text.contains(&format!("\n{name}_total{{")), "{name}_total in:\n{text}");
    }
    for name in ["ambient_ztunnel_pods", "ambient_ztunnel_hbone_pool_connections", "ambient_ztunnel_xds_connected"] {
        assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name} in:\n{text}");
    }
    assert!(text.contains("ambient_ztunnel_certificates 0\n"), "{text}");
}

#[test]
fn open_bytes_and_close_are_counted_under_the_full_label_set() {
    let (registry, metrics, _) = setup(AccessLogFormat::Off);
    let record = metrics.open(mesh_labels(), entry());
    record.received(100);
    record.sent(40);
    record.sent(2);

    let open = scrape(&registry);
    let labels = mesh_label_text("-");
    assert_eq!(sample(&open, "istio_tcp_connections_opened_total", &labels), 1);
    assert_eq!(sample(&open, "istio_tcp_received_bytes_total", &labels), 100);
    assert_eq!(sample(&open, "istio_tcp_sent_bytes_total", &labels), 42);
    assert!(!open.contains("istio_tcp_connections_closed_total{"), "nothing closed yet:\n{open}");

    record.close(None);
    let closed = scrape(&registry);
    assert_eq!(sample(&closed, "istio_tcp_connections_closed_total", &labels), 1);
    assert_eq!(sample(&closed, "istio_tcp_connections_opened_total", &labels), 1);
}

#[test]
fn unset_labels_are_unknown_as_in_istio() {
    let (registry, metrics, _) = setup(AccessLogFormat::Off);
    metrics.open(ConnectionLabels::new(Reporter::Destination, SecurityPolicy::Unknown), entry()).close(None);
    let text = scrape(&registry);
    let line = text
        .lines()
        .find(|line| line.starts_with("istio_tcp_connections_opened_total{"))
        .unwrap_or_else(|| panic!("no opened sample in:\n{text}"));
    assert!(line.contains(r#"reporter="destination""#), "{line}");
    assert!(line.contains(r#"source_workload="unknown""#), "{line}");
    assert!(line.contains(r#"source_principal="unknown""#), "{line}");
    assert!(line.contains(r#"destination_service="unknown""#), "{line}");
    assert!(line.contains(r#"destination_cluster="unknown""#), "{line}");
    assert!(line.contains(r#"request_protocol="tcp""#), "{line}");
    assert!(line.contains(r#"response_flags="-""#), "{line}");
    assert!(line.contains(r#"connection_security_policy="unknown""#), "{line}");
    assert_eq!(line.matches("=\"").count(), 23, "Istio's 23 labels: {line}");
}

#[test]
fn empty_strings_and_missing_principals_are_unknown() {
    let labels = ConnectionLabels::new(Reporter::Source, SecurityPolicy::Unknown)
        .with_source(&WorkloadLabels { workload_name: "sleep", ..Default::default() }, None);
    assert_eq!(labels.source_workload.as_deref(), Some("sleep"));
    assert_eq!(labels.source_canonical_service.as_deref(), None);
    assert_eq!(labels.source_principal.as_deref(), None);
}

#[test]
fn connections_with_equal_labels_share_counters() {
    let (registry, metrics, _) = setup(AccessLogFormat::Off);
    let first = metrics.open(mesh_labels(), entry());
    let second = metrics.open(mesh_labels(), entry());
    first.received(10);
    second.received(5);
    first.close(None);
    second.close(None);
    let text = scrape(&registry);
    let labels = mesh_label_text("-");
    assert_eq!(sample(&text, "istio_tcp_connections_opened_total", &labels), 2);
    assert_eq!(sample(&text, "istio_tcp_connections_closed_total", &labels), 2);
    assert_eq!(sample(&text, "istio_tcp_received_bytes_total", &labels), 15);
}

#[test]
fn error_close_is_flagged_connect_and_bytes_stay_unflagged() {
    let (registry, metrics, sink) = setup(AccessLogFormat::Text);
    let record = metrics.open(mesh_labels(), entry());
    record.received(7);
    record.close(Some("upstream reset"));
    let text = scrape(&registry);
    assert_eq!(sample(&text, "istio_tcp_connections_closed_total", &mesh_label_text("CONNECT")), 1);
    assert_eq!(sample(&text, "istio_tcp_received_bytes_total", &mesh_label_text("-")), 7);
    let lines = sink.lines();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains(r#"error="upstream reset""#), "{}", lines[0]);
    assert!(lines[0].contains("response_flags=CONNECT"), "{}", lines[0]);
}

#[test]
fn close_denied_flags_deny_and_logs_the_policy() {
    let (registry, metrics, sink) = setup(AccessLogFormat::Json);
    metrics.open(mesh_labels(), entry()).close_denied("web/deny-sleep");
    let text = scrape(&registry);
    assert_eq!(sample(&text, "istio_tcp_connections_closed_total", &mesh_label_text("DENY")), 1);
    let line: serde_json::Value = serde_json::from_str(&sink.lines()[0]).expect("a JSON line");
    assert_eq!(line["policy"], "web/deny-sleep");
    assert_eq!(line["response_flags"], "DENY");
    assert_eq!(line["level"], "error");
}

#[test]
fn close_with_uses_the_given_flag() {
    let (registry, metrics, _) = setup(AccessLogFormat::Off);
    metrics.open(mesh_labels(), entry()).close_with(ResponseFlags::TlsFailure, Some("bad certificate"));
    let text = scrape(&registry);
    assert_eq!(sample(&text, "istio_tcp_connections_closed_total", &mesh_label_text("TLS_FAILURE")), 1);
}

#[test]
fn drop_closes_and_logs_once() {
    let (registry, metrics, sink) = setup(AccessLogFormat::Text);
    {
        let record = metrics.open(mesh_labels(), entry());
        record.sent(3);
    }
    let text = scrape(&registry);
    assert_eq!(sample(&text, "istio_tcp_connections_closed_total", &mesh_label_text("-")), 1);
    let lines = sink.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("connection dropped before it was closed"), "{}", lines[0]);

    // An explicit close is not counted again by Drop.
    metrics.open(mesh_labels(), entry()).close(None);
    assert_eq!(sample(&scrape(&registry), "istio_tcp_connections_closed_total", &mesh_label_text("-")), 2);
    assert_eq!(sink.lines().len(), 2);
}

#[test]
fn access_log_off_writes_nothing_but_metrics_still_count() {
    let (registry, metrics, sink) = setup(AccessLogFormat::Off);
    metrics.open(mesh_labels(), entry()).close(Some("boom"));
    drop(metrics.open(mesh_labels(), entry()));
    assert!(sink.lines().is_empty(), "{:?}", sink.lines());
    assert_eq!(sample(&scrape(&registry), "istio_tcp_connections_closed_total", &mesh_label_text("CONNECT")), 1);
}

#[test]
fn access_log_line_carries_per_connection_bytes() {
    let (_registry, metrics, sink) = setup(AccessLogFormat::Json);
    let record = metrics.open(mesh_labels(), entry());
    record.received(1000);
    record.sent(20);
    // Another connection under the same labels must not leak into this line's totals.
    metrics.open(mesh_labels(), entry()).received(5);
    record.close(None);
    let line: serde_json::Value = serde_json::from_str(&sink.lines()[1]).expect("a JSON line");
    // Outbound (reporter source): bytes_sent is what the local client sent.
    assert_eq!(line["bytes_sent"], 1000);
    assert_eq!(line["bytes_recv"], 20);
    assert_eq!(line["direction"], "outbound");
}

#[test]
fn ztunnel_gauges_and_denied_counter() {
    let (registry, metrics, _) = setup(AccessLogFormat::Off);
    metrics.pods.set(3);
    metrics.hbone_pool_connections.inc();
    metrics.xds_connected.set(1);
    metrics.certificates.set(2);
    metrics.inbound_denied(DenyReason::Policy);
    metrics.inbound_denied(DenyReason::Policy);
    metrics.inbound_denied(DenyReason::UnknownDestination);
    let text = scrape(&registry);
    assert!(text.contains("ambient_ztunnel_pods 3\n"), "{text}");
    assert!(text.contains("ambient_ztunnel_hbone_pool_connections 1\n"), "{text}");
    assert!(text.contains("ambient_ztunnel_xds_connected 1\n"), "{text}");
    assert!(text.contains("ambient_ztunnel_certificates 2\n"), "{text}");
    assert_eq!(sample(&text, "ambient_ztunnel_inbound_denied_total", r#"reason="policy""#), 2);
    assert_eq!(sample(&text, "ambient_ztunnel_inbound_denied_total", r#"reason="unknown_destination""#), 1);
}

#[test]
fn label_values_are_escaped() {
    let (registry, metrics, _) = setup(AccessLogFormat::Off);
    let labels = ConnectionLabels::new(Reporter::Source, SecurityPolicy::Unknown).with_destination_service(
        "evil\"host\n",
        "n",
        "ns",
    );
    metrics.open(labels, entry()).close(None);
    let text = scrape(&registry);
    assert!(text.contains(r#"destination_service="evil\"host\n""#), "{text}");
}
