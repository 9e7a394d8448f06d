//! Security end to end, applied live by editing the mesh's files: ALLOW and DENY by principal,
//! namespace and port; STRICT against plaintext from a pod outside the mesh and PERMISSIVE letting
//! it in with policies still applied; passthrough from the mesh to a pod outside it; a pod
//! labelled out of the mesh.

use super::driver::*;

const CLIENT: &str = "spiffe://cluster.local/ns/mesh/sa/client";
const LISTING: &str = "Directory listing";

/// Namespace `mesh` (enrolled): `client` on node-1, `api` on node-2 serving HTTP on 8080
/// (service port 80) and 9090 (service port 9090).
const MESH: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: mesh, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: mesh}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: api, namespace: mesh}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: mesh, labels: {app: client}}
spec:
  serviceAccountName: client
  nodeName: node-1
  containers:
  - {name: shell, command: [sleep, infinity]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: mesh, labels: {app: api}}
spec:
  serviceAccountName: api
  nodeName: node-2
  containers:
  - name: http
    command: [python3, -m, http.server, "8080"]
    ports: [{name: http, containerPort: 8080}]
  - name: admin
    command: [python3, -m, http.server, "9090"]
    ports: [{name: admin, containerPort: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: mesh}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: admin, port: 9090, targetPort: admin}
"#;

/// Namespace `team` (enrolled): `visitor` on node-1, another identity in another namespace.
const TEAM: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: visitor, namespace: team}
---
apiVersion: v1
kind: Pod
metadata: {name: visitor, namespace: team}
spec:
  serviceAccountName: visitor
  nodeName: node-1
  containers:
  - {name: shell, command: [sleep, infinity]}
"#;

/// Namespace `plain`, not in the mesh: `outsider` on node-1 serves HTTP (service `web`) and
/// curls without an identity.
const PLAIN: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Pod
metadata: {name: outsider, namespace: plain, labels: {app: outsider}}
spec:
  nodeName: node-1
  containers:
  - name: http
    command: [python3, -m, http.server, "8080"]
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: plain}
spec:
  selector: {app: outsider}
  ports: [{port: 80, targetPort: 8080}]
"#;

/// A pod of the enrolled namespace `mesh` on node-2, labelled out of the mesh when `labels`
/// says so.
fn optout(labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: optout, namespace: mesh, labels: {{app: optout{labels}}}}}\n\
         spec:\n  nodeName: node-2\n  containers:\n  - {{name: http, command: [python3, -m, http.server, \"8080\"], ports: [{{containerPort: 8080}}]}}\n"
    )
}

/// An AuthorizationPolicy on the `api` pod.
fn api_policy(name: &str, action: &str, rule: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: mesh}}\n\
         spec:\n  selector: {{matchLabels: {{app: api}}}}\n  action: {action}\n  rules: [{rule}]\n"
    )
}

fn peer_authentication(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: mesh}}\n\
         spec: {{mtls: {{mode: {mode}}}}}\n"
    )
}

const API: &str = "http://api.mesh/";
const API_ADMIN: &str = "http://api.mesh:9090/";

