//! The mesh living through changes and failures: a pod added and removed by its file, the
//! control plane held down then killed (traffic keeps flowing; the runtime restarts it and new
//! policy applies), a ztunnel killed (restarted, pods back in the mesh), and finally the runtime
//! itself killed, after which `down` still removes everything from the state file.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::driver::*;

const DEMO: &str = include_str!("../../examples/demo/demo.yaml");
const CLIENT: &str = "spiffe://cluster.local/ns/demo/sa/client";
const LISTING: &str = "Directory listing";

/// Once the control plane is back, ztunnel's xDS reconnect backoff (up to 15 s between tries)
/// adds to the time a change takes.
const RECONNECT: Duration = Duration::from_secs(25);

const LATE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: late, namespace: demo, labels: {app: late}}
spec:
  nodeName: node-2
  containers:
  - {name: http, command: [python3, -m, http.server, "8080"], ports: [{containerPort: 8080}]}
"#;

const DENY_ALL: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: demo}
spec: {action: DENY, rules: [{}]}
"#;

/// Waits until the runtime has replaced the component's `old` process and counted the restart.
fn wait_restarted(mesh: &LocalMesh, name: &str, old: ambient::sys::process::ProcessRecord, restarts_before: u32) {
    wait_until_or(SETTLE, &format!("the runtime restarts {name}"), || {
        let state = mesh.state();
        let component = state.component(name).ok_or_else(|| format!("{name} missing: {state:#?}"))?;
        match component.process {
            Some(new) if new != old && new.is_alive() && component.restarts > restarts_before => Ok(()),
            _ => Err(format!("{component:#?}")),
        }
    });
}

#[test]
fn pods_come_and_go_and_the_mesh_survives_its_components_dying() {
    let mut mesh = LocalMesh::up(&[("demo.yaml", DEMO)], 2);
    mesh.wait_reachable("client", "demo", "http://server/", LISTING);
    let server_ip = mesh.state().pod("demo", "server").and_then(|p| p.ip).expect("server IP");
    let server_pod = format!("http://{server_ip}:8080/");

    // A pod added by a new file starts, joins the mesh and is reachable...
    mesh.write_file("late.yaml", LATE);
    let mut late = None;
    wait_until_or(SETTLE, "the new pod runs", || {
        let state = mesh.state();
        let pod = state.pod("demo", "late").cloned();
        match pod {
            Some(p) if p.phase == "Running" && p.ready && p.ip.is_some() => {
                late = Some(p);
                Ok(())
            }
            other => Err(format!("{other:#?}")),
        }
    });
    let late = late.expect("checked above");
    assert!(late.enrolled, "in the enrolled namespace: {late:#?}");
    assert_eq!(late.node, "node-2");
    let netns = late.netns.clone().expect("a network namespace");
    assert!(netns_exists(&netns), "{netns} exists");
    let late_url = format!("http://{}:8080/", late.ip.expect("checked"));
    mesh.wait_reachable("client", "demo", &late_url, LISTING);
    let inbound = [("reporter", "destination"), ("destination_workload", "late"), ("source_principal", CLIENT)];
    mesh.wait_metric("ztunnel/node-2", "istio_tcp_connections_opened_total", &inbound, 1.0);

    // ...and removing the file stops it and removes its namespace.
    mesh.remove_file("late.yaml");
    wait_until(SETTLE, "the removed pod is gone", || {
        mesh.state().pod("demo", "late").is_none() && !netns_exists(&netns)
    });
    for container in &late.containers {
        let process = container.process.expect("the container ran");
        assert!(!process.is_alive(), "{}'s process {} stopped", container.name, process.pid);
    }
    assert!(mesh.curl("client", "demo", &late_url).is_err(), "nothing answers at the removed pod's address");

    // The control plane held down (SIGSTOP): traffic keeps flowing on the config ztunnels have.
    let controlplane = mesh.component_process("controlplane");
    let restarts = mesh.state().component("controlplane").expect("controlplane").restarts;
    assert!(controlplane.signal(Signal::SIGSTOP), "the control plane runs");
    for _ in 0..3 {
        assert!(
            mesh.curl("client", "demo", "http://server/").is_ok(),
            "service traffic while the control plane is down"
        );
        assert!(mesh.curl("client", "demo", &server_pod).is_ok(), "pod IP traffic too");
    }
    // Killed: the runtime starts a new one, and config changes apply again.
    assert!(controlplane.signal(Signal::SIGKILL), "the stopped control plane is still ours to kill");
    controlplane.signal(Signal::SIGCONT);
    wait_restarted(&mesh, "controlplane", controlplane, restarts);
    assert!(mesh.curl("client", "demo", "http://server/").is_ok(), "traffic right after the restart");
    mesh.write_file("deny.yaml", DENY_ALL);
    wait_until(RECONNECT, "a policy written after the restart applies", || {
        mesh.curl("client", "demo", "http://server/").is_err()
    });
    mesh.remove_file("deny.yaml");
    mesh.wait_reachable("client", "demo", "http://server/", LISTING);

    // The server's ztunnel killed: restarted, and the server pod is back in the mesh (the new
    // process's counters start at zero, so any mTLS connection counted is one it served).
    let ztunnel = mesh.component_process("ztunnel/node-2");
    let restarts = mesh.state().component("ztunnel/node-2").expect("ztunnel/node-2").restarts;
    assert!(ztunnel.signal(Signal::SIGKILL), "ztunnel/node-2 runs");
    wait_restarted(&mesh, "ztunnel/node-2", ztunnel, restarts);
    mesh.wait_reachable("client", "demo", "http://server/", LISTING);
    mesh.wait_reachable("client", "demo", &server_pod, LISTING);
    let hbone =
        [("reporter", "destination"), ("connection_security_policy", "mutual_tls"), ("source_principal", CLIENT)];
    mesh.wait_metric("ztunnel/node-2", "istio_tcp_connections_opened_total", &hbone, 2.0);
    let text = mesh.metrics("ztunnel/node-2");
    assert!(sample(&text, "ambient_ztunnel_pods", &[]) >= 1.0, "the server pod is served again: {text}");

    // The runtime itself killed, as in a crash: `down` cleans up from the state file alone.
    let runtime = mesh.state().runtime.expect("the runtime is recorded");
    assert!(runtime.signal(Signal::SIGKILL), "the runtime runs");
    wait_until(SETTLE, "the runtime is gone", || !runtime.is_alive());
    mesh.down_leaving_nothing();
}
