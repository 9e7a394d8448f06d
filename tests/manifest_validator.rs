//! The manifest validator itself (`scripts/validate-manifests.py`): it accepts a valid stream of
//! every kind the install renders, and rejects each kind of mistake with the document, the object
//! and the field named. Fixtures are in `tests/fixtures/manifests/`. Needs the venv that
//! `bash install.sh --deps-only` makes; without it every test here fails and says so.

mod support;

use std::path::{Path, PathBuf};

use support::validator::{INSTALL_HINT, python_in, run_validator, validate_yaml, validator_python, validator_script};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("reading fixture {name}: {e}"))
}

/// Runs the validator on fixture files (`--crds` ones first); returns (exit code, stdout, stderr).
fn validate_files(crds: &[&str], files: &[&str]) -> (i32, String, String) {
    let mut args = Vec::new();
    for crd in crds {
        args.extend([PathBuf::from("--crds"), fixture(crd)]);
    }
    args.extend(files.iter().map(|f| fixture(f)));
    let out = run_validator(&args, "");
    let code = out.status.code().unwrap_or_else(|| panic!("the validator was killed: {out:?}"));
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Validates one invalid fixture and checks the report: exit 1, exactly the `expected` problem lines
/// (each is `<path>:<document> <Kind> <namespace/name>: <field>: <problem>`, with the fixture's
/// full path), then the `summary`.
fn assert_rejected(crds: &[&str], name: &str, expected: &[&str], summary: &str) {
    let (code, stdout, stderr) = validate_files(crds, &[name]);
    assert_eq!(code, 1, "{name} must be rejected with exit 1:\n{stdout}{stderr}");
    let path = fixture(name).display().to_string();
    let mut want: Vec<String> = expected.iter().map(|line| format!("{path}:{line}")).collect();
    want.push(summary.to_owned());
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "report for {name} (stderr: {stderr})");
}

#[test]
fn the_validator_is_installed() {
    let python = validator_python();
    let out = std::process::Command::new(&python)
        .args(["-c", "import kubernetes_validate.version as v; print(v.__version__)"])
        .output()
        .expect("the venv's python runs");
    let installed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let pins =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/validator-requirements.txt"))
            .expect("scripts/validator-requirements.txt");
    assert!(
        pins.lines().any(|l| l == format!("kubernetes-validate=={installed}")),
        "kubernetes-validate {installed:?} in {} is not the pinned version; {INSTALL_HINT}",
        python.display()
    );
}

#[test]
fn a_missing_venv_fails_with_the_install_command() {
    let missing = Path::new("/nonexistent/ambient-validator-venv");
    let why = python_in(missing).expect_err("no venv there");
    assert!(why.contains("/nonexistent/ambient-validator-venv/bin/python3"), "{why}");
    // The script itself, run by a python3 without the packages (-S: no site-packages), says the same.
    let out = std::process::Command::new(validator_python())
        .arg("-S")
        .arg(validator_script())
        .arg(fixture("valid.yaml"))
        .env("AMBIENT_VALIDATOR_VENV", missing)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bash install.sh --deps-only") && stderr.contains(&*missing.to_string_lossy()), "{stderr}");
}

#[test]
fn accepts_a_valid_stream_of_every_kind() {
    let (code, stdout, stderr) = validate_files(&[], &["valid.yaml"]);
    assert_eq!((code, stdout.as_str()), (0, "validated 9 objects (9 kinds): OK\n"), "{stderr}");
}

#[test]
fn validate_yaml_reads_a_stream_with_crds_from_other_files() {
    let summary = validate_yaml(&read("valid.yaml"), &[]).expect("valid.yaml is valid");
    assert_eq!(summary, "validated 9 objects (9 kinds): OK");
    // The custom resource alone: valid only with its CRD given by --crds.
    let widget =
        "apiVersion: example.ambient.dev/v1\nkind: Widget\nmetadata: {name: w, namespace: n}\nspec: {size: 2}\n";
    assert_eq!(
        validate_yaml(widget, &[&fixture("widget-crd.yaml")]).as_deref(),
        Ok("validated 1 objects (1 kinds): OK")
    );
    let report = validate_yaml(widget, &[]).expect_err("without its CRD, a Widget is unknown");
    assert!(report.contains("-:1 Widget n/w: unknown kind: example.ambient.dev/v1 Widget"), "{report}");
}

#[test]
fn rejects_a_misspelled_field() {
    assert_rejected(
        &[],
        "deployment-misspelled-field.yaml",
        &["1 Deployment ambient-system/controlplane: spec.replica: unknown field"],
        "1 problems in 1 objects",
    );
}

#[test]
fn rejects_a_container_port_given_as_a_string() {
    assert_rejected(
        &[],
        "container-port-string.yaml",
        &["1 Deployment ambient-system/controlplane: spec.template.spec.containers[0].ports[0].containerPort: \
           '15010' is not of type 'integer'"],
        "1 problems in 1 objects",
    );
}

