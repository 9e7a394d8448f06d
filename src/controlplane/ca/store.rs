//! Where the CA's certificate and key come from: files given by the operator (a plug-in CA), or
//! a root generated once and kept, in the state directory (files mode) or in a Kubernetes
//! Secret (kube mode). A kept root is never regenerated: if it exists it is used, and if it
//! cannot be read that is an error naming it, never a reason to replace it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use tracing::{info, warn};

use super::CaError;
use super::authority::{CertificateAuthority, PemSource, SigningMaterial, generate_root};

/// File names of a generated root in `<state-dir>/ca/`.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// Default name of the Secret keeping a generated root, in the root namespace.
pub const DEFAULT_SECRET_NAME: &str = "ambient-ca";
/// Keys of that Secret.
pub const SECRET_CERT_KEY: &str = "ca-cert.pem";
pub const SECRET_KEY_KEY: &str = "ca-key.pem";

/// Where the CA comes from.
#[derive(Clone)]
pub enum CaSource {
    /// Operator-provided files (`--ca-cert`, `--ca-key`, `--ca-chain`, `--ca-root`).
    Files { cert: PathBuf, key: PathBuf, chain: Option<PathBuf>, root: Option<PathBuf> },
    /// A root generated once and kept in `<state_dir>/ca/`.
    StateDir(PathBuf),
    /// A root generated once and kept in the Secret `namespace/name`.
    Secret { client: kube::Client, namespace: String, name: String },
}

impl std::fmt::Debug for CaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaSource::Files { cert, key, chain, root } => f
                .debug_struct("Files")
                .field("cert", cert)
                .field("key", key)
                .field("chain", chain)
                .field("root", root)
                .finish(),
            CaSource::StateDir(dir) => f.debug_tuple("StateDir").field(dir).finish(),
            CaSource::Secret { namespace, name, .. } => {
                f.debug_struct("Secret").field("namespace", namespace).field("name", name).finish()
            }
        }
    }
}

impl CaSource {
    /// Loads (or, for a kept root seen for the first time, generates and keeps) the CA.
    pub async fn load(&self, trust_domain: &str) -> Result<CertificateAuthority, CaError> {
        match self {
            CaSource::Files { cert, key, chain, root } => {
                let material = SigningMaterial {
                    cert: PemSource::read(cert)?,
                    key: PemSource::read(key)?,
                    chain: chain.as_deref().map(PemSource::read).transpose()?,
                    root: root.as_deref().map(PemSource::read).transpose()?,
                };
                CertificateAuthority::new(&material)
            }
            CaSource::StateDir(dir) => {
                let dir = dir.join("ca");
                let trust_domain = trust_domain.to_string();
                tokio::task::spawn_blocking(move || load_or_create_in_dir(&dir, &trust_domain))
                    .await
                    .map_err(|e| CaError::Task(e.to_string()))?
            }
            CaSource::Secret { client, namespace, name } => {
                load_or_create_secret(client.clone(), namespace, name, trust_domain).await
            }
        }
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CaError + use<> {
    let path = path.to_path_buf();
    move |source| CaError::Io { action, path, source }
}

/// Writes `text` to `path` through a temporary file with `mode`, then renames it into place.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), CaError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_error("create", &tmp))?;
    file.write_all(text.as_bytes()).map_err(io_error("write", &tmp))?;
    file.sync_all().map_err(io_error("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error("rename into place", path))
}

/// The root kept in `dir` (`root-cert.pem`, `root-key.pem`), generated there first if neither
/// file exists.
pub fn load_or_create_in_dir(dir: &Path, trust_domain: &str) -> Result<CertificateAuthority, CaError> {
    let cert_path = dir.join(ROOT_CERT_FILE);
    let key_path = dir.join(ROOT_KEY_FILE);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            warn_if_readable_by_others(&key_path);
            let material = SigningMaterial {
                cert: PemSource::read(&cert_path)?,
                key: PemSource::read(&key_path)?,
                chain: None,
                root: None,
            };
            let ca = CertificateAuthority::new(&material)?;
            info!(dir = %dir.display(), "CA root loaded");
            Ok(ca)
        }
        (false, false) => {
            {
                use std::os::unix::fs::DirBuilderExt as _;
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error("create", dir))?;
            }
            let (cert_pem, key_pem) = generate_root(trust_domain)?;
            let material = SigningMaterial {
                cert: PemSource::new(cert_path.display().to_string(), cert_pem.clone()),
                key: PemSource::new(key_path.display().to_string(), key_pem.clone()),
                chain: None,
                root: None,
            };
            let ca = CertificateAuthority::new(&material)?;
            write_file(&key_path, &key_pem, 0o600)?;
            write_file(&cert_path, &cert_pem, 0o644)?;
            info!(dir = %dir.display(), "CA root generated");
            Ok(ca)
        }
        (true, false) => Err(CaError::Incomplete { present: cert_path, missing: key_path }),
        (false, true) => Err(CaError::Incomplete { present: key_path, missing: cert_path }),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "CA key file is readable by others than its owner");
    }
}

fn secret_material(secret: &Secret, namespace: &str, name: &str) -> Result<SigningMaterial, CaError> {
    let field = |key: &str| -> Result<PemSource, CaError> {
        let origin = format!("Secret {namespace}/{name} key {key}");
        let value = secret.data.as_ref().and_then(|d| d.get(key)).ok_or_else(|| CaError::Secret {
            secret: format!("{namespace}/{name}"),
            detail: format!("it has no {key} key"),
        })?;
        Ok(PemSource::new(origin, value.0.clone()))
    };
    Ok(SigningMaterial { cert: field(SECRET_CERT_KEY)?, key: field(SECRET_KEY_KEY)?, chain: None, root: None })
}

/// The root kept in the Secret `namespace/name`, created first if absent. If another replica
/// creates it at the same time, theirs is read and used.
pub async fn load_or_create_secret(
    client: kube::Client,
    namespace: &str,
    name: &str,
    trust_domain: &str,
) -> Result<CertificateAuthority, CaError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let what = |action: &str| format!("{action} Secret {namespace}/{name}");
    if let Some(secret) = api.get_opt(name).await.map_err(|e| CaError::Kube { action: what("read"), source: e })? {
        let ca = CertificateAuthority::new(&secret_material(&secret, namespace, name)?)?;
        info!(secret = %format!("{namespace}/{name}"), "CA root loaded");
        return Ok(ca);
    }

    let (cert_pem, key_pem) = generate_root(trust_domain)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), "ambient".to_string())])),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([
            (SECRET_CERT_KEY.to_string(), ByteString(cert_pem.into_bytes())),
            (SECRET_KEY_KEY.to_string(), ByteString(key_pem.into_bytes())),
        ])),
        ..Default::default()
    };
    let kept = match api.create(&PostParams::default(), &secret).await {
        Ok(created) => {
            info!(secret = %format!("{namespace}/{name}"), "CA root generated");
            created
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            info!(secret = %format!("{namespace}/{name}"), "CA root created meanwhile by another replica; using it");
            api.get(name).await.map_err(|e| CaError::Kube { action: what("re-read"), source: e })?
        }
        Err(e) => return Err(CaError::Kube { action: what("create"), source: e }),
    };
    // The API server's copy, so every replica signs with the same key.
    CertificateAuthority::new(&secret_material(&kept, namespace, name)?)
}
