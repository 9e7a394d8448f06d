//! The README's walkthrough on the shipped demo (`examples/demo/`), command for command: curl
//! through the mesh across two nodes, the SPIFFE identities in both ztunnels' metrics, a DENY
//! written live and removed, then `status`, `logs`, `exec` and `metrics` as a user runs them.

use super::driver::*;

const DEMO: &str = include_str!("../../examples/demo/demo.yaml");
const POLICY: &str = include_str!("../../examples/demo/policy.yaml");

const CLIENT: &str = "spiffe://cluster.local/ns/demo/sa/client";
const SERVER: &str = "spiffe://cluster.local/ns/demo/sa/server";
/// What `python3 -m http.server` answers on `/`.
const LISTING: &str = "Directory listing";

/// The DENY of the README (docs/local.md), written into the demo folder while the mesh runs.
const DENY_CLIENT: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: server-deny-client
  namespace: demo
spec:
  selector:
    matchLabels:
      app: server
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/demo/sa/client"]
"#;

#[test]
fn the_demo_runs_across_two_nodes_with_identities_and_a_live_deny() {
    let mesh = LocalMesh::up(&[("demo.yaml", DEMO), ("policy.yaml", POLICY)], 2);
    let state = mesh.state();
    assert_eq!(state.nodes, ["node-1", "node-2"], "{state:#?}");
    let server = state.pod("demo", "server").unwrap_or_else(|| panic!("no server pod: {state:#?}"));
    let client = state.pod("demo", "client").unwrap_or_else(|| panic!("no client pod: {state:#?}"));
    assert_eq!((server.node.as_str(), client.node.as_str()), ("node-2", "node-1"), "spec.nodeName is honoured");
    for pod in [server, client] {
        assert!(pod.enrolled && pod.ready && pod.phase == "Running", "enrolled, ready and running: {pod:#?}");
    }
    let server_ip = server.ip.expect("the server has an IP");
    let service = state.services.iter().find(|s| s.namespace == "demo" && s.name == "server").expect("service");
    assert_eq!(service.ports, [80], "{service:#?}");

    // `up` returned once the server listens: the README's first curl works at once.
    let first = mesh.curl("client", "demo", "http://server/");
    assert!(first.as_ref().is_ok_and(|body| body.contains(LISTING)), "the first curl after `up`: {first:?}");

    // Pod -> service by each of its names, and pod -> pod IP, from node-1 to node-2.
    for url in ["http://server/", "http://server.demo/", "http://server.demo.svc.cluster.local/"] {
        mesh.wait_reachable("client", "demo", url, LISTING);
    }
    mesh.wait_reachable("client", "demo", &format!("http://{}/", service.cluster_ip), LISTING);
    mesh.wait_reachable("client", "demo", &format!("http://{server_ip}:8080/"), LISTING);

    // Both ends saw the five connections, with both identities, over mutual TLS.
    let identities = [("source_principal", CLIENT), ("destination_principal", SERVER)];
    let mtls = ("connection_security_policy", "mutual_tls");
    let source = [("reporter", "source"), identities[0], identities[1], mtls];
    let text = mesh.wait_metric("ztunnel/node-1", "istio_tcp_connections_closed_total", &source, 5.0);
    assert!(sample(&text, "istio_tcp_connections_opened_total", &source) >= 5.0, "{text}");
    let via_service = [("reporter", "source"), ("destination_service", "server.demo.svc.cluster.local")];
    assert!(sample(&text, "istio_tcp_connections_opened_total", &via_service) >= 4.0, "{text}");
    let destination = [("reporter", "destination"), identities[0], identities[1], mtls];
    let text = mesh.wait_metric("ztunnel/node-2", "istio_tcp_connections_closed_total", &destination, 5.0);
    let named = [("reporter", "destination"), ("destination_workload", "server"), ("source_workload", "client")];
    assert!(sample(&text, "istio_tcp_connections_opened_total", &named) >= 5.0, "{text}");
    assert!(sample(&text, "istio_tcp_received_bytes_total", &destination) > 0.0, "requests counted: {text}");
    // Only the client talks to the server: readiness checks come from the node, as kubelet's
    // do, not from inside the pod through its own ztunnel (where the policy would refuse them).
    let from_server = [("source_workload", "server")];
    assert_eq!(sample(&text, "istio_tcp_connections_opened_total", &from_server), 0.0, "{text}");

    // A DENY written into the folder takes effect live: the connection is reset, not left hanging.
    mesh.write_file("deny.yaml", DENY_CLIENT);
    let code = mesh.wait_refused("client", "demo", "http://server/");
    assert!(matches!(code, 7 | 52 | 56), "refused at once (reset), not timed out: curl exit {code}");
    assert!(mesh.curl("client", "demo", &format!("http://{server_ip}:8080/")).is_err(), "by pod IP too");
    let text = mesh.metrics("ztunnel/node-2");
    assert!(sample(&text, "ambient_ztunnel_inbound_denied_total", &[("reason", "policy")]) >= 1.0, "{text}");
    mesh.remove_file("deny.yaml");
    mesh.wait_reachable("client", "demo", "http://server/", LISTING);

    // `status`: pods with node, IP, enrolled and ready; components with their health.
    let status = mesh.local(&["status"]);
    assert!(status.status.success(), "{}", describe(&status));
    let status = String::from_utf8_lossy(&status.stdout);
    for expected in [
        "server",
        "client",
        "demo",
        "node-1",
        "node-2",
        &server_ip.to_string(),
        "controlplane",
        "ztunnel/node-2",
        "cni/node-1",
    ] {
        assert!(status.contains(expected), "`status` shows {expected}:\n{status}");
    }

    // `logs`: http.server logs every request on stderr, which the runtime keeps.
    let mut logs = String::new();
    wait_until(SETTLE, "the server's log shows the requests", || {
        let output = mesh.local(&["logs", "server", "-n", "demo"]);
        logs = String::from_utf8_lossy(&output.stdout).into_owned();
        output.status.success() && logs.contains("\"GET / HTTP/1.1\" 200")
    });

    // A component's log, by name and node: node-2's ztunnel took the server pod.
    let output = mesh.local(&["logs", "ztunnel", "--node", "node-2"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && text.contains("serving pod"), "ztunnel's log:\n{}", describe(&output));

    // `exec` passes the command's exit code and output through.
    let output = mesh.exec("client", "demo", &["sh", "-c", "echo inside; exit 7"]);
    assert_eq!(output.status.code(), Some(7), "{}", describe(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "inside", "{}", describe(&output));

    // `metrics controlplane`: both ztunnels hold an xDS stream.
    let text = mesh.metrics("controlplane");
    assert!(sample(&text, "ambient_controlplane_xds_connected_clients", &[]) >= 2.0, "{text}");
}