#[test]
fn rejects_a_cluster_role_rule_without_verbs() {
    assert_rejected(
        &[],
        "clusterrole-missing-verbs.yaml",
        &["1 ClusterRole ambient-controlplane: rules[1].verbs: required field is missing"],
        "1 problems in 1 objects",
    );
}

#[test]
fn rejects_a_custom_resource_violating_its_crd_schema() {
    assert_rejected(
        &["widget-crd.yaml"],
        "widget-wrong-type.yaml",
        &["1 Widget ambient-system/big: spec.size: 'large' is not of type 'integer'"],
        "1 problems in 1 objects",
    );
    // The same with the CRD in the stream itself.
    let stream = format!("{}---\n{}", read("widget-crd.yaml"), read("widget-wrong-type.yaml"));
    let report = validate_yaml(&stream, &[]).expect_err("spec.size is a string");
    assert_eq!(
        report,
        "-:2 Widget ambient-system/big: spec.size: 'large' is not of type 'integer'\n1 problems in 2 objects\n"
    );
}

#[test]
fn rejects_unknown_fields_nulls_and_bounds_in_custom_resources() {
    let stream = format!(
        "{}---\n{}",
        read("widget-crd.yaml"),
        "apiVersion: example.ambient.dev/v1\nkind: Widget\nmetadata: {name: w, lables: {a: b}}\n\
         spec: {size: 0, colour: red, color: null}\n---\n\
         apiVersion: example.ambient.dev/v1\nkind: Widget\nmetadata: {name: v}\nspec: {size: null, color: blue}\n"
    );
    let report = validate_yaml(&stream, &[]).expect_err("both widgets are invalid");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines,
        [
            "-:2 Widget w: metadata.lables: unknown field",
            "-:2 Widget w: spec.colour: unknown field",
            "-:2 Widget w: spec.size: 0 is less than the minimum of 1",
            "-:3 Widget v: spec.color: 'blue' is not one of ['red', 'green', None]",
            "-:3 Widget v: spec.size: None is not of type 'integer'",
            "5 problems in 3 objects",
        ],
        "{report}"
    );
}

#[test]
fn rejects_a_custom_resource_whose_crd_is_absent() {
    assert_rejected(
        &["widget-crd.yaml"],
        "widget-without-crd.yaml",
        &["1 Gadget ambient-system/orphan: unknown kind: example.ambient.dev/v1 Gadget is neither a Kubernetes 1.33 \
           kind nor served by a CustomResourceDefinition in the input or --crds"],
        "1 problems in 1 objects",
    );
}

#[test]
fn rejects_a_crd_with_two_storage_versions() {
    assert_rejected(
        &[],
        "crd-two-storage-versions.yaml",
        &["1 CustomResourceDefinition gizmos.example.ambient.dev: spec.versions: exactly one version must have \
           storage: true, 2 do (v1alpha1, v1)"],
        "1 problems in 1 objects",
    );
}

#[test]
fn rejects_crds_that_are_not_structural_or_misnamed() {
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
               metadata: {name: things.example.ambient.dev}\n\
               spec:\n  group: example.ambient.dev\n  scope: Cluster\n  names: {plural: thingies, kind: Thing}\n  \
               versions:\n  - {name: v1, served: true, storage: true}\n  \
               - {name: v2, served: true, storage: false, schema: {openAPIV3Schema: {type: object, properties: \
               {spec: {properties: {a: {type: string}}}}}}}\n";
    let report = validate_yaml(crd, &[]).expect_err("the CRD is broken three ways");
    let lines: Vec<&str> = report.lines().collect();
    let at = "-:1 CustomResourceDefinition things.example.ambient.dev";
    assert_eq!(
        lines,
        [
            format!(
                "{at}: metadata.name: must be <names.plural>.<group> ('thingies.example.ambient.dev'), \
                 not 'things.example.ambient.dev'"
            ),
            format!("{at}: spec.versions[0].schema.openAPIV3Schema: missing (every version needs one)"),
            format!(
                "{at}: spec.versions[1].schema.openAPIV3Schema.properties.spec: no type \
                 (a structural schema has one at every level)"
            ),
            "3 problems in 1 objects".to_owned(),
        ],
        "{report}"
    );
}

#[test]
fn rejects_malformed_yaml_naming_the_document_and_checks_the_others() {
    assert_rejected(
        &[],
        "malformed.yaml",
        &["2: malformed YAML in document 2: while parsing a flow sequence (line 12, column 13): \
           expected ',' or ']', but got '<stream end>' (line 13, column 1)"],
        // Documents 1 and 3 were still read and validated.
        "1 problems in 2 objects",
    );
}

