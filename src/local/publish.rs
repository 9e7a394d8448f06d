//! The local "API server": the objects as the components see them — the user's objects, pods
//! with the node they run on and their status (IP, phase, readiness), services with their
//! virtual IP — written as one JSON document per object into the folder the control plane and
//! the CNI agents watch with their files backend. Only changed files are rewritten, atomically.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::LocalError;
use super::state::PodState;
use crate::model::{Kind, Resource};

pub struct Publisher {
    dir: PathBuf,
    /// File name -> the text last written.
    written: BTreeMap<String, String>,
}

impl Publisher {
    /// Starts from an empty folder.
    pub fn new(dir: PathBuf) -> Result<Publisher, LocalError> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(LocalError::io(format!("creating {}", dir.display())))?;
        Ok(Publisher { dir, written: BTreeMap::new() })
    }

    /// Makes the folder hold exactly `objects`. Returns whether anything changed.
    pub fn publish(&mut self, objects: &[Value]) -> Result<bool, LocalError> {
        let mut wanted = BTreeMap::new();
        for object in objects {
            let kind = object["kind"].as_str().unwrap_or("object").to_lowercase();
            let namespace = object["metadata"]["namespace"].as_str().unwrap_or("_");
            let name = object["metadata"]["name"].as_str().unwrap_or("_");
            let text = serde_json::to_string_pretty(object).expect("JSON values serialize");
            wanted.insert(format!("{kind}.{namespace}.{name}.json"), text);
        }
        let mut changed = false;
        for (file, text) in &wanted {
            if self.written.get(file) == Some(text) {
                continue;
            }
            let path = self.dir.join(file);
            // Hidden temporary names are skipped by the files backend; the rename is atomic.
            let tmp = self.dir.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(LocalError::io(format!("publishing {}", path.display())))?;
            changed = true;
        }
        for file in self.written.keys().filter(|f| !wanted.contains_key(*f)) {
            let path = self.dir.join(file);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(LocalError::Io { what: format!("unpublishing {}", path.display()), source: e });
            }
            changed = true;
        }
        self.written = wanted;
        Ok(changed)
    }
}

/// The published form of `resource`: with `apiVersion` and `kind`, and for pods and services
/// what the runtime decided. `None`: not published (a pod that is not running here).
pub fn published(
    resource: &Resource,
    pod: impl FnOnce() -> Option<PodState>,
    cluster_ip: impl FnOnce() -> Option<std::net::Ipv4Addr>,
) -> Option<Value> {
    let kind = resource.kind();
    let mut object = resource.to_json();
    object["apiVersion"] = json!(kind.api_version());
    object["kind"] = json!(kind.name());
    match kind {
        Kind::Pod => {
            let pod = pod()?;
            object["spec"]["nodeName"] = json!(pod.node);
            let ready = if pod.ready { "True" } else { "False" };
            let mut status = json!({
                "phase": pod.phase,
                "conditions": [{"type": "Ready", "status": ready}],
            });
            if let Some(ip) = pod.ip {
                status["podIP"] = json!(ip.to_string());
                status["podIPs"] = json!([{"ip": ip.to_string()}]);
            }
            object["status"] = status;
        }
        Kind::Service => {
            if let Some(ip) = cluster_ip() {
                object["spec"]["clusterIP"] = json!(ip.to_string());
                object["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
        }
        _ => {}
    }
    Some(object)
}
