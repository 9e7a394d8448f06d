use std::ffi::OsStr;
use std::path::Path;

use super::*;

#[test]
fn a_ready_machine_passes() {
    let cni = tempfile::tempdir().unwrap();
    for plugin in REQUIRED_PLUGINS {
        std::fs::write(cni.path().join(plugin), "").unwrap();
    }
    check_machine(true, OsStr::new("/usr/bin"), cni.path()).expect("root, tools and plugins present");
}

#[test]
fn every_missing_piece_is_named_with_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let err = check_machine(false, OsStr::new(""), Path::new("/nonexistent/cni")).unwrap_err().to_string();
    assert!(err.contains("needs root"), "{err}");
    assert!(err.contains("bridge, host-local are missing from /nonexistent/cni"), "{err}");
    assert!(err.contains("apt-get install -y") && err.contains("containernetworking-plugins"), "{err}");

    // Only the plugins missing: root and the tools are fine, so only the plugins are named.
    let err = check_machine(true, OsStr::new("/usr/bin"), empty.path()).unwrap_err().to_string();
    assert!(!err.contains("root"), "{err}");
    assert!(err.ends_with("apt-get install -y containernetworking-plugins"), "{err}");
}