#[test]
fn rejects_unknown_kinds_versions_and_schema_fragments() {
    let stream = "apiVersion: apps/v1\nkind: Deploymnt\nmetadata: {name: a}\n---\n\
                  apiVersion: apps/v2\nkind: Deployment\nmetadata: {name: b}\n---\n\
                  apiVersion: v1\nkind: Affinity\nmetadata: {name: c}\n---\n\
                  apiVersion: apps.example.com/v1\nkind: Deployment\nmetadata: {name: d}\n---\n\
                  kind: Namespace\nmetadata: {name: e}\n---\n\
                  - a list\n";
    let report = validate_yaml(stream, &[]).expect_err("none of these is a Kubernetes kind");
    let lines: Vec<&str> = report.lines().collect();
    let unknown = "is neither a Kubernetes 1.33 kind nor served by a CustomResourceDefinition in the input or --crds";
    assert_eq!(
        lines,
        [
            format!("-:1 Deploymnt a: unknown kind: apps/v1 Deploymnt {unknown}"),
            format!("-:2 Deployment b: unknown kind: apps/v2 Deployment {unknown}"),
            format!("-:3 Affinity c: unknown kind: v1 Affinity {unknown}"),
            format!("-:4 Deployment d: unknown kind: apps.example.com/v1 Deployment {unknown}"),
            "-:5 Namespace e: apiVersion and kind: required strings are missing".to_owned(),
            "-:6: the document is a list, not a Kubernetes object".to_owned(),
            "6 problems in 5 objects".to_owned(),
        ],
        "{report}"
    );
}

#[test]
fn rejects_what_server_side_apply_would_duplicate_keys_and_out_of_range_integers() {
    let stream = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\ndata: {k: x, k: y}\n---\n\
                  apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\nspec:\n  \
                  terminationGracePeriodSeconds: 1\n  containers:\n  \
                  - {name: c, image: i, ports: [{containerPort: 80}, {containerPort: 80}]}\n  \
                  - {name: c, image: i, ports: [{containerPort: 4294967296}]}\n";
    let report = validate_yaml(stream, &[]).expect_err("every object is broken");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines,
        [
            "-:1: malformed YAML in document 1: duplicate key 'k' (line 4, column 14)",
            "-:2 Pod n/p: spec.containers: items 0 and 1 have the same key (name='c'): \
             a list map's keys must be unique",
            "-:2 Pod n/p: spec.containers[0].ports: items 0 and 1 have the same key (containerPort=80, protocol=None): \
             a list map's keys must be unique",
            "-:2 Pod n/p: spec.containers[1].ports[0].containerPort: 4294967296 is not a 'int32'",
            "4 problems in 1 objects",
        ],
        "{report}"
    );
}

#[test]
fn lists_every_problem_of_a_stream_not_just_the_first() {
    let invalid = [
        "deployment-misspelled-field.yaml",
        "container-port-string.yaml",
        "clusterrole-missing-verbs.yaml",
        "widget-wrong-type.yaml",
        "widget-without-crd.yaml",
        "crd-two-storage-versions.yaml",
    ];
    let mut stream = read("widget-crd.yaml");
    for name in invalid {
        stream += "---\n";
        stream += &read(name);
    }
    stream += &format!("---\n{}", read("valid.yaml"));
    let report = validate_yaml(&stream, &[]).expect_err("six documents are invalid");
    let problems: Vec<&str> = report.lines().filter(|l| l.starts_with("-:")).collect();
    assert_eq!(problems.len(), 6, "{report}");
    for (document, field) in [
        (2, "spec.replica: unknown field"),
        (3, "containerPort: '15010' is not of type 'integer'"),
        (4, "rules[1].verbs: required field is missing"),
        (5, "spec.size: 'large' is not of type 'integer'"),
        (6, "unknown kind: example.ambient.dev/v1 Gadget"),
        (7, "exactly one version must have storage: true"),
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(&format!("-:{document} ")) && p.contains(field)),
            "document {document} should be reported with {field:?}:\n{report}"
        );
    }
    assert!(report.ends_with("6 problems in 16 objects\n"), "{report}");
}

#[test]
fn checks_against_the_requested_kubernetes_version() {
    let policy = "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n\
                  metadata: {name: p}\nspec: {validations: [{expression: 'true'}]}\n";
    let run = |version: &str| {
        let out = run_validator(&["--kubernetes-version", version, "-"], policy);
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // ValidatingAdmissionPolicy reached admissionregistration.k8s.io/v1 in Kubernetes 1.30.
    assert_eq!(run("1.33"), (Some(0), "validated 1 objects (1 kinds): OK\n".to_owned()));
    let (code, stdout) = run("1.29");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "unknown kind: admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy is neither a Kubernetes 1.29 kind"
        ),
        "{stdout}"
    );
}

#[test]
fn usage_and_io_errors_exit_2_and_empty_input_is_a_problem() {
    for args in [vec!["/nonexistent/manifest.yaml"], vec!["--kubernetes-version", "1.99", "-"], vec![]] {
        let out = run_validator(&args, "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.trim().is_empty(), "{args:?} should say what is wrong");
    }
    let report = validate_yaml("# nothing here\n---\n", &[]).expect_err("an empty stream is not a valid install");
    assert_eq!(report, "-: no objects found\n1 problems in 0 objects\n");
}
