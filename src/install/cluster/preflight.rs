//! Before anything is planned: the API server answers, runs a supported Kubernetes, and no other
//! installation (Istio, or objects with ambient's names that ambient did not create) is in the way.

use serde_json::Value;

use super::Cluster;
use super::error::ClusterError;
use super::objects::{ObjectId, is_ours, manager_of};
use crate::install::InstalledKind;

/// The oldest supported Kubernetes minor version (of major 1).
pub const MIN_MINOR: u32 = 28;

/// The API server's version, from `/version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    /// As the server reports it, e.g. `v1.30.2-eks-db838b0`.
    pub git_version: String,
}

/// Reads `/version`'s `major` and `minor`, which some distributions suffix (`"30+"` on EKS).
pub(crate) fn parse_version(info: &Value, url: &str) -> Result<ServerVersion, ClusterError> {
    let field = |name: &str| info.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    let (major, minor) = (field("major"), field("minor"));
    let number = |text: &str| -> Option<u32> {
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    match (number(&major), number(&minor)) {
        (Some(major_n), Some(minor_n)) => {
            let git_version = match field("gitVersion") {
                v if v.is_empty() => format!("v{major_n}.{minor_n}"),
                v => v,
            };
            Ok(ServerVersion { major: major_n, minor: minor_n, git_version })
        }
        _ => Err(ClusterError::UnknownVersion { url: url.to_string(), major, minor }),
    }
}

/// Refuses versions older than 1.[`MIN_MINOR`].
pub(crate) fn check_supported(version: &ServerVersion) -> Result<(), ClusterError> {
    if (version.major, version.minor) < (1, MIN_MINOR) {
        return Err(ClusterError::UnsupportedVersion {
            version: format!("{}.{} ({})", version.major, version.minor, version.git_version),
            min: format!("1.{MIN_MINOR}"),
        });
    }
    Ok(())
}

/// Fetches the server's version: the first request, so it is also the reachability check.
pub(crate) async fn server_version(cluster: &Cluster) -> Result<ServerVersion, ClusterError> {
    let request = http::Request::get("/version").body(Vec::new()).map_err(|e| ClusterError::Client {
        action: "reading".into(),
        what: "/version".into(),
        detail: e.to_string(),
    })?;
    let info: Value = cluster.client.request(request).await.map_err(|e| cluster.error(e, "reading", "/version"))?;
    parse_version(&info, &cluster.url)
}

/// Workloads only ambient may own in the install namespace: an unlabelled one is another
/// installation's (or a leftover of one), and applying over it would take it over silently.
const GUARDED: &[(&str, &str)] =
    &[("Deployment", "ambient-controlplane"), ("DaemonSet", "ztunnel"), ("DaemonSet", "ambient-cni")];

/// Refuses to install over another installation in `namespace`.
pub(crate) async fn check_not_installed_by_others(cluster: &Cluster, namespace: &str) -> Result<(), ClusterError> {
    let id = |kind: &str, name: &str| {
        InstalledKind::named(kind).map(|kind| ObjectId {
            kind,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        })
    };
    if let Some(istiod) = id("Deployment", "istiod")
        && let Some(found) = cluster.get(&istiod).await?
    {
        return Err(ClusterError::Foreign {
            what: istiod.to_string(),
            manager: manager_of(&found.metadata),
            hint: "Istio's control plane is installed here; uninstall Istio first (ambient runs its own control plane)"
                .into(),
        });
    }
    for (kind, name) in GUARDED {
        let Some(guarded) = id(kind, name) else { continue };
        if let Some(found) = cluster.get(&guarded).await?
            && !is_ours(&found.metadata)
        {
            return Err(ClusterError::Foreign {
                what: guarded.to_string(),
                manager: manager_of(&found.metadata),
                hint: "remove it (or uninstall what created it) first, then run `ambient install` again".into(),
            });
        }
    }
    Ok(())
}

/// Every check before planning: reachable, supported, not installed by something else.
pub(crate) async fn check(cluster: &Cluster, namespace: &str) -> Result<ServerVersion, ClusterError> {
    let version = server_version(cluster).await?;
    check_supported(&version)?;
    check_not_installed_by_others(cluster, namespace).await?;
    Ok(version)
}
