use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread;

use serde_json::{Value, json};

use super::*;
use crate::cni::protocol::AgentResponse;

fn vars(command: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_IFNAME", "eth0"),
        // The test's own namespace: only ever opened, nothing is installed in it by these tests.
        ("CNI_NETNS", "/proc/self/ns/net"),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-0;K8S_POD_UID=u-1"),
        ("CNI_PATH", "/usr/lib/cni"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

fn prev_result_1_0() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.88.0.5/24", "gateway": "10.88.0.1", "interface": 0},
                {"address": "fd00::5/64", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    })
}

fn conf(version: &str, socket: &Path) -> Vec<u8> {
    json!({
        "cniVersion": version,
        "name": "podnet",
        "type": "ambient-cni",
        "agentSocket": socket,
        "agentTimeoutSeconds": 2,
        "prevResult": prev_result_1_0(),
    })
    .to_string()
    .into_bytes()
}

fn error_of(output: &PluginOutput) -> Value {
    assert_eq!(output.exit_status, 1, "expected an error, got {}", output.stdout);
    serde_json::from_str(&output.stdout).expect("error output is JSON")
}

/// Answers `answers.len()` connections in order and returns the requests it got.
fn stand_in_agent(socket: &Path, answers: Vec<AgentResponse>) -> thread::JoinHandle<Vec<PluginRequest>> {
    let listener = UnixListener::bind(socket).expect("bind stand-in agent");
    thread::spawn(move || {
        answers
            .into_iter()
            .map(|answer| {
                let (stream, _) = listener.accept().expect("accept");
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line).expect("read request");
                let request: PluginRequest = serde_json::from_str(&line).expect("request is protocol JSON");
                (&stream).write_all(format!("{}\n", serde_json::to_string(&answer).unwrap()).as_bytes()).unwrap();
                request
            })
            .collect()
    })
}

#[test]
fn version_lists_supported_versions_in_the_requested_version() {
    let output = run(&vars("VERSION", &[]), br#"{"cniVersion":"0.4.0"}"#);
    assert_eq!(output.exit_status, 0);
    let answer: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(answer, json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}));
}

#[test]
fn garbage_stdin_is_a_decoding_failure_quoting_it() {
    let output = run(&vars("ADD", &[]), b"\x00hello, not json");
    let error = error_of(&output);
    assert_eq!(error["code"], 6);
    assert_eq!(error["cniVersion"], "1.0.0");
    assert!(error["msg"].as_str().unwrap().contains("not JSON"), "{error}");
    assert!(error["details"].as_str().unwrap().contains("hello"), "{error}");
}

#[test]
fn unknown_version_is_incompatible_and_lists_ours() {
    let mut request: Value = serde_json::from_slice(&conf("1.0.0", Path::new("/nonexistent"))).unwrap();
    request["cniVersion"] = json!("9.9.9");
    let error = error_of(&run(&vars("ADD", &[]), request.to_string().as_bytes()));
    assert_eq!(error["code"], 1);
    assert!(error["msg"].as_str().unwrap().contains("\"9.9.9\""), "{error}");
    assert!(error["details"].as_str().unwrap().contains("0.4.0, 1.0.0"), "{error}");
}

#[test]
fn missing_or_unknown_command_is_invalid_environment() {
    let mut no_command = vars("ADD", &[]);
    no_command.remove("CNI_COMMAND");
    let error = error_of(&run(&no_command, &conf("1.0.0", Path::new("/x"))));
    assert_eq!(error["code"], 4);
    assert!(error["msg"].as_str().unwrap().contains("CNI_COMMAND is not set"), "{error}");
    let error = error_of(&run(&vars("GC", &[]), &conf("1.0.0", Path::new("/x"))));
    assert_eq!(error["code"], 4);
    assert!(error["msg"].as_str().unwrap().contains("\"GC\""), "{error}");
}

#[test]
fn malformed_cni_args_name_the_pair() {
    let error = error_of(&run(&vars("ADD", &[("CNI_ARGS", "K8S_POD_NAME=a;oops")]), &conf("1.0.0", Path::new("/x"))));
    assert_eq!(error["code"], 4);
    assert!(error["msg"].as_str().unwrap().contains("\"oops\""), "{error}");
}

#[test]
fn add_without_prev_result_says_it_must_be_chained() {
    let mut request: Value = serde_json::from_slice(&conf("1.0.0", Path::new("/x"))).unwrap();
    request.as_object_mut().unwrap().remove("prevResult");
    let error = error_of(&run(&vars("ADD", &[]), request.to_string().as_bytes()));
    assert_eq!(error["code"], 7);
    assert!(error["details"].as_str().unwrap().contains("chained"), "{error}");
}

