//! What `ambient local up` needs from the machine, checked before anything is created, with
//! what to install when something is missing.

use std::path::Path;

use super::LocalError;

/// Debian's `containernetworking-plugins` install here.
pub const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";
/// The reference plugins the local runtime chains before `ambient-cni`.
pub const REQUIRED_PLUGINS: &[&str] = &["bridge", "host-local"];
/// System tools the runtime and the CNI agents run.
pub const REQUIRED_TOOLS: &[(&str, &str)] = &[("ip", "iproute2"), ("iptables-restore", "iptables")];

/// Every problem at once (not the first), so one round of installing fixes them all.
pub fn check() -> Result<(), LocalError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    check_machine(nix::unistd::geteuid().is_root(), &path, Path::new(DEBIAN_CNI_DIR))
}

/// [`check`] for a given user, `$PATH` and CNI plugin folder.
pub fn check_machine(root: bool, path: &std::ffi::OsStr, cni_dir: &Path) -> Result<(), LocalError> {
    let mut problems = Vec::new();
    if !root {
        problems.push(
            "ambient local needs root: it creates network namespaces and iptables rules (run it with sudo)".to_string(),
        );
    }
    let mut packages = Vec::new();
    for (tool, package) in REQUIRED_TOOLS {
        if find_in(path, tool).is_none() {
            problems.push(format!("`{tool}` is not installed"));
            packages.push(*package);
        }
    }
    let missing_plugins: Vec<&str> = REQUIRED_PLUGINS.iter().copied().filter(|p| !cni_dir.join(p).exists()).collect();
    if !missing_plugins.is_empty() {
        problems.push(format!("the CNI plugins {} are missing from {}", missing_plugins.join(", "), cni_dir.display()));
        packages.push("containernetworking-plugins");
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut message = problems.join("\n");
    if !packages.is_empty() {
        message.push_str(&format!("\ninstall them with: apt-get install -y {}", packages.join(" ")));
    }
    Err(LocalError::Preflight(message))
}

/// The first `name` in `path` (plus the sbin folders, which a non-root PATH often lacks).
fn find_in(path: &std::ffi::OsStr, name: &str) -> Option<std::path::PathBuf> {
    let extra = ["/usr/sbin", "/sbin", "/usr/local/sbin"].map(std::path::PathBuf::from);
    std::env::split_paths(path).chain(extra).map(|dir| dir.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests;
