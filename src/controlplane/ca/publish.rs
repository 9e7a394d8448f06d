//! Kube mode: the root certificate published in a ConfigMap of the root namespace
//! (`istio-ca-root-cert`, key `root-cert.pem`, as Istio names them), which ztunnels mount to
//! verify the control plane and the mesh.
//!
//! The install creates the ConfigMap empty; this writes `data` by server-side apply with its own
//! field manager, so a re-install (field manager `ambient`) never takes the certificate away,
//! and the control plane needs only `patch` on that one object.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

/// The key ztunnels read.
pub const ROOT_CERT_KEY: &str = "root-cert.pem";
/// The control plane's field manager (apart from install's `ambient`).
pub const FIELD_MANAGER: &str = "ambient-controlplane";

/// Longest wait between attempts while the API server refuses.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Applies the root certificate once.
pub async fn apply_root_cert(
    client: kube::Client,
    namespace: &str,
    name: &str,
    root_pem: &str,
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let data: BTreeMap<&str, &str> = [(ROOT_CERT_KEY, root_pem)].into();
    let patch = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data});
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(patch)).await.map(|_| ())
}

/// Applies the root certificate, retrying with backoff until it is in place: ztunnels wait for
/// it, so a refusal (RBAC, a missing ConfigMap) is logged with the API's reason each time.
pub async fn publish_root_cert(client: kube::Client, namespace: String, name: String, root_pem: String) {
    let mut delay = Duration::from_secs(1);
    loop {
        match apply_root_cert(client.clone(), &namespace, &name, &root_pem).await {
            Ok(()) => {
                info!(configmap = %format!("{namespace}/{name}"), "root certificate published");
                return;
            }
            Err(e) => {
                warn!(configmap = %format!("{namespace}/{name}"), error = %e, retry_in = ?delay, "cannot publish the root certificate; ztunnels wait for it");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}
