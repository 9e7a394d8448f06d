//! The install manifests: every profile rendered and validated against the Kubernetes 1.33 and
//! CRD schemas (scripts/validate-manifests.py), and the properties a cluster operator relies on:
//! least-privilege RBAC, references that resolve, real `ambient` commands, images from values,
//! byte-identical output, and one clear line for bad values.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use ambient::install::render::{self, build};
use ambient::install::values::{Request, profile_names};
use ambient::install::{INSTALLED_KINDS, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Manifest};
use assert_cmd::Command;
use clap::Parser;
use serde_json::Value;

const PROFILES: &[&str] = &["ambient", "default", "demo", "minimal"];

fn request(profile: &str, sets: &[&str]) -> Request {
    Request { profile: profile.to_string(), files: Vec::new(), sets: sets.iter().map(|s| s.to_string()).collect() }
}

fn render_profile(profile: &str, sets: &[&str]) -> Manifest {
    build(&request(profile, sets)).unwrap_or_else(|e| panic!("profile {profile} {sets:?}: {e}"))
}

fn crd_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/crds");
    let mut files = Vec::new();
    for set in ["istio", "gateway-api"] {
        for entry in std::fs::read_dir(root.join(set)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    files
}

fn id(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn of_kind<'a>(manifest: &'a Manifest, kind: &str) -> Vec<&'a Value> {
    manifest.objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn find<'a>(manifest: &'a Manifest, kind: &str, name: &str) -> Option<&'a Value> {
    manifest.objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// Pod templates of the workloads, with the workload's id.
fn pod_specs(manifest: &Manifest) -> Vec<(String, &Value)> {
    manifest
        .objects
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet")
        .map(|o| (id(o), &o["spec"]["template"]["spec"]))
        .collect()
}

fn containers(pod: &Value) -> Vec<&Value> {
    let mut all: Vec<&Value> = pod["containers"].as_array().map(|c| c.iter().collect()).unwrap_or_default();
    all.extend(pod["initContainers"].as_array().into_iter().flatten());
    all
}

#[test]
fn the_builtin_profiles_are_the_documented_ones() {
    assert_eq!(profile_names(), PROFILES);
}

/// Every profile, and a GKE variant, against the real schemas: strict Kubernetes 1.33 for core
/// kinds, the rendered CRDs for custom resources.
#[test]
fn every_profile_validates_against_the_kubernetes_and_crd_schemas() {
    let mut variants: Vec<(String, Vec<&str>)> = PROFILES.iter().map(|p| (p.to_string(), vec![])).collect();
    variants.push(("ambient".into(), vec!["global.platform=gke", "global.namespace=mesh-system"]));
    variants.push(("demo".into(), vec!["cni.netnsPrefix=", "controlplane.resources.limits.cpu=2"]));
    for (profile, sets) in variants {
        let yaml = render::to_yaml(&render_profile(&profile, &sets));
        match support::validator::validate_yaml(&yaml, &[]) {
            Ok(summary) => assert!(summary.contains(": OK"), "{profile} {sets:?}: {summary}"),
            Err(report) => panic!("profile {profile} {sets:?} does not validate:\n{report}"),
        }
    }
}

