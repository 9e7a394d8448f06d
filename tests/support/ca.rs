//! A control-plane CA assembled from its parts, for tests that talk to it over the wire: the
//! mesh from YAML through the files config store, callers from a tokens file, the root kept in a
//! state directory, and a serving certificate for `istiod.istio-system.svc`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ambient::config::files::FilesConfig;
use ambient::config::{Source, SourceConfig, start};
use ambient::controlplane::auth::TokensAuthenticator;
use ambient::controlplane::ca::{
    CaMetrics, CaService, CaSource, CertificateAuthority, IssuancePolicy, ROOT_CERT_FILE, SERVING_TTL,
    ServingCertificate, serving_names,
};
use ambient::mesh::{Mesh, MeshConfig};
use prometheus_client::registry::Registry;

pub const TRUST_DOMAIN: &str = "cluster.local";
const WAIT: Duration = Duration::from_secs(10);

pub struct CaParts {
    pub ca: Arc<CertificateAuthority>,
    pub service: CaService,
    pub serving: ServingCertificate,
    /// The root as published in the state directory (what clients are given).
    pub root_pem: String,
    pub registry: Registry,
    /// Keep these alive as long as the service runs.
    pub source: Source,
    pub follower: tokio::task::JoinHandle<()>,
}

/// Writes `pods` and `tokens` under `state`, loads them, waits for `workloads` workloads in the
/// mesh, and builds the CA service over them.
pub async fn ca_parts(state: &Path, pods: &str, tokens: &str, workloads: usize) -> CaParts {
    let config_dir = state.join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("pods.yaml"), pods).unwrap();
    std::fs::write(state.join("tokens"), tokens).unwrap();

    let source = start(SourceConfig::Files(FilesConfig::new(vec![config_dir]))).await.unwrap();
    tokio::time::timeout(WAIT, source.store.synced()).await.expect("config loaded");
    let mesh = Mesh::new(MeshConfig::default());
    let follower = tokio::spawn({
        let mesh = mesh.clone();
        let subscription = source.store.subscribe();
        async move { mesh.follow(subscription).await }
    });
    tokio::time::timeout(WAIT, async {
        while mesh.read(|index| index.workloads().count()) < workloads {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the mesh has the pods");

    let ca = Arc::new(CaSource::StateDir(state.to_path_buf()).load(TRUST_DOMAIN).await.unwrap());
    let serving = ca.serving_certificate(&serving_names("istio-system", &[]), SERVING_TTL).unwrap();
    let mut registry = Registry::default();
    let metrics = CaMetrics::register(&mut registry);
    let authenticator = Arc::new(TokensAuthenticator::from_file(state.join("tokens")).unwrap());
    let policy = IssuancePolicy::new(TRUST_DOMAIN, "istio-system");
    let service = CaService::new(ca.clone(), authenticator, mesh, policy, metrics);
    let root_pem = std::fs::read_to_string(state.join("ca").join(ROOT_CERT_FILE)).unwrap();
    CaParts { ca, service, serving, root_pem, registry, source, follower }
}
