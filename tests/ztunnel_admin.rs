//! ztunnel telemetry through its public API: a connection recorded in `Metrics` shows up when
//! Prometheus scrapes the metrics endpoint, and its access-log line reaches the sink. Everything
//! listens on 127.0.0.1 with ephemeral ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ambient::model::Identity;
use ambient::ztunnel::accesslog::{AccessLog, AccessLogEntry, AccessLogFormat, MemorySink};
use ambient::ztunnel::admin::{self, AdminConfig, ConfigDump};
use ambient::ztunnel::metrics::{ConnectionLabels, Metrics, Reporter, SecurityPolicy, WorkloadLabels};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    assert!(address.ip().is_loopback(), "tests only talk to loopback, not {address}");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .expect("reply within 10s")
        .expect("read reply");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete reply");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, body.to_string())
}

#[tokio::test]
async fn a_recorded_connection_is_scraped_and_logged() {
    let mut registry = Registry::default();
    let sink = MemorySink::new();
    let metrics = Metrics::new(&mut registry, AccessLog::new(AccessLogFormat::Json, sink.clone()));
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let config = AdminConfig { admin: loopback, metrics: loopback, readiness: loopback };
    let dump: ConfigDump = Arc::new(|| serde_json::json!({ "workloads": [] }));
    let (ready, ready_rx) = watch::channel(false);
    let servers = admin::start(config, dump, Arc::new(registry), ready_rx).await.expect("start on loopback");

    let server_identity = Identity::new("cluster.local", "web", "httpbin").expect("valid identity");
    let labels = ConnectionLabels::new(Reporter::Destination, SecurityPolicy::MutualTls).with_destination(
        &WorkloadLabels {
            workload_name: "httpbin",
            canonical_service: "httpbin",
            canonical_revision: "v1",
            namespace: "web",
            cluster: "Kubernetes",
        },
        Some(&server_identity),
    );
    let mut entry = AccessLogEntry::new("10.10.0.5:40000".parse().unwrap(), "10.10.0.6:8080".parse().unwrap());
    entry.dst_identity = Some(server_identity);
    let record = metrics.open(labels, entry);
    record.received(512);
    record.sent(2048);
    record.close(None);
    metrics.pods.set(1);
    ready.send(true).expect("the servers hold the receiver");

    let (status, body) = get(servers.readiness_addr, "/healthz/ready").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    let (status, scrape) = get(servers.metrics_addr, "/stats/prometheus").await;
    assert_eq!(status, 200, "{scrape}");
    let sample = |name: &str| {
        scrape
            .lines()
            .find(|line| line.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("no {name} in:\n{scrape}"))
            .to_string()
    };
    for (name, value) in [
        ("istio_tcp_connections_opened_total", 1),
        ("istio_tcp_connections_closed_total", 1),
        ("istio_tcp_received_bytes_total", 512),
        ("istio_tcp_sent_bytes_total", 2048),
    ] {
        let line = sample(name);
        assert!(line.ends_with(&format!("}} {value}")), "{line}");
        assert!(line.contains(r#"reporter="destination""#), "{line}");
        assert!(line.contains(r#"destination_workload="httpbin""#), "{line}");
        assert!(line.contains(r#"destination_principal="spiffe://cluster.local/ns/web/sa/httpbin""#), "{line}");
        assert!(line.contains(r#"source_workload="unknown""#), "{line}");
        assert!(line.contains(r#"connection_security_policy="mutual_tls""#), "{line}");
    }
    assert!(scrape.contains("\nambient_ztunnel_pods 1\n"), "{scrape}");

    let (status, dump) = get(servers.admin_addr, "/config_dump").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&dump).expect("JSON"), serde_json::json!({ "workloads": [] }));

    let lines = sink.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON access-log line");
    assert_eq!(line["direction"], "inbound");
    assert_eq!(line["bytes_sent"], 2048);
    assert_eq!(line["bytes_recv"], 512);
    assert_eq!(line["dst.identity"], "spiffe://cluster.local/ns/web/sa/httpbin");
    servers.shutdown();
}