/// Users' Istio and Gateway API objects (the model's example fixtures) are accepted by the
/// CRDs install applies: the generated schemas do not reject what Istio accepts.
#[test]
fn users_istio_objects_validate_against_the_installed_crds() {
    let crds = crd_files();
    let crd_refs: Vec<&std::path::Path> = crds.iter().map(PathBuf::as_path).collect();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples");
    let mut checked = 0;
    for name in ["authentication.yaml", "authorization-policy.yaml", "gateway-api.yaml", "service-entry.yaml"] {
        let yaml = std::fs::read_to_string(fixtures.join(name)).unwrap();
        if let Err(report) = support::validator::validate_yaml(&yaml, &crd_refs) {
            panic!("{name} against the rendered CRDs:\n{report}");
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
    // And a wrong type in a field ambient reads is refused by the schema.
    let bad = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: a}\nspec:\n  mtls:\n    mode: SOMETIMES\n";
    let report = support::validator::validate_yaml(bad, &crd_refs).expect_err("an invalid mtls mode is refused");
    assert!(report.contains("spec.mtls.mode"), "{report}");
}

#[test]
fn every_object_is_labelled_namespaced_and_of_a_kind_uninstall_lists() {
    for profile in PROFILES {
        let manifest = render_profile(profile, &[]);
        let mut last_position = 0;
        for object in &manifest.objects {
            assert_eq!(object["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY_VALUE, "{profile}: {}", id(object));
            let position = INSTALLED_KINDS
                .iter()
                .position(|k| object["apiVersion"] == k.api_version && object["kind"] == k.kind)
                .unwrap_or_else(|| panic!("{profile}: {} is not in INSTALLED_KINDS", id(object)));
            assert!(position >= last_position, "{profile}: {} is out of apply order", id(object));
            last_position = position;
            let namespaced = INSTALLED_KINDS[position].namespaced;
            assert_eq!(object["metadata"]["namespace"].is_string(), namespaced, "{profile}: {}", id(object));
            if namespaced {
                assert_eq!(object["metadata"]["namespace"], manifest.namespace.as_str(), "{profile}: {}", id(object));
            }
        }
    }
}

#[test]
fn profiles_hold_the_components_they_promise() {
    let names = |m: &Manifest, kind: &str| -> Vec<String> {
        of_kind(m, kind).iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    let default = render_profile("default", &[]);
    assert_eq!(names(&default, "Deployment"), ["ambient-controlplane"]);
    assert!(names(&default, "DaemonSet").is_empty());
    assert_eq!(names(&default, "PodDisruptionBudget"), ["ambient-controlplane"]);
    assert_eq!(names(&default, "CustomResourceDefinition").len(), 8);
    let ambient = render_profile("ambient", &[]);
    assert_eq!(names(&ambient, "DaemonSet"), ["ztunnel", "ambient-cni"]);
    let minimal = render_profile("minimal", &[]);
    assert!(names(&minimal, "PodDisruptionBudget").is_empty());
    assert!(names(&minimal, "CustomResourceDefinition").iter().all(|n| n.ends_with(".istio.io")));
    let demo = render_profile("demo", &[]);
    assert_eq!(names(&demo, "DaemonSet"), ["ztunnel", "ambient-cni"]);
    assert_eq!(find(&demo, "Deployment", "ambient-controlplane").unwrap()["spec"]["replicas"], 1);
}

/// No `*` anywhere in any rule: every verb, resource and group is named.
#[test]
fn rbac_has_no_wildcards() {
    for profile in PROFILES {
        let manifest = render_profile(profile, &[]);
        for role in manifest.objects.iter().filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role") {
            let rules = role["rules"].as_array().unwrap_or_else(|| panic!("{} has no rules", id(role)));
            assert!(!rules.is_empty(), "{}", id(role));
            for rule in rules {
                for field in ["verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"] {
                    for item in rule[field].as_array().into_iter().flatten() {
                        let item = item.as_str().unwrap();
                        assert!(!item.contains('*'), "{profile}: {} grants {field} {item:?}", id(role));
                    }
                }
                assert!(!rule["verbs"].as_array().unwrap().is_empty(), "{}", id(role));
            }
        }
    }
}

/// (group, resource, verb) triples a role grants.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut all = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    let text = |v: &Value| v.as_str().unwrap().to_string();
                    all.insert((text(group), text(resource), text(verb)));
                }
            }
        }
    }
    all
}

fn watch_grants(kinds: &[ambient::model::Kind]) -> BTreeSet<(String, String, String)> {
    let mut all = BTreeSet::new();
    for &kind in kinds {
        for verb in ["list", "watch"] {
            all.insert((kind.group().to_string(), ambient::config::kube::plural(kind).to_string(), verb.to_string()));
        }
    }
    all
}

