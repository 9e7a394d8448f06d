//! The config store and its backends.
//!
//! [`start`] picks a backend from a [`SourceConfig`] and returns a [`Store`]; nothing above this
//! module knows which backend fills it.

pub mod diagnostic;
pub mod files;
pub mod kube;
pub mod store;
pub mod yaml;

use std::path::PathBuf;

pub use self::diagnostic::{Code, Diagnostic, Severity};
pub use self::store::{Change, ChangeSet, Snapshot, Store, Subscription, Update, Write};

/// Why a config source could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config path {0} does not exist")]
    MissingPath(PathBuf),
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("watching config files: {0}")]
    Watch(#[source] notify::Error),
    #[error("connecting to Kubernetes: {0}")]
    Kube(String),
}

/// Where configuration comes from.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Files(files::FilesConfig),
    Kube(self::kube::KubeConfig),
}

/// A running config source; dropping it stops the backend (the store keeps its last state).
pub struct Source {
    pub store: Store,
    task: tokio::task::JoinHandle<Result<(), ConfigError>>,
}

impl Source {
    /// Waits for the backend to finish (it only does for unwatched files or on error).
    pub async fn join(mut self) -> Result<(), ConfigError> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the configured backend. Errors that make the source unusable from the start (a
/// missing path, no kubeconfig) are returned here; later problems become store diagnostics.
pub async fn start(config: SourceConfig) -> Result<Source, ConfigError> {
    let store = Store::new();
    let task = match config {
        SourceConfig::Files(cfg) => {
            let loader = files::FileLoader::new(cfg)?;
            tokio::spawn(files::run(loader, store.clone()))
        }
        SourceConfig::Kube(cfg) => {
            let client = self::kube::client(&cfg).await?;
            tokio::spawn(self::kube::run(client, store.clone(), cfg))
        }
    };
    Ok(Source { store, task })
}
