//! A control plane on a files config in a temporary folder, with clients for it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ambient::config::SourceConfig;
use ambient::config::files::FilesConfig;
use ambient::controlplane::run::{CaConfig, CaRootSource, Controlplane, ControlplaneConfig, start};
use ambient::controlplane::translate::TranslateConfig;
use ambient::mesh::MeshConfig;
use ambient::xds::client::{
    Changes, Client, ClientConfig, Handler, NodeInfo, Rejection, Subscription, TlsOptions, TokenSource,
};
use ambient::xds::proto::{ADDRESS_TYPE, AUTHORIZATION_TYPE};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const WAIT: Duration = Duration::from_secs(10);

/// Tokens file: a ztunnel on node-a, one on node-b, and the `web` workload itself.
pub const TOKENS: &str = "\
# test tokens
ztunnel-a istio-system/ztunnel node=node-a
ztunnel-b istio-system/ztunnel node=node-b
web-token shop/web
";

pub const MESH: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {serviceAccountName: web, nodeName: node-a, containers: [{name: web, image: web}]}
status: {podIP: 10.0.0.5}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {clusterIP: 10.96.0.10, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
"#;

pub const POLICY: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-shop, namespace: shop}
spec:
  rules: [{from: [{source: {namespaces: [shop]}}]}]
"#;

pub const WEB_UID: &str = "Kubernetes//Pod/shop/web-1";
pub const WEB_SERVICE: &str = "shop/web.shop.svc.cluster.local";

pub struct Fixture {
    pub dir: TempDir,
    pub controlplane: Controlplane,
}

impl Fixture {
    /// A control plane over `files` (name, text) written into `<dir>/config`.
    pub async fn start(files: &[(&str, &str)]) -> Fixture {
        Self::start_with_tokens(files, TOKENS).await
    }

    /// As [`Fixture::start`], with another tokens file.
    pub async fn start_with_tokens(files: &[(&str, &str)], tokens: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("config").join(name), text).unwrap();
        }
        std::fs::write(dir.path().join("tokens"), tokens).unwrap();
        let controlplane = Self::start_in(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
        Fixture { dir, controlplane }
    }

    pub async fn start_in(dir: &Path, xds_address: SocketAddr) -> Controlplane {
        let config = ControlplaneConfig {
            source: SourceConfig::Files(FilesConfig::new(vec![dir.join("config")])),
            mesh: MeshConfig::default(),
            translate: TranslateConfig::default(),
            xds_address,
            debug_address: "127.0.0.1:0".parse().unwrap(),
            ca: CaConfig {
                source: CaRootSource::StateDir(dir.join("state")),
                cert_ttl: Duration::from_secs(3600),
                max_cert_ttl: Duration::from_secs(24 * 3600),
                node_proxies: None,
                server_names: Vec::new(),
                root_cert_configmap: None,
            },
            tokens_file: Some(dir.join("tokens")),
        };
        let controlplane = start(config).await.expect("control plane starts");
        let mut ready = controlplane.ready.clone();
        tokio::time::timeout(WAIT, ready.wait_for(|r| *r)).await.expect("ready in time").unwrap();
        controlplane
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("config").join(name)
    }

    /// Writes a config file the way editors do: a new file renamed over the old one.
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }

    pub fn client(&self, node: &str, subscriptions: Vec<Subscription>) -> Client {
        client_for(&self.controlplane, node, subscriptions)
    }
}

pub fn client_config(controlplane: &Controlplane, node: &str, subscriptions: Vec<Subscription>) -> ClientConfig {
    let mut config = ClientConfig::new(
        format!("https://127.0.0.1:{}", controlplane.xds_address.port()),
        NodeInfo { node_name: Some(node.to_string()), ..NodeInfo::new(format!("ztunnel~{node}")) },
    );
    config.tls = Some(TlsOptions {
        root_ca_pem: controlplane.root_cert_pem.as_bytes().to_vec(),
        server_name: Some("localhost".to_string()),
    });
    config.token = Some(TokenSource::Value("ztunnel-a".to_string()));
    config.subscriptions = subscriptions;
    config.backoff_max = Duration::from_millis(500);
    config
}

pub fn client_for(controlplane: &Controlplane, node: &str, subscriptions: Vec<Subscription>) -> Client {
    Client::start(client_config(controlplane, node, subscriptions)).expect("client starts")
}

pub fn wildcard_both() -> Vec<Subscription> {
    vec![Subscription::wildcard(ADDRESS_TYPE), Subscription::wildcard(AUTHORIZATION_TYPE)]
}

/// Names of what `client` holds of `type_url`, sorted.
pub fn names(client: &Client, type_url: &str) -> Vec<String> {
    let mut names: Vec<String> = client.resources(type_url).iter().map(|r| r.name.clone()).collect();
    names.sort();
    names
}

pub async fn wait_for(client: &Client, what: &str, condition: impl Fn(&Client) -> bool) {
    if tokio::time::timeout(WAIT, client.wait_until(condition)).await.is_err() {
        panic!(
            "timed out waiting for {what}; client has {:?} and {:?}",
            names(client, ADDRESS_TYPE),
            names(client, AUTHORIZATION_TYPE)
        );
    }
}

/// Records every change a client applies; optionally rejects resources by name.
#[derive(Default)]
pub struct Recorder {
    pub upserts: Mutex<Vec<String>>,
    pub removals: Mutex<Vec<String>>,
    pub reject: Mutex<Option<String>>,
}

impl Handler for Recorder {
    fn apply(&self, changes: &Changes<'_>) -> Result<(), Vec<Rejection>> {
        self.upserts.lock().unwrap().extend(changes.upserts.iter().map(|r| r.name.clone()));
        self.removals.lock().unwrap().extend(changes.removals.iter().cloned());
        let reject = self.reject.lock().unwrap().clone();
        match reject {
            Some(name) if changes.upserts.iter().any(|r| r.name == name) => {
                Err(vec![Rejection { name, reason: "rejected by the test".to_string() }])
            }
            _ => Ok(()),
        }
    }
}

impl Recorder {
    pub fn take(&self) -> (Vec<String>, Vec<String>) {
        (std::mem::take(&mut self.upserts.lock().unwrap()), std::mem::take(&mut self.removals.lock().unwrap()))
    }
}

pub fn recorded(type_url: &str, recorder: &Arc<Recorder>) -> Subscription {
    Subscription::wildcard(type_url).with_handler(recorder.clone())
}

/// GET `path` on the debug endpoint: status code and body.
pub async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("debug endpoint reachable");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("an HTTP status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
