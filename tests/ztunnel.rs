//! ztunnel end to end, in network namespaces created by the tests: pods on two nodes, a control
//! plane on a files config, two in-process ztunnels fed by stand-in CNI agents over ZDS. Traffic
//! goes from a pod through its redirect rules to its node's ztunnel, over HBONE to the other
//! node's ztunnel, and into the destination pod — nothing leaves the test's namespaces.

#[allow(dead_code)]
#[path = "controlplane/support.rs"]
mod cp;
#[allow(dead_code)]
#[path = "ztunnel/mesh.rs"]
mod mesh;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mesh::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT: &str = "spiffe://cluster.local/ns/shop/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/shop/sa/server";

fn vip() -> SocketAddr {
    SocketAddr::from((SERVICE_VIP, 80))
}

fn addr(mesh: &Mesh, pod: &str, port: u16) -> SocketAddr {
    SocketAddr::from((mesh.spec(pod).ip, port))
}

/// Polls `node`'s metrics until `metric` with `labels` reaches `at_least`.
async fn wait_metric(mesh: &Mesh, node: &str, metric: &str, labels: &[(&str, &str)], at_least: f64) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = mesh.metrics(node).await;
        if sample(&text, metric, labels) >= at_least {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{node}: {metric} {labels:?} >= {at_least}; metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `pod` can exchange a message with `dst` (an echo server).
async fn reaches(mesh: &Mesh, pod: &str, dst: SocketAddr) -> bool {
    matches!(mesh.exchange(pod, dst, b"ping").await, Ok(answer) if answer == b"ping")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_to_service_and_to_pod_ip_over_hbone_with_metrics_from_both_ends() {
    let mesh = Mesh::start(&[]).await;
    mesh.serve_echo("server", APP_PORT).await;

    let answer = mesh.exchange("client", vip(), b"hello via the service").await.expect("service reachable");
    assert_eq!(answer, b"hello via the service");
    let answer =
        mesh.exchange("client", addr(&mesh, "server", APP_PORT), b"hello pod").await.expect("pod IP reachable");
    assert_eq!(answer, b"hello pod", "a pod IP destination works (the experimental release failed here)");

    let source = [("reporter", "source"), ("source_principal", CLIENT), ("destination_principal", SERVER)];
    let text = wait_metric(&mesh, "node-a", "istio_tcp_connections_closed_total", &source, 2.0).await;
    assert_eq!(sample(&text, "istio_tcp_connections_opened_total", &source), 2.0, "{text}");
    let via_service = [("reporter", "source"), ("destination_service", "server.shop.svc.cluster.local")];
    assert_eq!(sample(&text, "istio_tcp_connections_opened_total", &via_service), 1.0, "{text}");
    let mtls = [("reporter", "source"), ("connection_security_policy", "mutual_tls"), ("source_workload", "client")];
    assert_eq!(sample(&text, "istio_tcp_connections_opened_total", &mtls), 2.0, "{text}");
    let request_bytes = "hello via the service".len() + "hello pod".len();
    assert_eq!(sample(&text, "istio_tcp_received_bytes_total", &source), request_bytes as f64, "{text}");
    assert_eq!(sample(&text, "istio_tcp_sent_bytes_total", &source), request_bytes as f64, "{text}");

    let destination = [("reporter", "destination"), ("source_principal", CLIENT), ("destination_principal", SERVER)];
    let text = wait_metric(&mesh, "node-b", "istio_tcp_connections_closed_total", &destination, 2.0).await;
    assert_eq!(sample(&text, "istio_tcp_connections_opened_total", &destination), 2.0, "{text}");
    let named =
        [("reporter", "destination"), ("destination_workload", "server"), ("source_workload_namespace", "shop")];
    assert_eq!(sample(&text, "istio_tcp_connections_opened_total", &named), 2.0, "{text}");
    assert_eq!(sample(&text, "istio_tcp_received_bytes_total", &destination), request_bytes as f64, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_and_deny_policies_are_enforced_and_dry_run_is_not() {
    let mesh = Mesh::start(&[]).await;
    mesh.serve_echo("server", APP_PORT).await;
    let server = addr(&mesh, "server", APP_PORT);
    assert!(reaches(&mesh, "client", server).await, "no policy: allowed");

    let deny = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-client, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  action: DENY
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]}]
"#;
    mesh.set_policy("policy.yaml", deny, "shop/deny-client", true).await;
    assert!(!reaches(&mesh, "client", server).await, "DENY enforced");
    assert!(!reaches(&mesh, "client", vip()).await, "DENY enforced through the service too");

    let dry_run = deny.replace("namespace: shop}", "namespace: shop, annotations: {istio.io/dry-run: \"true\"}}");
    mesh.controlplane().write("policy.yaml", &dry_run);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !reaches(&mesh, "client", server).await {
        assert!(tokio::time::Instant::now() < deadline, "a dry-run DENY is not enforced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let allow_other = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-other, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules: [{from: [{source: {namespaces: [other]}}]}]
"#;
    mesh.set_policy("policy.yaml", allow_other, "shop/allow-other", true).await;
    mesh.wait_policy("shop/deny-client", false).await;
    assert!(!reaches(&mesh, "client", server).await, "an ALLOW policy that does not match denies");

    let allow_shop = allow_other.replace("allow-other", "allow-shop").replace("[other]", "[shop]");
    mesh.set_policy("policy.yaml", &allow_shop, "shop/allow-shop", true).await;
    mesh.wait_policy("shop/allow-other", false).await;
    assert!(reaches(&mesh, "client", server).await, "a matching ALLOW allows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_rejects_plaintext_and_permissive_accepts_it_with_policy_applied() {
    let mesh = Mesh::start(&[]).await;
    mesh.serve_echo("server", APP_PORT).await;
    let server = addr(&mesh, "server", APP_PORT);
    let outsider_ip = mesh.spec("outsider").ip.to_string();

    assert!(reaches(&mesh, "outsider", server).await, "PERMISSIVE (default): plaintext from outside the mesh accepted");
    let text = wait_metric(
        &mesh,
        "node-b",
        "istio_tcp_connections_opened_total",
        &[("reporter", "destination"), ("connection_security_policy", "unknown"), ("destination_workload", "server")],
        1.0,
    )
    .await;
    assert!(text.contains("istio_tcp_connections_opened_total"), "{text}");

    let allow_mesh_only = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-client, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]}]
"#;
    mesh.set_policy("policy.yaml", allow_mesh_only, "shop/allow-client", true).await;
    assert!(!reaches(&mesh, "outsider", server).await, "policy applies to plaintext (no identity: no match)");
    assert!(reaches(&mesh, "client", server).await, "the mesh client is allowed");

    let allow_ip = format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: allow-ip, namespace: shop}}\n\
         spec:\n  selector: {{matchLabels: {{app: server}}}}\n  rules: [{{from: [{{source: {{ipBlocks: [{outsider_ip}/32]}}}}]}}]\n"
    );
    mesh.set_policy("policy.yaml", &allow_ip, "shop/allow-ip", true).await;
    assert!(reaches(&mesh, "outsider", server).await, "policy matches the plaintext source IP");

    let strict = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {mtls: {mode: STRICT}}
