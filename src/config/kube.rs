//! The `kube` backend: watches the Kubernetes API for every kind in [`crate::model::Kind::ALL`].

use super::ConfigError;
use super::store::Store;

/// How to reach the API server.
#[derive(Debug, Clone, Default)]
pub struct KubeConfig {
    /// kubeconfig context to use (default: the current one, or in-cluster config).
    pub context: Option<String>,
}

/// Builds a client from in-cluster config or the kubeconfig.
pub async fn client(_cfg: &KubeConfig) -> Result<kube::Client, ConfigError> {
    kube::Client::try_default().await.map_err(|e| ConfigError::Kube(e.to_string()))
}

/// Runs watchers for every kind, writing into `store`.
pub async fn run(_client: kube::Client, _store: Store, _cfg: KubeConfig) -> Result<(), ConfigError> {
    Err(ConfigError::Kube("kube backend not implemented yet".into()))
}
