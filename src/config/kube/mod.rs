//! The `kube` backend: watches the Kubernetes API for every kind in [`crate::model::Kind::ALL`].
//!
//! Every kind is watched through one code path: an `Api<DynamicObject>` for the kind's preferred
//! version (see [`resources::api_resource`]), kube's [`watcher`] with its default backoff, and a
//! conversion of each object's JSON into the typed model ([`resources::convert`]). All watch
//! streams are merged into one task, which turns their events into store writes
//! ([`state::Backend`]):
//!
//! - a (re-)list is buffered from `Init` to `InitDone` and written as one batch, which also
//!   removes the kind's objects that the list no longer has (this is how a `410 Gone` heals);
//! - an object that does not decode or validate becomes a diagnostic in the kind's scope
//!   (`kube/<Kind>`), and its last good version stays in the store;
//! - a kind whose API is not served (`404` on the list: its CRD is not installed) counts as
//!   listed-empty, so it cannot hold up [`Store::mark_synced`]; the watcher keeps retrying with
//!   backoff and the kind starts flowing once the CRD appears.

mod resources;
mod state;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use ::kube::api::{Api, DynamicObject};
use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::runtime::{WatchStreamExt, watcher};
use futures::StreamExt;
use futures::stream::BoxStream;

pub use self::resources::{Converted, api_resource, convert, plural};

use self::state::{Backend, WatchResult};
use super::ConfigError;
use super::store::Store;
use crate::model::Kind;

/// The `file` every diagnostic of this backend reports.
pub const SOURCE: &str = "kube";

/// How many watch events that are ready at once are written to the store as one batch.
const MAX_BATCH: usize = 512;

/// How to reach the API server.
#[derive(Debug, Clone, Default)]
pub struct KubeConfig {
    /// kubeconfig context to use (default: the current one, or in-cluster config).
    pub context: Option<String>,
    /// kubeconfig file to read (default: `$KUBECONFIG` or `~/.kube/config`, then in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// Kinds to watch (default: every kind in [`Kind::ALL`]). A component that needs only some
    /// watches only those, so its RBAC grants only those.
    pub kinds: Option<Vec<Kind>>,
}

impl KubeConfig {
    /// The kinds this configuration watches.
    pub fn watched_kinds(&self) -> Vec<Kind> {
        self.kinds.clone().unwrap_or_else(|| Kind::ALL.to_vec())
    }
}

/// The diagnostics scope of one watched kind, e.g. `kube/Pod`.
pub fn scope(kind: Kind) -> String {
    format!("{SOURCE}/{}", kind.name())
}

/// An error with the messages of its sources that its own message does not already include.
pub fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Loads client configuration: an explicit kubeconfig file, a named context of the default
/// kubeconfig, or (with neither) the default kubeconfig with in-cluster config as fallback.
pub async fn load_config(cfg: &KubeConfig) -> Result<::kube::Config, ConfigError> {
    let options = KubeConfigOptions { context: cfg.context.clone(), ..KubeConfigOptions::default() };
    let context = cfg.context.as_deref().map(|c| format!(" (context {c:?})")).unwrap_or_default();
    match (&cfg.kubeconfig, &cfg.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| ConfigError::Kube(format!("reading kubeconfig {}: {}", path.display(), describe(&e))))?;
            ::kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| {
                ConfigError::Kube(format!("loading kubeconfig {}{context}: {}", path.display(), describe(&e)))
            })
        }
        // In-cluster config has no contexts, so a named one can only come from a kubeconfig.
        (None, Some(_)) => ::kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ConfigError::Kube(format!("loading the kubeconfig{context}: {}", describe(&e)))),
        (None, None) => ::kube::Config::infer().await.map_err(|e| {
            ConfigError::Kube(format!(
                "no usable Kubernetes configuration (neither in-cluster nor a kubeconfig): {}",
                describe(&e)
            ))
        }),
    }
}

/// Builds a client from in-cluster config or the kubeconfig. Nothing is sent to the API server
/// yet: a server that cannot be reached shows up later, as list failures.
pub async fn client(cfg: &KubeConfig) -> Result<::kube::Client, ConfigError> {
    let config = load_config(cfg).await?;
    let url = config.cluster_url.to_string();
    ::kube::Client::try_from(config)
        .map_err(|e| ConfigError::Kube(format!("building a client for {url}: {}", describe(&e))))
}

/// One kind's watch events, tagged with the kind, retried with kube's default backoff.
fn watch_kind(client: ::kube::Client, kind: Kind) -> BoxStream<'static, (Kind, WatchResult)> {
    let api: Api<DynamicObject> = Api::all_with(client, &api_resource(kind));
    watcher(api, watcher::Config::default()).default_backoff().map(move |event| (kind, event)).boxed()
}

/// Runs watchers for the configured kinds, writing into `store`, until the returned future is dropped.
/// The store is marked synced once each of them has completed its first list.
pub async fn run(client: ::kube::Client, store: Store, cfg: KubeConfig) -> Result<(), ConfigError> {
    let kinds = cfg.watched_kinds();
    let streams = kinds.iter().map(|&kind| watch_kind(client.clone(), kind));
    let mut events = futures::stream::select_all(streams).ready_chunks(MAX_BATCH);
    let mut backend = Backend::new(store, &kinds);
    tracing::info!(kinds = kinds.len(), "watching the Kubernetes API");
    while let Some(batch) = events.next().await {
        backend.handle(batch);
    }
    // Watchers retry forever, so their streams only end if something is badly wrong.
    Err(ConfigError::Kube("the Kubernetes watch streams ended".into()))
}
