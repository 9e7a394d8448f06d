use std::path::Path;

use serde_json::json;

use super::install::{self, InstallConfig, PLUGIN_TYPE};

fn conflist() -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/16"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
}

#[test]
fn plugin_entry_is_added_once_last_and_removed_exactly() {
    let socket = Path::new("/run/ambient/agent.sock");
    let once = install::with_plugin(conflist(), socket);
    let twice = install::with_plugin(once.clone(), socket);
    assert_eq!(once, twice);
    let plugins = once["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 3);
    assert_eq!(plugins[2], json!({"type": PLUGIN_TYPE, "agentSocket": "/run/ambient/agent.sock"}));
    assert_eq!(install::without_plugin(once), conflist());
}

#[test]
fn install_and_uninstall_in_temp_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let (bin_dir, conf_dir) = (dir.path().join("bin"), dir.path().join("net.d"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&conf_dir).unwrap();
    let binary = dir.path().join("ambient");
    std::fs::write(&binary, b"#!binary").unwrap();
    let config = InstallConfig { bin_dir: bin_dir.clone(), conf_dir: conf_dir.clone(), binary };

    assert!(matches!(install::install(&config, Path::new("/s")), Err(install::InstallError::NoConflist(_))));

    let original = serde_json::to_string_pretty(&conflist()).unwrap();
    std::fs::write(conf_dir.join("10-bridge.conflist"), &original).unwrap();
    std::fs::write(conf_dir.join("20-other.conflist"), &original).unwrap();
    std::fs::write(conf_dir.join("05-single.conf"), "{}").unwrap();
    install::install(&config, Path::new("/s")).unwrap();
    install::install(&config, Path::new("/s")).unwrap();

    let installed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(conf_dir.join("10-bridge.conflist")).unwrap()).unwrap();
    assert_eq!(installed, install::with_plugin(conflist(), Path::new("/s")));
    assert_eq!(std::fs::read_to_string(conf_dir.join("20-other.conflist")).unwrap(), original, "only the first");
    assert_eq!(std::fs::read(bin_dir.join(PLUGIN_TYPE)).unwrap(), b"#!binary");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(bin_dir.join(PLUGIN_TYPE)).unwrap().permissions().mode() & 0o777, 0o755);

    install::uninstall(&config).unwrap();
    install::uninstall(&config).unwrap();
    let restored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(conf_dir.join("10-bridge.conflist")).unwrap()).unwrap();
    assert_eq!(restored, conflist());
    assert!(!bin_dir.join(PLUGIN_TYPE).exists());
    let mut names: Vec<_> = std::fs::read_dir(&conf_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["05-single.conf", "10-bridge.conflist", "20-other.conflist"], "no temp files left");
}

#[test]
fn a_conflist_without_plugins_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.conflist"), "{\"name\": \"x\"}").unwrap();
    let config =
        InstallConfig { bin_dir: dir.path().into(), conf_dir: dir.path().into(), binary: dir.path().join("none") };
    let error = install::install(&config, Path::new("/s")).unwrap_err().to_string();
    assert!(error.contains("a.conflist is not a conflist: no \"plugins\" array"), "{error}");
}
