//! What `/debug/syncz` shows about each connected client.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::xds::auth::Caller;

/// One open delta ADS stream.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionStatus {
    /// Unique per server process, e.g. `12`.
    pub id: u64,
    /// The remote address, when the transport knows it.
    pub peer: Option<String>,
    /// `Node.id` of the first request (empty until it arrives).
    pub node_id: String,
    /// Node metadata `NAME`, `NAMESPACE`, `NODE_NAME`, when the client sent them.
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    pub node_name: Option<String>,
    /// The authenticated caller; `None` when the server runs without authentication.
    pub caller: Option<CallerStatus>,
    /// Seconds since the Unix epoch when the stream opened.
    pub connected_since: u64,
    /// Per type URL.
    pub types: BTreeMap<String, TypeStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallerStatus {
    pub namespace: String,
    pub service_account: String,
    pub pod: Option<String>,
    pub node: Option<String>,
}

impl From<&Caller> for CallerStatus {
    fn from(caller: &Caller) -> Self {
        CallerStatus {
            namespace: caller.namespace.clone(),
            service_account: caller.service_account.clone(),
            pod: caller.pod.clone(),
            node: caller.node.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TypeStatus {
    pub subscription: SubscriptionStatus,
    /// Resources the client has, as far as the server knows.
    pub resources: usize,
    /// Responses sent for this type.
    pub pushes: u64,
    pub last_sent: Option<VersionNonce>,
    pub last_acked: Option<VersionNonce>,
    pub nacks: u64,
    /// The client's `error_detail.message` of its last NACK.
    pub last_nack: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SubscriptionStatus {
    /// Everything of the type (plus `names` subscribed explicitly, if any).
    Wildcard { names: usize },
    /// Only the `names` subscribed explicitly (on-demand).
    Names { names: usize },
}

impl Default for SubscriptionStatus {
    fn default() -> Self {
        SubscriptionStatus::Names { names: 0 }
    }
}

/// `version` is the cache revision (`system_version_info`) of the response with `nonce`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionNonce {
    pub version: String,
    pub nonce: String,
}
