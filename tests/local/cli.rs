//! The commands around a mesh on one node: `up` with a broken document (reported with its file
//! and line, the rest started), restart policies, `status`, `logs` of a pod, `exec`'s exit code,
//! and `down` leaving nothing behind — not even a process `exec` left running in a pod; and
//! `up` without root saying so.

use std::time::{Duration, Instant};

use super::driver::*;

const GOOD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: cli, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: shell, namespace: cli}
spec:
  containers:
  - {name: shell, command: [sleep, infinity]}
---
apiVersion: v1
kind: Pod
metadata: {name: printer, namespace: cli}
spec:
  containers:
  - name: printer
    command: [sh, -c]
    args: ["echo hello from $GREETER; exec sleep infinity"]
    env: [{name: GREETER, value: printer}]
---
apiVersion: v1
kind: Pod
metadata: {name: oneshot, namespace: cli}
spec:
  restartPolicy: Never
  containers:
  - {name: once, command: [sh, -c, "echo done"]}
"#;

/// A pod whose first run fails (exit 3) and whose second runs on: it is restarted once. The
/// marker file tells the runs apart.
fn flaky(marker: &std::path::Path) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: flaky, namespace: cli}}\nspec:\n  containers:\n  - name: main\n    \
         command: [sh, -c, 'if [ -e \"$MARK\" ]; then exec sleep infinity; fi; touch \"$MARK\"; exit 3']\n    \
         env: [{{name: MARK, value: \"{}\"}}]\n",
        marker.display()
    )
}

/// A good pod, then a pod whose `containers` is not a list: the second document spans lines
/// 11 to 17 (the field itself is on line 17).
const BROKEN: &str = "apiVersion: v1
kind: Pod
metadata:
  name: survivor
  namespace: cli
spec:
  containers:
  - name: main
    command: [sleep, infinity]
---
apiVersion: v1
kind: Pod
metadata:
  name: broken
  namespace: cli
spec:
  containers: not a list
";
const BROKEN_LINES: std::ops::RangeInclusive<u32> = 11..=17;

/// The `broken.yaml:<line>` mentions in `text`, with their line numbers.
fn broken_lines(text: &str) -> Vec<u32> {
    text.match_indices("broken.yaml:")
        .filter_map(|(at, found)| {
            let digits: String = text[at + found.len()..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// An `ambient local exec` the test started, ended if the test fails before it returns.
struct Stray(std::process::Child);

impl Drop for Stray {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_broken_document_is_reported_the_rest_runs_and_down_leaves_nothing() {
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let flaky = flaky(&scratch.path().join("ran-once"));
    let mut mesh = LocalMesh::up(&[("good.yaml", GOOD), ("broken.yaml", BROKEN), ("flaky.yaml", &flaky)], 1);

    // `up` said which file and line, and started everything else.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&mesh.up_output.stdout),
        String::from_utf8_lossy(&mesh.up_output.stderr)
    );
    let lines = broken_lines(&said);
    assert!(
        lines.iter().any(|l| BROKEN_LINES.contains(l)),
        "`up` reports broken.yaml with a line in {BROKEN_LINES:?}:\n{said}"
    );
    let state = mesh.state();
    assert!(
        state.problems.iter().any(|p| broken_lines(p).iter().any(|l| BROKEN_LINES.contains(l))),
        "the state file keeps the problem: {:?}",
        state.problems
    );
    assert!(state.pod("cli", "broken").is_none(), "the broken pod is not started: {state:#?}");
    for name in ["survivor", "shell", "printer"] {
        let pod = state.pod("cli", name).unwrap_or_else(|| panic!("{name} runs: {state:#?}"));
        assert!(pod.ready && pod.enrolled && pod.node == "node-1", "{pod:#?}");
    }
    // restartPolicy: the failed first run is restarted (Always, the default); a finished pod
    // with `Never` stays finished.
    let flaky = state.pod("cli", "flaky").unwrap_or_else(|| panic!("flaky runs: {state:#?}"));
    let main = &flaky.containers[0];
    assert!(flaky.ready && main.restarts == 1 && main.last_exit == Some(3), "restarted once after exit 3: {flaky:#?}");
    let oneshot = state.pod("cli", "oneshot").unwrap_or_else(|| panic!("oneshot ran: {state:#?}"));
    let once = &oneshot.containers[0];
    assert!(
        oneshot.phase == "Succeeded" && once.restarts == 0 && once.last_exit == Some(0),
        "ran once and succeeded: {oneshot:#?}"
    );
    let status = mesh.local(&["status"]);
    assert!(status.status.success(), "{}", describe(&status));
    let status_text = String::from_utf8_lossy(&status.stdout);
    for expected in ["survivor", "shell", "printer", "controlplane", "ztunnel/node-1", "cni/node-1"] {
        assert!(status_text.contains(expected), "`status` shows {expected}:\n{status_text}");
    }

    // `logs` shows what the pod printed (its command, args and env as written).
    wait_until(SETTLE, "the printer's output is in its log", || {
        let output = mesh.local(&["logs", "printer", "-n", "cli"]);
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("hello from printer")
    });

    // `exec` passes the exit code through, and fails cleanly for a pod that does not exist.
    let output = mesh.exec("shell", "cli", &["sh", "-c", "exit 7"]);
    assert_eq!(output.status.code(), Some(7), "{}", describe(&output));
    let output = mesh.exec("nowhere", "cli", &["true"]);
    assert!(!output.status.success(), "no such pod: {}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere"), "names the pod: {}", describe(&output));

    // A process the mesh did not start, still running in a pod when `down` comes.
    let shell_netns = mesh.state().pod("cli", "shell").and_then(|p| p.netns.clone()).expect("shell netns");
    // (Short enough to end on its own should the test fail before `down`.)
    let mut stray = Stray(mesh.spawn_exec("shell", "cli", &["sleep", "120"]));
    wait_until(SETTLE, "the stray sleep runs in the pod", || {
        let inode = ambient::sys::netns::Netns::open(&std::path::Path::new("/var/run/netns").join(&shell_netns))
            .map(|ns| ns.inode())
            .expect("the pod's namespace");
        ambient::sys::process::processes_in_netns(inode).len() >= 2
    });

    mesh.down_leaving_nothing();

    // The `exec` whose command `down` ended returns on its own.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stray.0.try_wait().expect("wait for exec").is_none() {
        if Instant::now() > deadline {
            panic!("`ambient local exec` did not return after `down` ended its command");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_without_root_says_so_and_creates_nothing() {
    // As the unprivileged user `nobody` (setpriv is util-linux, on every Debian machine).
    let dir = tempfile::tempdir().expect("a temporary folder");
    let state = dir.path().join("state");
    let mut command = std::process::Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", ambient_bin(), "local", "up"])
        .arg("-f")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo"))
        .arg("--state-dir")
        .arg(&state);
    let output = run(&mut command, std::time::Duration::from_secs(30));
    assert!(!output.status.success(), "`up` refuses to run without root: {}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs root"), "and says why: {}", describe(&output));
    assert!(!state.exists(), "nothing was created");
}