#[test]
fn missing_netns_names_the_path() {
    let output = run(&vars("ADD", &[("CNI_NETNS", "/run/netns/no-such-pod")]), &conf("1.0.0", Path::new("/x")));
    let error = error_of(&output);
    assert_eq!(error["code"], 100);
    assert!(error["msg"].as_str().unwrap().contains("/run/netns/no-such-pod"), "{error}");
}

#[test]
fn mistyped_field_names_it() {
    let mut request: Value = serde_json::from_slice(&conf("1.0.0", Path::new("/x"))).unwrap();
    request["agentTimeoutSeconds"] = json!("soon");
    let error = error_of(&run(&vars("ADD", &[]), request.to_string().as_bytes()));
    assert_eq!(error["code"], 7);
    assert!(error["msg"].as_str().unwrap().contains("agentTimeoutSeconds"), "{error}");
}

#[test]
fn dead_agent_is_try_again_later() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    // A socket file nobody listens on (a crashed agent) and no file at all (not started yet).
    drop(UnixListener::bind(&socket).unwrap());
    for path in [socket.clone(), dir.path().join("absent.sock")] {
        let error = error_of(&run(&vars("ADD", &[]), &conf("1.0.0", &path)));
        assert_eq!(error["code"], 11, "{error}");
        assert!(error["msg"].as_str().unwrap().contains(&path.display().to_string()), "{error}");
        assert!(error["details"].as_str().unwrap().contains("ambient cni"), "{error}");
    }
}

#[test]
fn not_enrolled_pod_passes_prev_result_through() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let agent = stand_in_agent(&socket, vec![AgentResponse::Enrolled { enrolled: false }]);
    let output = run(&vars("ADD", &[]), &conf("1.0.0", &socket));
    assert_eq!(output.exit_status, 0, "{}", output.stdout);
    let result: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(result, prev_result_1_0());
    assert_eq!(
        agent.join().unwrap(),
        vec![PluginRequest::Enrolled { namespace: "shop".into(), name: "cart-0".into() }]
    );
}

#[test]
fn agent_error_answer_is_our_code_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let agent = stand_in_agent(&socket, vec![AgentResponse::Error { message: "store not synced".into() }]);
    let error = error_of(&run(&vars("ADD", &[]), &conf("1.0.0", &socket)));
    agent.join().unwrap();
    assert_eq!(error["code"], 101);
    assert!(error["msg"].as_str().unwrap().contains("store not synced"), "{error}");
}

#[test]
fn del_with_dead_agent_and_missing_netns_succeeds() {
    let output =
        run(&vars("DEL", &[("CNI_NETNS", "/run/netns/gone")]), &conf("1.0.0", Path::new("/nonexistent/agent.sock")));
    assert_eq!(output, PluginOutput { stdout: String::new(), exit_status: 0 });
}

#[test]
fn non_kubernetes_container_is_passed_through_without_asking() {
    let output = run(&vars("ADD", &[("CNI_ARGS", "")]), &conf("0.4.0", Path::new("/nonexistent/agent.sock")));
    assert_eq!(output.exit_status, 0, "{}", output.stdout);
    let result: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(result["cniVersion"], "0.4.0");
}

#[test]
fn results_convert_between_versions() {
    let old = result::in_version(&prev_result_1_0(), "0.4.0").unwrap();
    assert_eq!(old["cniVersion"], "0.4.0");
    assert_eq!(old["ips"][0]["version"], "4");
    assert_eq!(old["ips"][1]["version"], "6");
    assert_eq!(old["interfaces"], prev_result_1_0()["interfaces"]);
    let back = result::in_version(&old, "1.0.0").unwrap();
    assert_eq!(back, prev_result_1_0());
}

#[test]
fn pod_ips_come_from_prev_result() {
    let ips = result::pod_ips(&prev_result_1_0()).unwrap();
    assert_eq!(ips, vec!["10.88.0.5".parse::<std::net::IpAddr>().unwrap(), "fd00::5".parse().unwrap()]);
    let error = result::pod_ips(&json!({"ips": [{"address": "10.0.0.1"}]})).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidNetworkConfig);
    assert!(error.msg.contains("ips[0].address"), "{error}");
}

#[test]
fn check_is_refused_before_0_4_0() {
    let error = error_of(&run(&vars("CHECK", &[]), &conf("0.3.1", Path::new("/x"))));
    assert_eq!(error["code"], 1);
    assert_eq!(error["cniVersion"], "0.3.1");
}
