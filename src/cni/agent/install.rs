//! Installing the plugin on the host: the agent's own binary copied to `<cni-bin-dir>/ambient-cni`
//! and an `ambient-cni` entry appended to the plugins of the primary conflist (the first
//! `*.conflist` by name in `<cni-conf-dir>`), everything else of that file kept. Both are removed
//! on uninstall. Files are replaced by rename, so the runtime never reads half a file.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The plugin's file name and its `type` in the conflist.
pub const PLUGIN_TYPE: &str = "ambient-cni";

#[derive(Clone, Debug)]
pub struct InstallConfig {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    /// The binary to copy (the agent's own, `std::env::current_exe()`).
    pub binary: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cni install: {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("cni install: no *.conflist in {0} (is the primary CNI installed yet?)")]
    NoConflist(PathBuf),
    #[error("cni install: {path} is not a conflist: {detail}")]
    BadConflist { path: PathBuf, detail: String },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.to_owned();
    move |source| InstallError::Io { action, path, source }
}

/// The primary conflist: the first `*.conflist` in `conf_dir` by file name.
pub fn primary_conflist(conf_dir: &Path) -> Result<PathBuf, InstallError> {
    let entries = std::fs::read_dir(conf_dir).map_err(io_error("read", conf_dir))?;
    let mut lists: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "conflist") && path.is_file())
        .collect();
    lists.sort();
    lists.into_iter().next().ok_or_else(|| InstallError::NoConflist(conf_dir.to_owned()))
}

/// Writes `data` to `path` through a temporary file in the same folder and a rename.
fn replace_file(path: &Path, data: &[u8], mode: u32) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.ambient-tmp"));
    let result = std::fs::write(&temp, data)
        .map_err(io_error("write", &temp))
        .and_then(|()| {
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode)).map_err(io_error("chmod", &temp))
        })
        .and_then(|()| std::fs::rename(&temp, path).map_err(io_error("rename into", path)));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn read_conflist(path: &Path) -> Result<(Value, u32), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read(path).map_err(io_error("read", path))?;
    let mode = std::fs::metadata(path).map_err(io_error("inspect", path))?.permissions().mode() & 0o7777;
    let value: Value = serde_json::from_slice(&text)
        .map_err(|e| InstallError::BadConflist { path: path.to_owned(), detail: e.to_string() })?;
    if !value.get("plugins").is_some_and(Value::is_array) {
        return Err(InstallError::BadConflist { path: path.to_owned(), detail: "no \"plugins\" array".into() });
    }
    Ok((value, mode))
}

fn is_ours(plugin: &Value) -> bool {
    plugin.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE)
}

/// The conflist with exactly one `ambient-cni` entry, last (chained after the primary plugins).
pub fn with_plugin(mut conflist: Value, agent_socket: &Path) -> Value {
    if let Some(plugins) = conflist.get_mut("plugins").and_then(Value::as_array_mut) {
        plugins.retain(|plugin| !is_ours(plugin));
        plugins.push(serde_json::json!({ "type": PLUGIN_TYPE, "agentSocket": agent_socket }));
    }
    conflist
}

/// The conflist without any `ambient-cni` entry.
pub fn without_plugin(mut conflist: Value) -> Value {
    if let Some(plugins) = conflist.get_mut("plugins").and_then(Value::as_array_mut) {
        plugins.retain(|plugin| !is_ours(plugin));
    }
    conflist
}

fn to_text(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).expect("JSON values always serialize");
    text.push(b'\n');
    text
}

/// Copies the binary and adds the conflist entry; idempotent.
pub fn install(config: &InstallConfig, agent_socket: &Path) -> Result<(), InstallError> {
    let conflist = primary_conflist(&config.conf_dir)?;
    let (value, mode) = read_conflist(&conflist)?;
    let binary = std::fs::read(&config.binary).map_err(io_error("read", &config.binary))?;
    // The binary first: an entry naming a missing plugin would fail every pod.
    replace_file(&config.bin_dir.join(PLUGIN_TYPE), &binary, 0o755)?;
    replace_file(&conflist, &to_text(&with_plugin(value, agent_socket)), mode)
}

/// Removes the conflist entry, then the binary; what is already gone is fine.
pub fn uninstall(config: &InstallConfig) -> Result<(), InstallError> {
    match primary_conflist(&config.conf_dir) {
        Ok(conflist) => {
            let (value, mode) = read_conflist(&conflist)?;
            if value["plugins"].as_array().is_some_and(|plugins| plugins.iter().any(is_ours)) {
                replace_file(&conflist, &to_text(&without_plugin(value)), mode)?;
            }
        }
        Err(InstallError::NoConflist(_)) => {}
        Err(e) => return Err(e),
    }
    let binary = config.bin_dir.join(PLUGIN_TYPE);
    match std::fs::remove_file(&binary) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &binary)(e)),
        _ => Ok(()),
    }
}