#[test]
fn allow_and_deny_by_principal_namespace_and_port_apply_and_go_live() {
    let mesh = LocalMesh::up(&[("mesh.yaml", MESH), ("team.yaml", TEAM)], 2);
    let client = |url| mesh.curl("client", "mesh", url);
    let visitor = |url| mesh.curl("visitor", "team", url);
    mesh.wait_reachable("client", "mesh", API, LISTING);
    mesh.wait_reachable("client", "mesh", API_ADMIN, LISTING);
    mesh.wait_reachable("visitor", "team", API, LISTING);

    // ALLOW by principal: only the client's identity.
    let rule = "{from: [{source: {principals: [cluster.local/ns/mesh/sa/client]}}]}";
    mesh.write_file("policy.yaml", &api_policy("allow-client", "ALLOW", rule));
    mesh.wait_refused("visitor", "team", API);
    assert!(client(API).is_ok(), "the allowed principal still gets through");

    // ALLOW by namespace: only `team`.
    let rule = "{from: [{source: {namespaces: [team]}}]}";
    mesh.write_file("policy.yaml", &api_policy("allow-team", "ALLOW", rule));
    mesh.wait_refused("client", "mesh", API);
    mesh.wait_reachable("visitor", "team", API, LISTING);

    // ALLOW by port: 8080 (service port 80) only; 9090 is refused to everyone.
    let rule = "{to: [{operation: {ports: [\"8080\"]}}]}";
    mesh.write_file("policy.yaml", &api_policy("allow-http", "ALLOW", rule));
    mesh.wait_reachable("client", "mesh", API, LISTING);
    mesh.wait_refused("client", "mesh", API_ADMIN);
    assert!(visitor(API_ADMIN).is_err(), "the port rule is not about who asks");

    // Removing the file removes the policy.
    mesh.remove_file("policy.yaml");
    mesh.wait_reachable("client", "mesh", API_ADMIN, LISTING);

    // DENY by principal: the visitor only.
    let rule = "{from: [{source: {principals: [cluster.local/ns/team/sa/visitor]}}]}";
    mesh.write_file("deny.yaml", &api_policy("deny-visitor", "DENY", rule));
    mesh.wait_refused("visitor", "team", API);
    assert!(client(API).is_ok(), "a DENY for someone else does not apply");

    // DENY by namespace: `mesh`, so the client, and no longer the visitor.
    let rule = "{from: [{source: {namespaces: [mesh]}}]}";
    mesh.write_file("deny.yaml", &api_policy("deny-mesh", "DENY", rule));
    mesh.wait_refused("client", "mesh", API);
    mesh.wait_reachable("visitor", "team", API, LISTING);

    // DENY by port: 9090 for everyone, 8080 open.
    let rule = "{to: [{operation: {ports: [\"9090\"]}}]}";
    mesh.write_file("deny.yaml", &api_policy("deny-admin", "DENY", rule));
    mesh.wait_reachable("client", "mesh", API, LISTING);
    mesh.wait_refused("client", "mesh", API_ADMIN);
    assert!(visitor(API_ADMIN).is_err(), "denied to the visitor too");
    assert!(visitor(API).is_ok(), "the other port stays open");

    mesh.remove_file("deny.yaml");
    mesh.wait_reachable("visitor", "team", API_ADMIN, LISTING);
    // Each container of the pod has its own log.
    let admin_log = mesh.local(&["logs", "api", "-n", "mesh", "-c", "admin"]);
    let admin_log = String::from_utf8_lossy(&admin_log.stdout);
    assert!(admin_log.contains("\"GET / HTTP/1.1\" 200"), "the admin container's log:\n{admin_log}");
    let text = mesh.metrics("ztunnel/node-2");
    assert!(sample(&text, "ambient_ztunnel_inbound_denied_total", &[("reason", "policy")]) >= 6.0, "{text}");
}

