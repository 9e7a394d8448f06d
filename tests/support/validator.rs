//! The manifest validator, `scripts/validate-manifests.py`, run with the python3 of the venv that
//! `bash install.sh --deps-only` makes (kubernetes-validate, jsonschema, PyYAML, pinned in
//! `scripts/validator-requirements.txt`). The venv is `$AMBIENT_VALIDATOR_VENV`, else
//! [`DEFAULT_VENV`]. Missing, it is a failure with the install command, never a skip.
//!
//! For render tests: `validate_yaml(&stream, &[])` is `Ok(summary)` when every object is valid,
//! `Err(report)` listing every problem as `-:<document> <Kind> <namespace>/<name>: <field>: <problem>`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Where `install.sh` makes the validator's venv unless `AMBIENT_VALIDATOR_VENV` is set.
pub const DEFAULT_VENV: &str = "/opt/ambient-test/venv";
/// What to do when the validator is missing.
pub const INSTALL_HINT: &str = "run `bash install.sh --deps-only` (as root) to install the manifest validator";

/// The validator's venv: `$AMBIENT_VALIDATOR_VENV`, else [`DEFAULT_VENV`].
pub fn venv() -> PathBuf {
    std::env::var_os("AMBIENT_VALIDATOR_VENV")
        .filter(|v| !v.is_empty())
        .map_or_else(|| DEFAULT_VENV.into(), PathBuf::from)
}

/// The python3 of `venv` if it can import the validator's packages, else why not.
pub fn python_in(venv: &Path) -> Result<PathBuf, String> {
    let python = venv.join("bin").join("python3");
    if !python.exists() {
        return Err(format!("the manifest validator's venv is missing: no {}", python.display()));
    }
    let out = Command::new(&python)
        .args(["-c", "import kubernetes_validate, jsonschema, yaml"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import the validator's packages: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(python)
}

/// The venv's python3, checked once per test process; panics with [`INSTALL_HINT`] when the venv
/// or its packages are missing.
pub fn validator_python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(|| python_in(&venv())) {
        Ok(python) => python.clone(),
        Err(why) => panic!("{why}\n{INSTALL_HINT}"),
    }
}

/// `scripts/validate-manifests.py` of this checkout.
pub fn validator_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join("validate-manifests.py")
}

/// Runs the validator with `args`, `stdin` on its standard input; returns whatever it did.
pub fn run_validator<S: AsRef<OsStr>>(args: &[S], stdin: &str) -> Output {
    let python = validator_python();
    let mut child = Command::new(&python)
        .arg(validator_script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let mut input = child.stdin.take().expect("stdin is piped");
    // Written from another thread: a large stream must not block on a full stdout pipe.
    let writer = std::thread::scope(|scope| {
        let writer = scope.spawn(move || input.write_all(stdin.as_bytes()));
        let out = child.wait_with_output().expect("the validator runs to its end");
        (writer.join().expect("the stdin writer does not panic"), out)
    });
    match writer {
        // The validator may exit before reading stdin (a usage error): that is its own report.
        (Err(e), out) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            panic!("writing the validator's stdin: {e}; {out:?}")
        }
        (_, out) => out,
    }
}

/// Validates a multi-document YAML stream (read as `-`), with the CustomResourceDefinitions of
/// `extra_crds` serving its custom resources besides those in the stream. `Ok(summary line)` when
/// every object is valid; `Err(report)`, every problem on its own line then a count, when any is
/// not. Panics when the validator cannot run at all (not installed, a usage error, a crash).
pub fn validate_yaml(yaml: &str, extra_crds: &[&Path]) -> Result<String, String> {
    let mut args: Vec<&OsStr> = Vec::new();
    for crds in extra_crds {
        args.extend([OsStr::new("--crds"), crds.as_os_str()]);
    }
    args.push(OsStr::new("-"));
    let out = run_validator(&args, yaml);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(stdout.trim_end().to_owned()),
        Some(1) if stderr.trim().is_empty() => Err(stdout),
        Some(1) => Err(format!("{stdout}{stderr}")),
        _ => panic!("the manifest validator did not run ({}):\n{stderr}{stdout}", out.status),
    }
}