/// The ClusterRoles grant exactly what the code reads: the kinds each component watches (list
/// and watch), plus TokenReview for the control plane. A kind added to the code without its
/// grant, or a grant nothing uses, fails here.
#[test]
fn cluster_roles_grant_exactly_what_each_component_watches() {
    let manifest = render_profile("ambient", &[]);
    let mut controlplane = watch_grants(ambient::model::Kind::ALL);
    controlplane.insert(("authentication.k8s.io".into(), "tokenreviews".into(), "create".into()));
    assert_eq!(grants(find(&manifest, "ClusterRole", "ambient-controlplane").unwrap()), controlplane);
    assert_eq!(
        grants(find(&manifest, "ClusterRole", "ambient-cni").unwrap()),
        watch_grants(ambient::cni::agent::WATCHED_KINDS)
    );
    // The namespaced Role: only named objects, except Secret create (which cannot be named).
    let role = find(&manifest, "Role", "ambient-controlplane").unwrap();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        if verbs != ["create"] {
            assert!(rule["resourceNames"].as_array().is_some_and(|n| !n.is_empty()), "{rule}");
        }
    }
    // ztunnel reads nothing from the API: no binding, no mounted token.
    for binding in manifest.objects.iter().filter(|o| o["kind"].as_str().unwrap().ends_with("Binding")) {
        assert!(binding["subjects"].as_array().unwrap().iter().all(|s| s["name"] != "ztunnel"), "{}", id(binding));
    }
    let ztunnel = find(&manifest, "DaemonSet", "ztunnel").unwrap();
    assert_eq!(ztunnel["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
}

/// Every ServiceAccount, ConfigMap, Secret, Role and ClusterRole a workload or binding names is
/// in the output (except what a component creates itself: the CA Secret).
#[test]
fn every_referenced_object_exists_in_the_output() {
    for profile in PROFILES {
        let manifest = render_profile(profile, &[]);
        let exists = |kind: &str, name: &str| find(&manifest, kind, name).is_some();
        let mut checked = 0;
        for (workload, pod) in pod_specs(&manifest) {
            let account =
                pod["serviceAccountName"].as_str().unwrap_or_else(|| panic!("{workload}: no serviceAccountName"));
            assert!(
                exists("ServiceAccount", account),
                "{profile}: {workload} runs as missing ServiceAccount {account}"
            );
            checked += 1;
            for volume in pod["volumes"].as_array().into_iter().flatten() {
                if let Some(name) = volume["configMap"]["name"].as_str() {
                    assert!(exists("ConfigMap", name), "{profile}: {workload} mounts missing ConfigMap {name}");
                    checked += 1;
                }
                if let Some(name) = volume["secret"]["secretName"].as_str() {
                    assert!(exists("Secret", name), "{profile}: {workload} mounts missing Secret {name}");
                }
                for source in volume["projected"]["sources"].as_array().into_iter().flatten() {
                    if let Some(name) = source["configMap"]["name"].as_str() {
                        assert!(exists("ConfigMap", name), "{profile}: {workload} projects missing ConfigMap {name}");
                    }
                    if let Some(name) = source["secret"]["name"].as_str() {
                        assert!(exists("Secret", name), "{profile}: {workload} projects missing Secret {name}");
                    }
                }
            }
            for container in containers(pod) {
                for env in container["env"].as_array().into_iter().flatten() {
                    if let Some(name) = env["valueFrom"]["configMapKeyRef"]["name"].as_str() {
                        assert!(exists("ConfigMap", name), "{profile}: {workload} env from missing ConfigMap {name}");
                    }
                    if let Some(name) = env["valueFrom"]["secretKeyRef"]["name"].as_str() {
                        assert!(exists("Secret", name), "{profile}: {workload} env from missing Secret {name}");
                    }
                }
            }
        }
        for binding in manifest.objects.iter().filter(|o| o["kind"].as_str().unwrap().ends_with("Binding")) {
            let role = &binding["roleRef"];
            assert!(
                exists(role["kind"].as_str().unwrap(), role["name"].as_str().unwrap()),
                "{profile}: {}",
                id(binding)
            );
            for subject in binding["subjects"].as_array().unwrap() {
                assert_eq!(subject["kind"], "ServiceAccount");
                let account = subject["name"].as_str().unwrap();
                assert!(exists("ServiceAccount", account), "{profile}: {} binds missing {account}", id(binding));
                assert_eq!(subject["namespace"], manifest.namespace.as_str());
            }
            checked += 1;
        }
        // Services and the disruption budget select the control plane's pods.
        let pod_labels =
            &find(&manifest, "Deployment", "ambient-controlplane").unwrap()["spec"]["template"]["metadata"]["labels"];
        for selector in of_kind(&manifest, "Service").iter().map(|s| &s["spec"]["selector"]) {
            for (key, value) in selector.as_object().unwrap() {
                assert_eq!(&pod_labels[key], value);
            }
        }
        assert!(checked >= 3, "{profile}: only {checked} references checked");
    }
}

/// Each container runs `ambient <component>` with flags the binary accepts.
#[test]
fn every_container_runs_a_real_ambient_subcommand() {
    let expected = [("ambient-controlplane", "controlplane"), ("ztunnel", "ztunnel"), ("ambient-cni", "cni")];
    let mut seen = BTreeSet::new();
    for profile in PROFILES {
        let manifest = render_profile(profile, &["cni.netnsPrefix="]);
        for (workload, pod) in pod_specs(&manifest) {
            for container in containers(pod) {
                let strings = |v: &Value| -> Vec<String> {
                    v.as_array().into_iter().flatten().map(|s| s.as_str().unwrap().to_string()).collect()
                };
                let command = strings(&container["command"]);
                assert_eq!(command.first().map(String::as_str), Some("ambient"), "{workload}: {command:?}");
                let argv: Vec<String> = command.iter().cloned().chain(strings(&container["args"])).collect();
                let cli = ambient::cli::Cli::try_parse_from(&argv)
                    .unwrap_or_else(|e| panic!("{profile}: {workload} runs {argv:?}, which ambient refuses:\n{e}"));
                assert!(cli.command.is_component(), "{workload}: {argv:?} is not a component entrypoint");
                let name = workload.rsplit('/').next().unwrap();
                let (_, subcommand) = expected.iter().find(|(w, _)| *w == name).unwrap();
                assert_eq!(&argv[1], subcommand, "{workload}");
                seen.insert(subcommand.to_string());
            }
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn images_come_from_hub_and_tag_values() {
    for sets in [
        vec!["global.hub=registry.example:5000/mesh", "global.tag=1.2.3-rc.1"],
        vec!["hub=registry.example:5000/mesh", "tag=1.2.3-rc.1"],
        vec!["values.global.hub=registry.example:5000/mesh", "values.global.tag=1.2.3-rc.1"],
    ] {
        let manifest = render_profile("ambient", &sets);
        let mut count = 0;
        for (workload, pod) in pod_specs(&manifest) {
            for container in containers(pod) {
                assert_eq!(container["image"], "registry.example:5000/mesh/ambient:1.2.3-rc.1", "{workload} {sets:?}");
                count += 1;
            }
        }
        assert_eq!(count, 3);
    }
    let pulled = render_profile("default", &["global.imagePullPolicy=Always"]);
    let pod = &find(&pulled, "Deployment", "ambient-controlplane").unwrap()["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
}

/// The values users set reach the objects: trust domain, log level, CNI paths per platform,
/// resources, namespace.
#[test]
fn set_values_reach_the_objects() {
    let manifest = render_profile(
        "ambient",
        &[
            "meshConfig.trustDomain=corp.example",
            "global.logLevel=debug",
            "cni.cniBinDir=/var/lib/cni/bin",
            "cni.confDir=/etc/kubernetes/cni/net.d",
            "ztunnel.resources.requests.memory=128Mi",
            "global.namespace=mesh-system",
        ],
    );
    assert_eq!(manifest.namespace, "mesh-system");
    let args = |workload: &str, kind: &str| -> Vec<String> {
        find(&manifest, kind, workload).unwrap()["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    for (workload, kind) in
        [("ambient-controlplane", "Deployment"), ("ztunnel", "DaemonSet"), ("ambient-cni", "DaemonSet")]
    {
        let args = args(workload, kind);
        assert!(args.contains(&"--trust-domain=corp.example".to_string()), "{workload}: {args:?}");
        assert!(args.contains(&"--log-level=debug".to_string()), "{workload}: {args:?}");
    }
    assert!(
        args("ztunnel", "DaemonSet")
            .contains(&"--xds-address=https://ambient-controlplane.mesh-system.svc:15012".to_string())
    );
    let cni = &find(&manifest, "DaemonSet", "ambient-cni").unwrap()["spec"]["template"]["spec"];
    let host_paths: Vec<&str> =
        cni["volumes"].as_array().unwrap().iter().filter_map(|v| v["hostPath"]["path"].as_str()).collect();
    assert!(
        host_paths.contains(&"/var/lib/cni/bin") && host_paths.contains(&"/etc/kubernetes/cni/net.d"),
        "{host_paths:?}"
    );
    let ztunnel = &find(&manifest, "DaemonSet", "ztunnel").unwrap()["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(ztunnel["resources"]["requests"]["memory"], "128Mi");

    let gke = render_profile("ambient", &["global.platform=gke"]);
    let cni = &find(&gke, "DaemonSet", "ambient-cni").unwrap()["spec"]["template"]["spec"];
    assert_eq!(cni["volumes"][0]["hostPath"]["path"], "/home/kubernetes/bin");
    assert!(find(&gke, "ResourceQuota", "ambient-node-critical").is_some());
    // An explicit folder wins over the platform's default.
    let gke_own = render_profile("ambient", &["global.platform=gke", "cni.binDir=/opt/custom/bin"]);
    let cni = &find(&gke_own, "DaemonSet", "ambient-cni").unwrap()["spec"]["template"]["spec"];
    assert_eq!(cni["volumes"][0]["hostPath"]["path"], "/opt/custom/bin");
    assert!(find(&render_profile("ambient", &[]), "ResourceQuota", "ambient-node-critical").is_none());
}

/// Capabilities are the documented minimum: none for the control plane (non-root, read-only
/// root), NET_ADMIN and SYS_ADMIN for the node components, SYS_PTRACE and the host PID
/// namespace only when the CNI agent must scan processes.
#[test]
fn each_component_has_only_the_capabilities_it_needs() {
    let caps = |m: &Manifest, kind: &str, name: &str| -> (Vec<String>, Value) {
        let pod = &find(m, kind, name).unwrap()["spec"]["template"]["spec"];
        let context = &pod["containers"][0]["securityContext"];
        assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]), "{name}");
        assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
        assert_ne!(context["privileged"], true, "{name}");
        let added = context["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        (added, pod["hostPID"].clone())
    };
    let m = render_profile("ambient", &[]);
    let (added, _) = caps(&m, "Deployment", "ambient-controlplane");
    assert!(added.is_empty(), "{added:?}");
    let pod = &find(&m, "Deployment", "ambient-controlplane").unwrap()["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(caps(&m, "DaemonSet", "ztunnel").0, ["NET_ADMIN", "SYS_ADMIN"]);
    let (cni, host_pid) = caps(&m, "DaemonSet", "ambient-cni");
    assert_eq!((cni, host_pid), (vec!["NET_ADMIN".to_string(), "SYS_ADMIN".to_string()], Value::Bool(false)));
    let scan = render_profile("ambient", &["cni.netnsPrefix="]);
    let (cni, host_pid) = caps(&scan, "DaemonSet", "ambient-cni");
    assert_eq!((cni, host_pid), (vec!["NET_ADMIN".into(), "SYS_ADMIN".into(), "SYS_PTRACE".into()], Value::Bool(true)));
}

/// Node components run on every node (tolerate every taint, node-critical priority); every
/// container has resource requests and a readiness probe.
#[test]
fn workloads_are_schedulable_sized_and_probed() {
    let manifest = render_profile("ambient", &[]);
    for (workload, pod) in pod_specs(&manifest) {
        if workload.starts_with("DaemonSet") {
            assert_eq!(pod["tolerations"], serde_json::json!([{"operator": "Exists"}]), "{workload}");
            assert_eq!(pod["priorityClassName"], "system-node-critical", "{workload}");
        }
        for container in containers(pod) {
            assert!(container["resources"]["requests"]["cpu"].is_string(), "{workload}");
            assert!(container["resources"]["requests"]["memory"].is_string(), "{workload}");
            assert!(container["readinessProbe"]["httpGet"]["port"].is_number(), "{workload}");
        }
    }
    let pdb = find(&manifest, "PodDisruptionBudget", "ambient-controlplane").unwrap();
    assert_eq!(pdb["spec"]["minAvailable"], 1);
}

fn ambient_cmd() -> Command {
    Command::cargo_bin("ambient").unwrap()
}

#[test]
fn manifest_generate_is_byte_identical_for_identical_input() {
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "global:\n  tag: \"2.0.0\"\nztunnel:\n  accessLog: json\n").unwrap();
    let run = || {
        let output = ambient_cmd()
            .args(["manifest", "generate", "--profile=ambient", "--set", "global.logLevel=debug", "-f"])
            .arg(&values)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    };
    let first = run();
    assert_eq!(first, run());
    let text = String::from_utf8(first).unwrap();
    assert!(text.contains("image: ghcr.io/ambient-mesh/ambient:2.0.0"), "the values file applies");
    assert!(text.contains("--access-log=json"));
    assert_eq!(text.matches("\n---\n").count() + 1, render_profile("ambient", &[]).objects.len());
}

/// One line on stderr naming each bad key or value and where it came from; nothing on stdout.
#[test]
fn bad_values_are_one_clear_line_and_a_failure() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--set", "global.hubb=x"], &["global.hubb", "unknown key", "hub"]),
        (&["--set", "controlplane.replicas=two"], &["controlplane.replicas", "\"two\" is not a whole number"]),
        (&["--set", "ztunnel.enabled=yes"], &["ztunnel.enabled", "not a boolean"]),
        (&["--set", "global.tag=has space"], &["global.tag", "not an image tag"]),
        (&["--set", "controlplane.resources.requests.memory=lots"], &["requests.memory", "quantity"]),
        (&["--set", "cni.binDir=relative/bin"], &["cni.binDir", "absolute"]),
        (&["--set", "global.trustDomain=Bad Domain"], &["global.trustDomain"]),
        (&["--set", "noequals"], &["noequals", "KEY=VALUE"]),
        (&["--set", "global=x"], &["global", "group of keys"]),
        (&["--set", "ztunnel.enabled=true"], &["enable both or neither"]),
        (&["--profile", "nosuch"], &["unknown profile", "ambient, default, demo, minimal"]),
        (
            &["--set", "global.logLevel=loud", "--set", "global.platform=aws"],
            &["global.logLevel", "global.platform", "eks"],
        ),
    ];
    for (args, expected) in cases {
        let output = ambient_cmd().args(["manifest", "generate"]).args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(output.stdout.is_empty(), "{args:?} printed manifests");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: not one line:\n{stderr}");
        for part in *expected {
            assert!(stderr.contains(part), "{args:?}: {part:?} missing from: {stderr}");
        }
    }
    // A values file with an unknown key names the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.yaml");
    std::fs::write(&file, "ztunnel:\n  enabledd: true\n").unwrap();
    let output = ambient_cmd().args(["manifest", "generate", "-f"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("ztunnel.enabledd") && stderr.contains("mine.yaml"), "{stderr}");
    std::fs::write(&file, "ztunnel: [unclosed\n").unwrap();
    let output = ambient_cmd().args(["manifest", "generate", "-f"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("mine.yaml"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn profile_list_and_dump() {
    let output = ambient_cmd().args(["profile", "list"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let names: Vec<&str> = text.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, PROFILES);
    assert!(text.lines().all(|l| l.split_whitespace().count() > 2), "each profile has a description:\n{text}");

    let output = ambient_cmd().args(["profile", "dump", "ambient"]).output().unwrap();
    assert!(output.status.success());
    let dumped: Value = serde_saphyr::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    assert_eq!(dumped["ztunnel"]["enabled"], true);
    assert_eq!(dumped["cni"]["binDir"], "/opt/cni/bin");
    assert_eq!(dumped["global"]["trustDomain"], "cluster.local");
    // A dump is a values file: fed back with -f it renders what the profile renders.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.yaml");
    std::fs::write(&file, serde_saphyr::to_string(&dumped).unwrap()).unwrap();
    let from_dump = build(&Request { profile: "default".into(), files: vec![file], sets: vec![] }).unwrap();
    assert_eq!(from_dump, render_profile("ambient", &[]));

    let output = ambient_cmd().args(["profile", "dump", "nosuch"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown profile"));
}

/// The Dockerfile builds one image whose entrypoint is `ambient`, in stages, to a slim non-root
/// runtime with the tools the components shell out to; the manifests' `command: [ambient, ...]`
/// resolves on the runtime's PATH. (No container engine runs here, so the image is not built.)
#[test]
fn the_dockerfile_builds_one_ambient_image() {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    // Continuation lines joined, comments dropped: one instruction per line.
    let joined =
        text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n").replace("\\\n", " ");
    let instructions: Vec<(String, String)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (word, rest) = l.split_once(' ')?;
            word.chars().all(|c| c.is_ascii_uppercase()).then(|| (word.to_string(), rest.trim().to_string()))
        })
        .collect();
    let stages: Vec<usize> =
        instructions.iter().enumerate().filter(|(_, (w, _))| w == "FROM").map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let runtime = &instructions[*stages.last().unwrap()..];
    let base = &runtime[0].1;
    assert!(base.contains("-slim") || base.contains("distroless"), "slim runtime: {base}");
    let builder = &instructions[stages[0]].1;
    assert!(builder.starts_with("rust:"), "{builder}");
    let find = |word: &str| runtime.iter().filter(|(w, _)| w == word).map(|(_, r)| r.clone()).collect::<Vec<_>>();
    assert_eq!(find("ENTRYPOINT"), [r#"["/usr/local/bin/ambient"]"#]);
    assert!(find("COPY").iter().any(|c| c.starts_with("--from=build") && c.ends_with("/usr/local/bin/ambient")));
    let user = find("USER");
    let uid: u32 = user.last().expect("a USER in the runtime stage").split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "non-root by default");
    assert!(find("RUN").iter().any(|r| r.contains("iptables")), "the CNI agent runs iptables-restore");
    assert!(text.contains("cargo build --release --locked"));
    // The manifests' controlplane runs as this user, so the image's default suits it.
    let manifest = render_profile("default", &[]);
    let pod = &find_object(&manifest, "Deployment", "ambient-controlplane")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], uid);
}

fn find_object<'a>(manifest: &'a Manifest, kind: &str, name: &str) -> &'a Value {
    find(manifest, kind, name).unwrap_or_else(|| panic!("no {kind} {name}"))
}