#[test]
fn strict_permissive_passthrough_and_a_pod_labelled_out_of_the_mesh() {
    let mesh = LocalMesh::up(&[("mesh.yaml", MESH), ("plain.yaml", PLAIN), ("optout.yaml", &optout(""))], 2);
    let state = mesh.state();
    let outsider = state.pod("plain", "outsider").expect("outsider pod");
    assert!(!outsider.enrolled, "namespace `plain` is not in the mesh: {outsider:#?}");
    let outsider_ip = outsider.ip.expect("outsider IP");
    let api_ip = state.pod("mesh", "api").and_then(|p| p.ip).expect("api IP");
    let api_pod = format!("http://{api_ip}:8080/");

    // PERMISSIVE (the default): plaintext from outside the mesh, by service VIP and by pod IP.
    mesh.wait_reachable("outsider", "plain", API, LISTING);
    mesh.wait_reachable("outsider", "plain", &api_pod, LISTING);
    let plaintext =
        [("reporter", "destination"), ("connection_security_policy", "unknown"), ("destination_workload", "api")];
    mesh.wait_metric("ztunnel/node-2", "istio_tcp_connections_opened_total", &plaintext, 2.0);

    // Policies still apply to plaintext: no identity matches no principal...
    let only_client = "{from: [{source: {principals: [cluster.local/ns/mesh/sa/client]}}]}";
    mesh.write_file("policy.yaml", &api_policy("allow-client", "ALLOW", only_client));
    mesh.wait_refused("outsider", "plain", &api_pod);
    mesh.wait_reachable("client", "mesh", API, LISTING);
    // ...while its source address can match.
    let by_ip = format!("{{from: [{{source: {{ipBlocks: [\"{outsider_ip}/32\"]}}}}]}}");
    let allow_both = format!(
        "{}---\n{}",
        api_policy("allow-client", "ALLOW", only_client),
        api_policy("allow-outsider", "ALLOW", &by_ip)
    );
    mesh.write_file("policy.yaml", &allow_both);
    mesh.wait_reachable("outsider", "plain", &api_pod, LISTING);

    // STRICT: plaintext refused even though a policy allows its address; mTLS still accepted.
    mesh.write_file("peer.yaml", &peer_authentication("STRICT"));
    mesh.wait_refused("outsider", "plain", &api_pod);
    assert!(mesh.curl("outsider", "plain", API).is_err(), "through the service VIP too");
    assert!(mesh.curl("client", "mesh", API).is_ok(), "STRICT accepts the mesh client");
    let text = mesh.metrics("ztunnel/node-2");
    assert!(sample(&text, "ambient_ztunnel_inbound_denied_total", &[]) >= 1.0, "{text}");

    // PERMISSIVE again, said explicitly: plaintext admitted, by the policy on its address.
    mesh.write_file("peer.yaml", &peer_authentication("PERMISSIVE"));
    mesh.wait_reachable("outsider", "plain", &api_pod, LISTING);
    mesh.remove_file("policy.yaml");

    // Passthrough: from the mesh to a pod outside it, plain TCP, reported by the source only.
    mesh.wait_reachable("client", "mesh", "http://web.plain/", LISTING);
    mesh.wait_reachable("client", "mesh", &format!("http://{outsider_ip}:8080/"), LISTING);
    let passthrough = [
        ("reporter", "source"),
        ("source_principal", CLIENT),
        ("destination_workload", "outsider"),
        ("connection_security_policy", "unknown"),
    ];
    mesh.wait_metric("ztunnel/node-1", "istio_tcp_connections_opened_total", &passthrough, 2.0);

    // A pod in the mesh, then labelled out of it (`istio.io/dataplane-mode: none`), live.
    let optout_ip = mesh.state().pod("mesh", "optout").and_then(|p| p.ip).expect("optout IP");
    let optout_url = format!("http://{optout_ip}:8080/");
    let pod = |state: &ambient::local::state::MeshState| state.pod("mesh", "optout").cloned();
    assert!(pod(&mesh.state()).is_some_and(|p| p.enrolled), "enrolled with its namespace");
    mesh.wait_reachable("client", "mesh", &optout_url, LISTING);
    let inbound =
        [("reporter", "destination"), ("destination_workload", "optout"), ("connection_security_policy", "mutual_tls")];
    mesh.wait_metric("ztunnel/node-2", "istio_tcp_connections_opened_total", &inbound, 1.0);

    mesh.write_file("optout.yaml", &optout(", istio.io/dataplane-mode: none"));
    wait_until(SETTLE, "optout is no longer enrolled", || pod(&mesh.state()).is_some_and(|p| !p.enrolled && p.ready));
    // The client's ztunnel sends it plaintext (the control plane says so)...
    let outbound =
        [("reporter", "source"), ("destination_workload", "optout"), ("connection_security_policy", "unknown")];
    wait_until_or(SETTLE, "client's ztunnel passes traffic to optout through in plaintext", || {
        let _ = mesh.curl("client", "mesh", &optout_url);
        let text = mesh.metrics("ztunnel/node-1");
        (sample(&text, "istio_tcp_connections_opened_total", &outbound) >= 1.0).then_some(()).ok_or(text)
    });
    // ...and node-2's ztunnel no longer captures it (the pod's redirection is gone).
    let to_optout = |mesh: &LocalMesh| {
        let text = mesh.metrics("ztunnel/node-2");
        sample(&text, "istio_tcp_connections_opened_total", &[("destination_workload", "optout")])
    };
    wait_until(SETTLE, "a connection to optout no longer passes node-2's ztunnel", || {
        let before = to_optout(&mesh);
        let reached = mesh.curl("client", "mesh", &optout_url).is_ok_and(|body| body.contains(LISTING));
        reached && to_optout(&mesh) == before
    });
}