"#;
    mesh.set_policy("strict.yaml", strict, "istio-system/istio_converted_static_strict", true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while reaches(&mesh, "outsider", server).await {
        assert!(tokio::time::Instant::now() < deadline, "STRICT applied in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Completely: not even the first bytes reach the application.
    // (The reset can arrive before the connect even returns.)
    if let Ok(mut stream) = mesh.connect("outsider", server).await {
        let _ = stream.write_all(b"secret").await;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("closed promptly");
        assert!(matches!(read, Ok(0) | Err(_)), "STRICT: nothing echoed back: {read:?}");
    }
    assert!(!reaches(&mesh, "outsider", server).await, "STRICT rejects plaintext");
    let allow_both = format!("{allow_ip}---\n{allow_mesh_only}");
    mesh.set_policy("policy.yaml", &allow_both, "shop/allow-client", true).await;
    assert!(reaches(&mesh, "client", server).await, "STRICT still accepts mTLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_to_a_destination_outside_the_mesh() {
    let mesh = Mesh::start(&[]).await;
    mesh.serve_echo("outsider", 9090).await;
    let answer = mesh.exchange("client", addr(&mesh, "outsider", 9090), b"plain").await.expect("passthrough");
    assert_eq!(answer, b"plain");
    let labels = [
        ("reporter", "source"),
        ("destination_workload", "outsider"),
        ("connection_security_policy", "unknown"),
        ("source_principal", CLIENT),
    ];
    wait_metric(&mesh, "node-a", "istio_tcp_connections_closed_total", &labels, 1.0).await;
    assert_eq!(mesh.ztunnel("node-a").proxy.pool.connections(), 0, "no HBONE for a non-mesh destination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_are_reused() {
    let mesh = Mesh::start(&[]).await;
    mesh.serve_echo("server", APP_PORT).await;
    let server = addr(&mesh, "server", APP_PORT);
    for i in 0..5 {
        let message = format!("sequential {i}");
        assert_eq!(mesh.exchange("client", server, message.as_bytes()).await.unwrap(), message.as_bytes());
    }
    let concurrent = (0..10).map(|i| {
        let mesh = &mesh;
        async move {
            let message = format!("concurrent {i}");
            assert_eq!(mesh.exchange("client", vip(), message.as_bytes()).await.unwrap(), message.as_bytes());
        }
    });
    futures::future::join_all(concurrent).await;
    assert_eq!(mesh.ztunnel("node-a").proxy.pool.connections(), 1, "15 streams over one HBONE connection");
    let labels = [("reporter", "destination"), ("source_principal", CLIENT)];
    wait_metric(&mesh, "node-b", "istio_tcp_connections_opened_total", &labels, 15.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_traffic_without_dropping_connections() {
    let mesh = Mesh::start_with(default_pods(), &[], |config| config.cert_ttl = Duration::from_secs(4)).await;
    mesh.serve_echo("server", APP_PORT).await;
    let client_identity: ambient::model::Identity = CLIENT.parse().unwrap();
    let certs = &mesh.ztunnel("node-a").proxy.certs;
    let first = certs.fetch(&client_identity).await.expect("client certificate");

    let mut stream = mesh.connect("client", addr(&mesh, "server", APP_PORT)).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let message = format!("round {rounds}\n");
        stream.write_all(message.as_bytes()).await.expect("the long connection stays up");
        let mut answer = vec![0u8; message.len()];
        tokio::time::timeout(WAIT, stream.read_exact(&mut answer)).await.expect("echo in time").expect("echo");
        assert_eq!(answer, message.as_bytes());
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let current = certs.fetch(&client_identity).await.expect("client certificate");
    assert_ne!(first.leaf(), current.leaf(), "the certificate was renewed during the traffic");
    assert!(current.not_after() > first.not_after());
    assert!(rounds > 20, "traffic flowed throughout: {rounds} rounds");
    assert!(reaches(&mesh, "client", vip()).await, "new connections use the new certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_keeps_flowing_through_a_control_plane_outage_and_xds_reconnects() {
    let mut mesh = Mesh::start(&[]).await;
    mesh.serve_echo("server", APP_PORT).await;
    mesh.serve_echo("local-server", APP_PORT).await;
    assert!(reaches(&mesh, "client", vip()).await);
    assert!(reaches(&mesh, "client", addr(&mesh, "local-server", APP_PORT)).await);
    mesh.stop_controlplane().await;
    for _ in 0..3 {
        assert!(reaches(&mesh, "client", vip()).await, "service traffic with the last good config");
        assert!(reaches(&mesh, "client", addr(&mesh, "server", APP_PORT)).await, "pod IP traffic too");
    }
    let (status, _) = cp::get(mesh.ztunnel("node-a").readiness_address(), "/healthz/ready").await;
    assert_eq!(status, 200, "still ready during the outage");

    // Back: both ztunnels reconnect on their own and take new config.
    mesh.restart_controlplane().await;
    let deny = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: shop}
spec: {action: DENY, rules: [{}]}
"#;
    mesh.set_policy("deny.yaml", deny, "shop/deny-all", true).await;
    assert!(!reaches(&mesh, "client", vip()).await, "config from the restarted control plane applies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restart_keeps_pods_served_and_resends_the_snapshot() {
    let mesh = Mesh::start(&[]).await;
    mesh.serve_echo("server", APP_PORT).await;
    mesh.serve_echo("local-server", APP_PORT).await;
    let ztunnel = mesh.ztunnel("node-a");
    let mut zds = ztunnel.zds_status();
    mesh.restart_agent("node-a", Duration::from_millis(800));
    tokio::time::timeout(WAIT, zds.wait_for(|s| !s.connected)).await.expect("the agent went away").unwrap();
    assert!(reaches(&mesh, "client", vip()).await, "pods stay served while the agent is away");
    assert!(reaches(&mesh, "server", addr(&mesh, "local-server", APP_PORT)).await, "inbound too");
    tokio::time::timeout(WAIT, zds.wait_for(|s| s.connected && s.snapshot_received))
        .await
        .expect("ztunnel reconnects and receives the snapshot")
        .unwrap();
    assert_eq!(*ztunnel.pods.count().borrow(), 2, "the snapshot keeps both pods");
    assert!(reaches(&mesh, "client", vip()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_pod_stops_being_served_and_its_connections_drain() {
    let drain = Duration::from_secs(2);
    let mesh = Mesh::start_with(default_pods(), &[], |config| config.drain_timeout = drain).await;
    mesh.serve_echo("local-server", APP_PORT).await;
    let local = addr(&mesh, "local-server", APP_PORT);
    assert!(reaches(&mesh, "client", local).await);
    let mut open = mesh.connect("client", local).await.unwrap();
    let echo = async |stream: &mut tokio::net::TcpStream| -> bool {
        let mut buf = [0u8; 5];
        stream.write_all(b"alive").await.is_ok()
            && matches!(tokio::time::timeout(WAIT, stream.read_exact(&mut buf)).await, Ok(Ok(_)))
    };
    assert!(echo(&mut open).await);

    mesh.delete_pod("local-server");
    let mut count = mesh.ztunnel("node-a").pods.count();
    tokio::time::timeout(WAIT, count.wait_for(|c| *c == 1)).await.expect("pod removed in time").unwrap();
    let removed = tokio::time::Instant::now();
    // New connections stop at once (listeners closed, pooled HBONE connection told GOAWAY)...
    while reaches(&mesh, "client", local).await {
        assert!(removed.elapsed() < Duration::from_secs(1), "new connections refused well before the drain ends");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...while the open one drains, and is cut when the drain time is over.
    assert!(echo(&mut open).await, "an open connection keeps working during the drain");
    tokio::time::sleep(drain + Duration::from_millis(500)).await;
    assert!(!echo(&mut open).await, "cut after the drain time");
}

#[path = "ztunnel/hostile.rs"]
mod hostile;
